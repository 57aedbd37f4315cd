/*
 * hge_corrsig.h - the paper's corrsig loss and its exact derivative in fixed
 * point, on the device:
 *
 *   E(y, z) = (1 - rho(y, z)) (1 + exp(-sep / scale))     (= (1 - rho) / sigmoid)
 *   dE/dy_k = -(1 + ex) drho/dy_k - (1 - rho) ex dsep/dy_k / scale
 *
 * y: window output levels in ADC codes (24-bit), z: targets 0/1, sep =
 * mean(y | z=1) - mean(y | z=0) (the paper's separation), scale in ADC codes.
 * The float64 form is hge_embedded/losses.py (separation="mean").
 *
 * Steps (each modelled in hge_embedded/reference/trainer_fixed.py):
 *   m = round(mean(y)); d_k = y_k - m (exact); L = normalising left shift
 *   (max|d| << L in [2^24, 2^25), L <= 20), so every ratio below keeps >= 30
 *   bits however small the spread.
 *   Syy = sum (y - mean)^2 in Q(2L) = (sum d^2 << 2L) - round((sum d)^2 << 2L / n)
 *   P = (n0 sum_{z=1} d - n1 sum_{z=0} d) << L   (exact: n Syz and n1 n0 sep)
 *   rho = P / (sqrt(Syy) sqrt(n n1 n0))          Q30, two hge_ratio divisions
 *   x = sep / scale = P / (n1 n0 scale 2^L)       Q24, clamped to +-12
 *   ex = exp(-x)                                  Q24 (hge_exp_q24)
 *   E = (1 - rho)(1 + ex)                         Q24
 *   B_k = (1 + ex)(u_k - rho v_k) + (1 - rho) ex (sy/scale) dsep_k    Q24
 *     with u_k = zc_k / sz, v_k = yc_k / sy, dsep_k = 1/n1 or -1/n0,
 *   dE/dy_k = -B_k / sy, returned as q_k = round(-B_k 2^F / sy) (int32,
 *   max |q| in [2^28, 2^30]) and an exponent: dE/dy_k = q_k 2^-exponent per
 *   ADC code (block floating point: the chain rule rescales once).
 * Restriction: |sep / scale| is clamped at 12 (exp(12) = 1.6e5): beyond it
 * the loss and gradient are those at the clamp. Accuracy against float64
 * (derived in trainer_fixed.py, tested in tests/test_firmware_trainer.py):
 * E within 2^-27 (1 + ex) + (1 - rho) ex 2^-23 + 2^-25; each dE/dy_k within
 * 2^-20 of the size of B's terms over sy.
 */
#ifndef HGE_CORRSIG_H
#define HGE_CORRSIG_H

#include "hge_fixmath.h"

#define HGE_CORRSIG_MAX_POINTS 1024u
#define HGE_CORRSIG_X_CAP ((int32_t)12 << 24)
#define HGE_CORRSIG_MAX_SHIFT 20
#define HGE_LOSS_FRAC 24

typedef struct {
    int64_t loss;     /* E, Q24 */
    int32_t rho;      /* Pearson correlation, Q30 */
    int32_t x;        /* sep / scale, Q24, clamped */
    int32_t exponent; /* dE/dy_k = q[k] * 2^-exponent per ADC code */
} hge_corrsig_result_t;

/*
 * y[n]: ADC codes in [-2^23, 2^23 - 1]; z[n]: 0 or 1 with both present;
 * 2 <= n <= HGE_CORRSIG_MAX_POINTS; scale in [2^12, 2^31 - 1] codes.
 * Errors: HGE_ERR_NULL, HGE_ERR_SIZE (n), HGE_ERR_RANGE (a code, a target,
 * the scale, a constant target, or zero variance of y: the correlation is
 * undefined, as losses.corrsig raises).
 */
hge_status hge_corrsig(const int32_t *y, const uint8_t *z, uint32_t n, int32_t scale, int32_t *q,
                       hge_corrsig_result_t *r);

#endif /* HGE_CORRSIG_H */

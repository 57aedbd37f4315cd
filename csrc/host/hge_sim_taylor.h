/*
 * hge_sim_taylor.h - the simulator's window expansion in C (host only: the
 * simulated DNPU of hge_embedded/devices/simulated.py, not firmware).
 *
 * A training record is mostly HGE windows: runs of samples that stay inside a
 * small box (+-12.5 mV per electrode). The simulator evaluates the device there by
 * the third-order Taylor expansion about the box's centre c:
 *
 *   I(v) = I0 + sum_j g_j d_j + sum_{j<=k} Q_jk d_j d_k + sum_{j<=k<=l} C_jkl d_j d_k d_l,
 *   d = v - c,
 *
 * the quadratic and cubic forms summed over their distinct monomials (for a
 * symmetric Hessian H and third-derivative tensor T: Q_jk = H_jk for j < k,
 * H_jj / 2; C_jkl = T_jkl times its number of orderings / 6, that is T_jkl,
 * T_jkl / 2 or T_jkl / 6 for 3, 2 or 1 distinct indices; the Python side,
 * devices/taylor_kernel.py, sums the entries of each monomial instead, which
 * also holds for tensors symmetric only approximately).
 *
 * Formats (all IEEE double, no fixed point):
 *   v        (n_dim, stride) row-major: electrode j, sample i at v[j stride + i].
 *   bounds   2 per window: [start, end) sample indices, 0 <= start <= end <= n.
 *   centres  (n_win, n_dim) row-major.
 *   coefs    (n_win, hge_sim_taylor_coefs(n_dim)) row-major, each row nested in the
 *            order the evaluation walks it:
 *              I0, then for j = 0..n_dim-1: g_j, then for k = j..n_dim-1: Q_jk,
 *              then for l = k..n_dim-1: C_jkl.
 *            (n_dim = 7: 1 + 7 + 28 + 84 = 120 numbers.)
 *   out      (n,): out[i] for i in each window; other samples are not written.
 *
 * Evaluation (per sample, in this order, so the result does not depend on how the
 * windows are split between calls or threads): d_j = v_j - c_j, then nested
 *   I = I0 + sum_j d_j (g_j + sum_{k>=j} d_k (Q_jk + sum_{l>=k} C_jkl d_l)),
 * every sum taken in increasing index order, as separate multiplies and adds (the
 * build uses no FMA contraction: -O2 without -march, -ffp-contract is moot).
 * Round-off: each term (a coefficient times up to three d's) passes through one
 * multiply and at most n_dim adds per nesting level, at most 3 n_dim + 3 roundings
 * in all, so |fl(I) - I| <= gamma_{3 n_dim + 3} S with
 * S = |I0| + sum |g_j d_j| + sum |Q_jk d_j d_k| + sum |C_jkl d_j d_k d_l| and
 * gamma_k = k u / (1 - k u), u = 2^-53 (Higham, Accuracy and Stability, 3.1-3.5;
 * the d's themselves are the same rounded subtraction in every path).
 *
 * Status: HGE_ERR_NULL (a NULL pointer with n_win > 0), HGE_ERR_SIZE (n_dim 0 or
 * above HGE_SIM_MAX_DIM, stride < n), HGE_ERR_RANGE (an isa not available, a window
 * outside [0, n] or with end < start). Every window is checked before anything is written.
 */
#ifndef HGE_SIM_TAYLOR_H
#define HGE_SIM_TAYLOR_H

#include <stdint.h>

#include "hge_types.h"

#define HGE_SIM_MAX_DIM 8u

#define HGE_SIM_ISA_AUTO 0u  /* the fastest available below */
#define HGE_SIM_ISA_PLAIN 1u /* plain C loops */
#define HGE_SIM_ISA_SSE2 2u  /* GCC/clang vectors of 2 doubles (any target) */
#define HGE_SIM_ISA_AVX2 3u  /* vectors of 4 doubles, x86 with AVX2 (checked at run time; no FMA) */

typedef struct {
    uint32_t n_dim;  /* electrodes, 1..HGE_SIM_MAX_DIM */
    uint32_t n_coef; /* numbers per window: hge_sim_taylor_coefs(n_dim) */
    uint32_t isa;    /* HGE_SIM_ISA_*: the same bits on every one (set to AUTO by init) */
} hge_sim_taylor_t;

/* 1 if this build and CPU can run isa, else 0. */
int hge_sim_taylor_isa_available(uint32_t isa);

/* 1 + n + n(n+1)/2 + n(n+1)(n+2)/6: the coefficients of one window (0 if n_dim is out of range). */
uint32_t hge_sim_taylor_coefs(uint32_t n_dim);

/* Sets the dimension. HGE_ERR_NULL, HGE_ERR_SIZE (n_dim 0 or > HGE_SIM_MAX_DIM). */
hge_status hge_sim_taylor_init(hge_sim_taylor_t *s, uint32_t n_dim);

/* Evaluates n_win windows into out (formats above). */
hge_status hge_sim_taylor_process(const hge_sim_taylor_t *s, const double *v, uint64_t n, uint64_t stride,
                                  const int64_t *bounds, uint32_t n_win, const double *centres,
                                  const double *coefs, double *out);

#endif /* HGE_SIM_TAYLOR_H */

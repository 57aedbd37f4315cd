/*
 * hge_lockin.h - multi-terminal lock-in demodulation in fixed point.
 *
 * One input stream of ADC codes feeds M terminals; each terminal has its own
 * NCO (frequency, phase) and mixes the sample with sin (in-phase, I) and cos
 * (quadrature, Q). Two low-pass back ends:
 *
 *   bw3     third-order Butterworth behind a pre-sum: the mixer products of 8
 *           consecutive samples are summed (integrate-and-dump by 8, a
 *           first-order CIC decimator), and the Butterworth runs at fs/8 on
 *           the sums: one DF1 biquad + one first-order DF1 section, Q2.30
 *           coefficients, 64-bit accumulator, first-order error feedback (the
 *           truncation remainder is carried into the next step), so DC gain is
 *           exact and no offset sticks. A 10 Hz cut-off needs no 10 kHz
 *           filter: the pre-sum costs two adds per sample, and the filter's
 *           work drops eightfold (its coefficients are better conditioned at
 *           fs/8, too). The output changes every 8 samples; a window should
 *           be a multiple of 8 samples. 72 bytes of state per terminal.
 *   boxcar  integrate-and-dump: exact 64-bit sums of x * ref over the window,
 *           the matched filter when every frequency makes whole periods.
 *           24 bytes of state per terminal.
 *
 * Input conditioning (both): x' = sat24(x - dc), where dc is the window's
 * DC level in codes (hge_mean_q0 computes it; 0 disables). Subtracting it
 * before the mixers removes the onset transient of dc * ref through the filter.
 * x' is Q0 in [-2^23, 2^23 - 1].
 *
 * Memory: the instance points to caller-owned per-terminal state. The filter
 * coefficients are copied into the instance by _init (validated there, in
 * the form the inner loop uses), so the sample path never reads caller
 * memory that could change after _init: the caller may free or reuse its
 * hge_bw3_coeffs_t as soon as _init returns.
 */
#ifndef HGE_LOCKIN_H
#define HGE_LOCKIN_H

#include "hge_nco.h"

/* Filter signal range after saturation: [-2^30, 2^30 - 1]. With |p| < 2^29 at
 * the biquad input and |a2|, |d| < 2^30 enforced at init, the accumulators
 * stay below 2^63 for any int32 numerator (see hge_lockin.c). */
#define HGE_FILTER_MIN (-1073741824L)
#define HGE_FILTER_MAX (1073741823L)

/* The pre-sum: HGE_BW3_DECIMATION products, each rounded half-up from Q22
 * (< 2^45) by HGE_PRESUM_SHIFT to < 2^26, sum to < 2^29: the mean product in
 * Q6 (2^16 / 2^22 of the Q22 product, as 19 - 3 = 16). */
#define HGE_BW3_DECIMATION 8u
#define HGE_PRESUM_SHIFT 19
#define HGE_MIXER_SHIFT 16

/* Shared, read-only Butterworth coefficients.
 * Biquad:      y[n] = (b0 p[n] + b1 p[n-1] + b2 p[n-2]) / 2^b_shift
 *                     - a1 y[n-1] - a2 y[n-2]
 * First order: z[n] = c0 y[n] + c1 y[n-1] - d1 z[n-1]
 * a, c, d are Q2.30 (2^30 = 1.0); b is Q(30 + b_shift): a low cut-off makes
 * b ~ (2 pi fc / fs)^2 / 4 tiny, and the extra shift keeps ~30 significant
 * bits in it. Designed and quantised in Python (hge_embedded.design) with
 * sum(b) = (2^30 + a1 + a2) 2^b_shift and c0 + c1 = 2^30 + d1 exactly, so the
 * DC gain is exactly 1. */
typedef struct {
    int32_t b[3];
    int32_t a[2];     /* a1, a2 */
    int32_t c[2];
    int32_t d;        /* d1 */
    uint32_t b_shift; /* 0..32 */
} hge_bw3_coeffs_t;

/* Field order is used by the Cortex-M4 filter step (one LDM/STM of x1..e2;
 * checked at compile time in hge_lockin_cortexm.h). */
typedef struct {
    int32_t x1, x2; /* previous two biquad inputs (pre-sums), Q6 */
    int32_t y1, y2; /* previous two biquad outputs = first-order inputs, Q6 */
    int32_t z1;     /* previous first-order output = lock-in output, Q6 */
    uint32_t e1;    /* biquad error-feedback remainder, [0, 2^30) */
    uint32_t e2;    /* first-order error-feedback remainder, [0, 2^30) */
    int32_t acc;    /* pre-sum of the current group of 8 products, Q6 (< 2^29) */
} hge_bw3_channel_t;

typedef struct {
    hge_nco_t nco;
    hge_bw3_channel_t i; /* in-phase (sin) channel */
    hge_bw3_channel_t q; /* quadrature (cos) channel */
} hge_lockin_bw3_term_t;

/* The coefficients as the inner loop wants them, copied and checked at init:
 * denominators negated, so every term is a multiply-accumulate (exact: |a1| <
 * 2^31 - 1 by the stability check, |a2|, |d1| < 2^30, so each negation fits). */
typedef struct {
    int32_t b0, b1, b2;
    uint32_t b_shift;   /* 0..32 */
    int32_t na1, na2, c0, c1, nd1;
    uint32_t b_lshift;  /* 32 - b_shift (the Cortex-M4 step's 64-bit shift) */
} hge_bw3_mac_t;

typedef struct {
    hge_bw3_mac_t k; /* private copy of the coefficients (see Memory above) */
    hge_lockin_bw3_term_t *terms;
    uint32_t n_terms;
    int32_t dc;
    uint32_t presum_count; /* samples in the current group, 0..7 (shared by all terminals) */
} hge_lockin_bw3_t;

typedef struct {
    hge_nco_t nco;
    int64_t acc_i; /* sum of x' * sin, Q22 */
    int64_t acc_q; /* sum of x' * cos, Q22 */
} hge_lockin_boxcar_term_t;

typedef struct {
    hge_lockin_boxcar_term_t *terms;
    uint32_t n_terms;
    uint32_t count; /* samples accumulated since init/reset */
    int32_t dc;
} hge_lockin_boxcar_t;

/* Bytes of per-terminal state (sizeof on this target). */
uint32_t hge_lockin_bw3_state_bytes(void);
uint32_t hge_lockin_boxcar_state_bytes(void);

/*
 * Mean of a block of codes, for DC removal.
 * Input: x[n], Q0, each saturated to 24 bits first; 
 * Output: *mean = floor(sum / n + 1/2) (round half-up), Q0 24-bit.
 * Accumulator: int64 (|sum| <= 2^47). Errors: HGE_ERR_NULL, HGE_ERR_SIZE.
 * 1 <= n <= HGE_MEAN_MAX_SAMPLES.
 */
hge_status hge_mean_q0(const int32_t *x, uint32_t n, int32_t *mean);

/*
 * Butterworth lock-in.
 * init: steps[m] in (0, 2^31); phases[m] any (NULL means all 0); filter state
 *   cleared, dc = 0; *coeffs is copied (not kept). Errors: HGE_ERR_NULL, HGE_ERR_TERMINALS, HGE_ERR_FREQ,
 *   HGE_ERR_COEF (biquad outside the stability triangle |a2| < 2^30,
 *   |a1| < 2^30 + a2, first-order |d1| >= 2^30, or b_shift > 32).
 * set_dc: dc in [-2^23, 2^23 - 1], else HGE_ERR_RANGE.
 * process: for each sample x[k] and terminal m:
 *   x'  = sat24(x[k] - dc)                               Q0
 *   s,c = hge_sin_q22(phase), hge_sin_q22(phase + 2^30)  Q22
 *   accI += (x' * s + 2^18) >> 19                        round half-up, < 2^26 each
 *   accQ += (x' * c + 2^18) >> 19
 *   phase += step (mod 2^32)
 *   after every 8th sample (counted from init/reset across blocks), each
 *   channel runs its pre-sum u = acc (Q6, |u| < 2^29) through the biquad and
 *   the first-order section and clears acc; per section
 *     acc = sum(num * inputs) - sum(den * outputs) + e   Q36 in int64, exact
 *           (biquad: the numerator sum, Q(36 + b_shift), is first floored
 *           to Q36 by >> b_shift: a bias below 2^-30 LSB per step)
 *     out = sat(acc >> 30) into [-2^30, 2^30 - 1]        Q6, floor
 *     e   = acc mod 2^30 (low 30 bits), carried to the next step
 *   Processing one block or many gives identical results. n may be 0.
 * output: out_i[m], out_q[m] = current first-order outputs (Q6: times
 *   2^16 / (2^22 - 1) gives code units of (A/2) cos, (A/2) sin), as of the
 *   last completed group of 8 samples.
 * reset: clear filter state and pre-sums; phases as in init.
 */
hge_status hge_lockin_bw3_init(hge_lockin_bw3_t *s, const hge_bw3_coeffs_t *coeffs,
                               hge_lockin_bw3_term_t *terms, uint32_t n_terms,
                               const uint32_t *steps, const uint32_t *phases);
hge_status hge_lockin_bw3_set_dc(hge_lockin_bw3_t *s, int32_t dc);
hge_status hge_lockin_bw3_process(hge_lockin_bw3_t *s, const int32_t *x, uint32_t n);
hge_status hge_lockin_bw3_output(const hge_lockin_bw3_t *s, int32_t *out_i, int32_t *out_q);
hge_status hge_lockin_bw3_reset(hge_lockin_bw3_t *s, const uint32_t *phases);

/*
 * Integrate-and-dump lock-in.
 * init/set_dc/reset: as for bw3 (no coefficients).
 * process: acc_i += x' * s, acc_q += x' * c (Q22, exact int64). The total
 *   number of samples since init/reset may not exceed 2^17 (HGE_ERR_SIZE,
 *   nothing processed; 13.1 s at 10 kHz), which bounds |acc| < 2^62.
 * output: out_i[m], out_q[m] = sums (Q22); *count = samples summed.
 *   (A/2) cos = out_i / (count * (2^22 - 1)) codes.
 */
hge_status hge_lockin_boxcar_init(hge_lockin_boxcar_t *s, hge_lockin_boxcar_term_t *terms,
                                  uint32_t n_terms, const uint32_t *steps,
                                  const uint32_t *phases);
hge_status hge_lockin_boxcar_set_dc(hge_lockin_boxcar_t *s, int32_t dc);
hge_status hge_lockin_boxcar_process(hge_lockin_boxcar_t *s, const int32_t *x, uint32_t n);
hge_status hge_lockin_boxcar_output(const hge_lockin_boxcar_t *s, int64_t *out_i,
                                    int64_t *out_q, uint32_t *count);
hge_status hge_lockin_boxcar_reset(hge_lockin_boxcar_t *s, const uint32_t *phases);

#endif /* HGE_LOCKIN_H */

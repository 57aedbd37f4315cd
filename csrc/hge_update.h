/*
 * hge_update.h - fixed-point gradient step on DAC codes:
 *   g[m]  = sum_k dEdI[k] * dIdV[k][m]
 *   w[m] <- clamp(w[m] - round(eta * g[m] / 2^shift), w_min[m], w_max[m])
 *
 * Formats are the caller's choice and cancel in eta: if dEdI is Qa (1/nA)
 * and dIdV is Qb (nA/V), g is Q(a+b) (1/V); eta is Q(shift - a - b) in
 * codes per unit of g. The host (hge_embedded.train) picks a, b and shift.
 */
#ifndef HGE_UPDATE_H
#define HGE_UPDATE_H

#include "hge_types.h"

/*
 * Lifetime of the limits: w_min and w_max are borrowed, not copied (up to
 * HGE_MAX_TERMINALS pairs would not fit a small instance), and must stay
 * unchanged while the instance is in use. Because they guard the electrode
 * voltages, this is checked, not trusted: _init records a 32-bit FNV-1a
 * fingerprint of both arrays, and _process recomputes it and re-checks
 * w_min[m] <= w_max[m] before it writes anything; if either fails it returns
 * HGE_ERR_RANGE with w untouched (call _init again after changing limits).
 */
typedef struct {
    const int32_t *w_min; /* lowest DAC code per electrode (borrowed, see above) */
    const int32_t *w_max; /* highest DAC code per electrode (borrowed, see above) */
    uint32_t n_electrodes;
    int32_t eta;          /* learning rate, scaled by 2^shift */
    uint32_t shift;       /* 0..62 */
    uint32_t limits_fingerprint; /* FNV-1a of w_min, w_max at init */
} hge_update_t;

/* Errors: HGE_ERR_NULL, HGE_ERR_SIZE (n_electrodes == 0),
 * HGE_ERR_TERMINALS (n_electrodes > HGE_MAX_TERMINALS),
 * HGE_ERR_RANGE (shift > 62 or some w_min[m] > w_max[m]). */
hge_status hge_update_init(hge_update_t *u, const int32_t *w_min, const int32_t *w_max,
                           uint32_t n_electrodes, int32_t eta, uint32_t shift);

/*
 * g[m] += sum_k dEdI[k] * dIdV[k * n_electrodes + m], k < n_points.
 * Inputs int32; products exact in int64 (< 2^62); additions saturate at
 * [-(2^63 - 1), 2^63 - 1] instead of wrapping. n_points may be 0.
 */
hge_status hge_update_accumulate(const hge_update_t *u, int64_t *g, const int32_t *dEdI,
                                 const int32_t *dIdV, uint32_t n_points);

/*
 * w[m] <- clamp(w[m] - delta, w_min[m], w_max[m]), where
 *   p     = eta * g[m], saturated to [-(2^63 - 1), 2^63 - 1]
 *   delta = floor(p / 2^shift + 1/2) (round half-up; p itself when shift = 0)
 * The result is always inside [w_min[m], w_max[m]], even for a w[m] that
 * started outside it. HGE_ERR_RANGE (w untouched) if the limits changed since
 * _init (see the lifetime rule above).
 */
hge_status hge_update_process(const hge_update_t *u, int32_t *w, const int64_t *g);

#endif /* HGE_UPDATE_H */

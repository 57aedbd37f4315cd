/*
 * hge_host_stderr.c - standard errors from a fitted noise density (hge_host_stderr.h).
 */
#include "hge_host_stderr.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

typedef double hge_sv4d __attribute__((vector_size(32)));   /* GCC/clang vector extension */

#define HGE_SLOAD4(dst, p) memcpy(&(dst), (p), sizeof(hge_sv4d))

/* sum_j a_j b_j in four partial sums (lane j mod 4), (s0 + s1) + (s2 + s3), then the tail */
static inline double sdot(const double *a, const double *b, size_t n)
{
    hge_sv4d acc = {0.0, 0.0, 0.0, 0.0};
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        hge_sv4d x, y;
        HGE_SLOAD4(x, a + i);
        HGE_SLOAD4(y, b + i);
        acc += x * y;
    }
    double s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (; i < n; i++) {
        s += a[i] * b[i];
    }
    return s;
}

hge_status hge_host_psd_stderr(const double *W, uint32_t rows, uint32_t n_bins, const double *log_bins,
                               double icpt_n, double slope_n, uint32_t n_below, const double *lf_below,
                               const double *lf2_below, const double *low, const double *scale,
                               double *S_work, double *out)
{
    if (W == NULL || log_bins == NULL || scale == NULL || S_work == NULL || out == NULL ||
        (low != NULL && n_below > 0u && (lf_below == NULL || lf2_below == NULL))) {
        return HGE_ERR_NULL;
    }
    if (rows == 0u || n_bins == 0u || n_below > n_bins) {
        return HGE_ERR_SIZE;
    }
    double *S = S_work;
    for (uint32_t j = 0; j < n_bins; j++) {
        S[j] = exp(icpt_n + slope_n * log_bins[j]);
    }
    if (low != NULL) {
        const double slope = low[0], icpt = low[1], c00 = low[2], c01x2 = 2.0 * low[3], c11 = low[4];
        for (uint32_t j = 0; j < n_below; j++) {
            const double lf = lf_below[j];
            const double var_l = ((c00 * lf2_below[j]) + c01x2 * lf) + c11;
            S[j] = exp((icpt + slope * lf) - var_l / 2.0);
        }
    }
    for (uint32_t r = 0; r < rows; r++) {
        double v = sdot(W + (size_t)r * n_bins, S, n_bins);
        v = v < 0.0 ? 0.0 : v;   /* np.maximum(v, 0): NaN and -0.0 stay */
        out[r] = sqrt(v) * scale[r];
    }
    return HGE_OK;
}

/*
 * hge_sim_dac.c - gate and quantisation of a simulated DAC record (hge_sim_dac.h).
 */
#include "hge_sim_dac.h"

#include <math.h>
#include <stddef.h>

#define HGE_SIM_TWO52 4503599627370496.0 /* 2^52 */

/* x rounded to the nearest integer, ties to even, sign kept (np.round for |x| < 2^52; larger
 * doubles are integers). */
static double round_even(double x)
{
    const double a = fabs(x);
    if (!(a < HGE_SIM_TWO52)) {
        return x;
    }
    return copysign((a + HGE_SIM_TWO52) - HGE_SIM_TWO52, x);
}

hge_status hge_sim_dac(const double *v, uint32_t n_dim, uint64_t n, uint64_t stride, const double *lim_lo,
                       const double *lim_hi, double lsb, const double *code_lo, const double *code_hi, double *out,
                       uint64_t out_stride)
{
    if (v == NULL || lim_lo == NULL || lim_hi == NULL || code_lo == NULL || code_hi == NULL || out == NULL) {
        return HGE_ERR_NULL;
    }
    if (n_dim == 0u || stride < n || out_stride < n) {
        return HGE_ERR_SIZE;
    }
    if (!(lsb > 0.0) || !(lsb <= 1e300)) {
        return HGE_ERR_COEF;
    }
    for (uint32_t j = 0; j < n_dim; j++) {
        if (!(code_lo[j] <= code_hi[j])) {
            return HGE_ERR_COEF;
        }
    }
    for (uint32_t j = 0; j < n_dim; j++) {
        const double *x = v + (size_t)j * stride;
        double *y = out + (size_t)j * out_stride;
        const double lo = lim_lo[j], hi = lim_hi[j], clo = code_lo[j], chi = code_hi[j];
        int bad = 0;
        for (uint64_t i = 0; i < n; i++) {
            const double xi = x[i];
            bad |= !(xi >= lo && xi <= hi);
            double c = round_even(xi / lsb);
            c = c > chi ? chi : c;
            c = c < clo ? clo : c;
            y[i] = c * lsb;
        }
        if (bad) {
            return HGE_ERR_RANGE;
        }
    }
    return HGE_OK;
}

/*
 * hge_sim_chain.c - filter, delay, clip and ADC of the simulated chain (hge_sim_chain.h).
 */
#include "hge_sim_chain.h"

#include <math.h>
#include <stddef.h>

#define HGE_SIM_TWO52 4503599627370496.0 /* 2^52 */

/* np.round: nearest integer, ties to even, sign kept; NaN and |x| >= 2^52 unchanged. */
static double chain_round(double x)
{
    const double a = fabs(x);
    if (!(a < HGE_SIM_TWO52)) {
        return x;
    }
    return copysign((a + HGE_SIM_TWO52) - HGE_SIM_TWO52, x);
}

hge_status hge_sim_chain(const double *x, uint64_t n, int filter, double b0, double alpha, double z0, int delay,
                         double c1, double frac, double range, double lsb, double *out)
{
    if (n == 0u) {
        return HGE_OK;
    }
    if (x == NULL || out == NULL) {
        return HGE_ERR_NULL;
    }
    if (!(range >= 0.0) || !(lsb >= 0.0)) {
        return HGE_ERR_RANGE;
    }
    double z = z0, prev = 0.0;
    for (uint64_t i = 0; i < n; i++) {
        double y = x[i];
        if (filter) {
            y = z + b0 * y;
            z = alpha * y;
        }
        double d = y;
        if (delay) {
            const double before = i ? prev : y;
            d = c1 * y + frac * before;
        }
        prev = y;
        d = d < -range ? -range : d;
        d = d > range ? range : d;
        if (lsb > 0.0) {
            d = chain_round(d / lsb) * lsb;
        }
        out[i] = d;
    }
    return HGE_OK;
}

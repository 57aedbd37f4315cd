/*
 * hge_sim_ramp.c - Hermite ramps of the simulator (hge_sim_ramp.h).
 */
#include "hge_sim_ramp.h"

#include <stddef.h>

/* #{knots[0..nk) <= t} for increasing knots (searchsorted side="right"). */
static uint64_t count_le(const double *kn, uint64_t nk, double t)
{
    uint64_t lo = 0, hi = nk;
    while (lo < hi) {
        const uint64_t mid = lo + (hi - lo) / 2u;
        if (kn[mid] <= t) {
            lo = mid + 1u;
        } else {
            hi = mid;
        }
    }
    return lo;
}

hge_status hge_sim_ramp_process(const double *v, uint32_t n_dim, uint64_t n, uint64_t stride,
                                const int64_t *ramps, uint32_t n_ramps, const double *knots,
                                const double *I, const double *G, uint64_t g_stride, uint64_t n_pts,
                                double *out)
{
    if (n_dim == 0u || n_dim > HGE_SIM_RAMP_MAX_DIM || stride < n || g_stride < n_pts) {
        return HGE_ERR_SIZE;
    }
    if (n_ramps == 0u) {
        return HGE_OK;
    }
    if (v == NULL || ramps == NULL || knots == NULL || I == NULL || G == NULL || out == NULL) {
        return HGE_ERR_NULL;
    }
    for (uint32_t r = 0; r < n_ramps; r++) {
        const int64_t s = ramps[4u * r], e = ramps[4u * r + 1u], k0 = ramps[4u * r + 2u],
                      nk = ramps[4u * r + 3u];
        if (s < 0 || e <= s || (uint64_t)e > n || k0 < 0 || nk < 2 || (uint64_t)k0 > n_pts ||
            (uint64_t)nk > n_pts - (uint64_t)k0) {
            return HGE_ERR_RANGE;
        }
    }
    double f[HGE_SIM_RAMP_MAX_DIM], D[HGE_SIM_RAMP_MAX_DIM];
    for (uint32_t r = 0; r < n_ramps; r++) {
        const uint64_t s = (uint64_t)ramps[4u * r], e = (uint64_t)ramps[4u * r + 1u];
        const uint64_t k0 = (uint64_t)ramps[4u * r + 2u], nk = (uint64_t)ramps[4u * r + 3u];
        const double *kn = knots + k0;
        double dd = 0.0;
        for (uint32_t j = 0; j < n_dim; j++) {
            f[j] = v[(size_t)j * stride + s];
            D[j] = v[(size_t)j * stride + e - 1u] - f[j];
            dd = j ? dd + D[j] * D[j] : D[j] * D[j];
        }
        if (!(dd >= 1e-300)) { /* np.maximum(dd, 1e-300); dd is a sum of squares, never NaN for finite v */
            dd = 1e-300;
        }
        for (uint64_t i = s; i < e; i++) {
            double num = 0.0;
            for (uint32_t j = 0; j < n_dim; j++) {
                const double p = D[j] * (v[(size_t)j * stride + i] - f[j]);
                num = j ? num + p : p;
            }
            const double t = num / dd;
            uint64_t c = count_le(kn, nk, t);
            c = c == 0u ? 0u : c - 1u;
            if (c > nk - 2u) {
                c = nk - 2u;
            }
            const uint64_t k = k0 + c;
            const double h = knots[k + 1u] - knots[k];
            const double u = (t - knots[k]) / h;
            double s0 = 0.0, s1 = 0.0;
            for (uint32_t j = 0; j < n_dim; j++) {
                const double p0 = D[j] * G[(size_t)j * g_stride + k];
                const double p1 = D[j] * G[(size_t)j * g_stride + k + 1u];
                s0 = j ? s0 + p0 : p0;
                s1 = j ? s1 + p1 : p1;
            }
            const double m0 = s0 * h, m1 = s1 * h;
            const double u2 = u * u, u3 = u * u * u;
            const double y = (2.0 * u3 - 3.0 * u2 + 1.0) * I[k] + (u3 - 2.0 * u2 + u) * m0 +
                             (-2.0 * u3 + 3.0 * u2) * I[k + 1u] + (u3 - u2) * m1;
            const double w0 = 1.0 - u;
            double corr = 0.0;
            for (uint32_t j = 0; j < n_dim; j++) {
                const double x = v[(size_t)j * stride + i];
                const double off = x - (f[j] + t * D[j]);
                const double gl = w0 * G[(size_t)j * g_stride + k] + u * G[(size_t)j * g_stride + k + 1u];
                const double p = gl * off;
                corr = j ? corr + p : p;
            }
            out[i] = y + corr;
        }
    }
    return HGE_OK;
}

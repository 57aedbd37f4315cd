/*
 * hge_sim_sos.c - second-order sections, direct form II transposed (hge_sim_sos.h).
 */
#include "hge_sim_sos.h"

#include <stddef.h>
#include <string.h>

hge_status hge_sim_sos(const double *sos, uint32_t n_sections, double *zi, const double *x, uint64_t n, double *y)
{
    if (n == 0u) {
        return HGE_OK;
    }
    if (x == NULL || y == NULL || (n_sections > 0u && (sos == NULL || zi == NULL))) {
        return HGE_ERR_NULL;
    }
    if (y != x) {
        memmove(y, x, (size_t)n * sizeof *y);
    }
    for (uint32_t s = 0; s < n_sections; s++) {
        const double *c = sos + 6u * (size_t)s;
        const double b0 = c[0], b1 = c[1], b2 = c[2], a1 = c[4], a2 = c[5];
        double z0 = zi[2u * (size_t)s], z1 = zi[2u * (size_t)s + 1u];
        for (uint64_t i = 0; i < n; i++) {
            const double in = y[i];
            const double out = b0 * in + z0;
            z0 = (b1 * in - a1 * out) + z1;
            z1 = b2 * in - a2 * out;
            y[i] = out;
        }
        zi[2u * (size_t)s] = z0;
        zi[2u * (size_t)s + 1u] = z1;
    }
    return HGE_OK;
}

/*
 * hge_sim_sos.c - second-order sections, direct form II transposed (hge_sim_sos.h).
 */
#include "hge_sim_sos.h"

#include <stddef.h>
#include <string.h>

/* A VEX-encoded (three-operand) clone where the CPU has AVX2: fewer register copies, the same scalar
 * operations (no FMA is enabled by "avx2", and the build contracts nothing): the same bits. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define HGE_SIM_SOS_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define HGE_SIM_SOS_CLONES
#endif

/* One section over y[0..n) in place (the header's three lines), state in z[0..1]. */
#define SOS_STEP(in, out, b0, b1, b2, a1, a2, z0, z1) \
    do {                                              \
        (out) = (b0) * (in) + (z0);                   \
        (z0) = ((b1) * (in) - (a1) * (out)) + (z1);   \
        (z1) = (b2) * (in) - (a2) * (out);            \
    } while (0)

HGE_SIM_SOS_CLONES
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
    uint32_t s = 0;
    /* Two sections per pass: section s + 1 takes section s's output of the same sample at once (the same
     * operations on the same operands as one section per pass; one load and one store fewer). */
    for (; s + 2u <= n_sections; s += 2u) {
        const double *c = sos + 6u * (size_t)s, *d = c + 6;
        const double b0 = c[0], b1 = c[1], b2 = c[2], a1 = c[4], a2 = c[5];
        const double e0 = d[0], e1 = d[1], e2 = d[2], f1 = d[4], f2 = d[5];
        double z0 = zi[2u * (size_t)s], z1 = zi[2u * (size_t)s + 1u];
        double w0 = zi[2u * (size_t)s + 2u], w1 = zi[2u * (size_t)s + 3u];
        for (uint64_t i = 0; i < n; i++) {
            double mid, out;
            SOS_STEP(y[i], mid, b0, b1, b2, a1, a2, z0, z1);
            SOS_STEP(mid, out, e0, e1, e2, f1, f2, w0, w1);
            y[i] = out;
        }
        zi[2u * (size_t)s] = z0;
        zi[2u * (size_t)s + 1u] = z1;
        zi[2u * (size_t)s + 2u] = w0;
        zi[2u * (size_t)s + 3u] = w1;
    }
    for (; s < n_sections; s++) {
        const double *c = sos + 6u * (size_t)s;
        const double b0 = c[0], b1 = c[1], b2 = c[2], a1 = c[4], a2 = c[5];
        double z0 = zi[2u * (size_t)s], z1 = zi[2u * (size_t)s + 1u];
        for (uint64_t i = 0; i < n; i++) {
            double out;
            SOS_STEP(y[i], out, b0, b1, b2, a1, a2, z0, z1);
            y[i] = out;
        }
        zi[2u * (size_t)s] = z0;
        zi[2u * (size_t)s + 1u] = z1;
    }
    return HGE_OK;
}

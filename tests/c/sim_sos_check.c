/*
 * sim_sos_check.c - hge_sim_sos under AddressSanitizer/UndefinedBehaviorSanitizer
 * (tests/test_sim_sos.py builds and runs it): every buffer malloc'd to its exact size, in place
 * and out of place, a record split into calls (the same output and state as one call), lengths
 * 0..9 and 1..12 sections, and the refusals.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_util.h"
#include "hge_sim_sos.h"

static double *draw(size_t n)
{
    double *p = malloc((n ? n : 1u) * sizeof *p);
    for (size_t i = 0; p && i < n; i++) {
        p[i] = 2.0 * uniform() - 1.0;
    }
    return p;
}

static int one(uint32_t k, uint64_t n)
{
    double *sos = draw(6u * (size_t)k), *x = draw((size_t)n), *zi = draw(2u * (size_t)k);
    double *zi2 = malloc((k ? 2u * (size_t)k : 1u) * sizeof *zi2);
    double *y = malloc((n ? n : 1u) * sizeof *y), *y2 = malloc((n ? n : 1u) * sizeof *y2);
    CHECK(sos && x && zi && zi2 && y && y2);
    for (uint32_t s = 0; s < k; s++) {   /* stable sections: |a1| + |a2| < 1 */
        sos[6u * s + 3u] = 1.0;
        sos[6u * s + 4u] *= 0.5;
        sos[6u * s + 5u] *= 0.4;
    }
    memcpy(zi2, zi, 2u * (size_t)k * sizeof *zi);
    CHECK(hge_sim_sos(sos, k, zi, x, n, y) == HGE_OK);
    /* the same record in two calls, in place */
    memcpy(y2, x, (size_t)n * sizeof *x);
    const uint64_t cut = n / 3u;
    CHECK(hge_sim_sos(sos, k, zi2, y2, cut, y2) == HGE_OK);
    CHECK(hge_sim_sos(sos, k, zi2, y2 + cut, n - cut, y2 + cut) == HGE_OK);
    CHECK(memcmp(y, y2, (size_t)n * sizeof *y) == 0);
    CHECK(memcmp(zi, zi2, 2u * (size_t)k * sizeof *zi) == 0);
    free(sos);
    free(x);
    free(zi);
    free(zi2);
    free(y);
    free(y2);
    return 0;
}

static int refusals(void)
{
    double c[6] = {1, 0, 0, 1, 0, 0}, z[2] = {0, 0}, v = 1.0, o = 7.0;
    CHECK(hge_sim_sos(NULL, 1u, z, &v, 1u, &o) == HGE_ERR_NULL);
    CHECK(hge_sim_sos(c, 1u, NULL, &v, 1u, &o) == HGE_ERR_NULL);
    CHECK(hge_sim_sos(c, 1u, z, NULL, 1u, &o) == HGE_ERR_NULL);
    CHECK(hge_sim_sos(c, 1u, z, &v, 1u, NULL) == HGE_ERR_NULL);
    CHECK(o == 7.0);
    CHECK(hge_sim_sos(NULL, 0u, NULL, &v, 1u, &o) == HGE_OK && o == 1.0);   /* no sections: a copy */
    CHECK(hge_sim_sos(NULL, 1u, NULL, NULL, 0u, NULL) == HGE_OK);           /* nothing to do */
    return 0;
}

int main(void)
{
    for (uint32_t k = 1; k <= 12u; k++) {
        for (uint64_t n = 0; n < 10u; n++) {
            if (one(k, n)) {
                return 1;
            }
        }
        if (one(k, 1000u)) {
            return 1;
        }
    }
    if (refusals()) {
        return 1;
    }
    printf("PASS sim sos\n");
    return 0;
}

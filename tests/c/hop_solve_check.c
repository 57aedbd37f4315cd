/*
 * hop_solve_check.c - the hopping network's C kernel (csrc/host/hge_hop_solve.c) under
 * AddressSanitizer and UndefinedBehaviorSanitizer (tests/test_hop_sanitizers.py).
 *
 * Every buffer is allocated to its exact size (the workspace to hge_hop_work_doubles(n), the
 * outputs to n_pts points with strides equal to n_pts), so a read or write one element past any
 * of them aborts the run. Networks of 2, 10 and 64 sites (the smallest, the default, the
 * largest), with and without a start, gradient and dphi; the tensors; the refusals (nothing
 * written past what the status says).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hge_hop_solve.h"

#include "check_util.h"

static double *alloc(size_t n)
{
    double *p = malloc(sizeof(double) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) {
        p[i] = NAN; /* unwritten outputs stay NaN */
    }
    return p;
}

static int net_case(uint32_t n, uint64_t n_pts)
{
    double *g_ss = alloc((size_t)n * n), *g_st = alloc((size_t)n * 8u), *c = alloc((size_t)n * 7u), *E = alloc(n);
    for (uint32_t i = 0; i < n; i++) {
        for (uint32_t j = 0; j < n; j++) {
            g_ss[(size_t)i * n + j] = i == j ? 0.0 : 20.0 * uniform();
        }
        double sum = 0.0;
        for (uint32_t t = 0; t < 8u; t++) {
            g_st[(size_t)i * 8u + t] = 20.0 * uniform();
            const double w = 0.1 + uniform();
            if (t < 7u) {
                c[(size_t)i * 7u + t] = w;
            }
            sum += w;
        }
        for (uint32_t k = 0; k < 7u; k++) {
            c[(size_t)i * 7u + k] /= sum;
        }
        E[i] = 0.7 * uniform() - 0.3;
    }
    hge_hop_t s;
    CHECK(hge_hop_init(&s, n, g_ss, g_st, c, E, 0.3, 0.1, 0.01, 0.5, 1e-11, 40u) == HGE_OK);
    CHECK(hge_hop_reset(&s) == HGE_OK);
    const uint64_t nw = hge_hop_work_doubles(n);
    double *work = alloc(nw);
    double *V = alloc(7u * n_pts), *I = alloc(n_pts), *G = alloc(7u * n_pts), *phi = alloc(n_pts * n);
    double *dphi = alloc(n_pts * n * 7u), *I2 = alloc(n_pts), *G2 = alloc(7u * n_pts), *phi2 = alloc(n_pts * n);
    for (uint64_t i = 0; i < 7u * n_pts; i++) {
        V[i] = 1.8 * uniform() - 1.2;
    }
    uint64_t done = 99;
    CHECK(hge_hop_process(&s, V, n_pts, n_pts, NULL, I, G, n_pts, phi, dphi, work, nw, &done) == HGE_OK);
    CHECK(done == n_pts);
    for (uint64_t q = 0; q < n_pts; q++) {
        CHECK(isfinite(I[q]));
        for (uint32_t k = 0; k < 7u; k++) {
            CHECK(isfinite(G[k * n_pts + q]));
        }
    }
    /* Warm-started at its own solution: the same current to round-off; currents only, no phi. */
    CHECK(hge_hop_process(&s, V, n_pts, n_pts, phi, I2, NULL, n_pts, NULL, NULL, work, nw, &done) == HGE_OK);
    for (uint64_t q = 0; q < n_pts; q++) {
        CHECK(fabs(I2[q] - I[q]) <= 1e-9 * (1.0 + fabs(I[q])));
    }
    /* Passive: every terminal at 0 V gives exactly 0. */
    double *Z = alloc(7u), I0 = 1.0;
    memset(Z, 0, sizeof(double) * 7u);
    CHECK(hge_hop_process(&s, Z, 1u, 1u, NULL, &I0, NULL, 1u, NULL, NULL, work, nw, &done) == HGE_OK);
    CHECK(I0 == 0.0);
    /* Refusals: a workspace one double short, dphi without G, NULLs, a short stride; a NaN point
     * stops the run there (points before it written, it not). */
    CHECK(hge_hop_process(&s, V, n_pts, n_pts, NULL, I2, G2, n_pts, phi2, NULL, work, nw - 1u, &done) ==
          HGE_ERR_SIZE);
    CHECK(hge_hop_process(&s, V, n_pts, n_pts, NULL, I2, NULL, n_pts, phi2, dphi, work, nw, &done) == HGE_ERR_NULL);
    CHECK(hge_hop_process(&s, NULL, n_pts, n_pts, NULL, I2, G2, n_pts, phi2, NULL, work, nw, &done) == HGE_ERR_NULL);
    CHECK(hge_hop_process(&s, V, n_pts, n_pts - 1u, NULL, I2, G2, n_pts, phi2, NULL, work, nw, &done) ==
          HGE_ERR_SIZE);
    CHECK(hge_hop_process(&s, V, 0u, 0u, NULL, NULL, NULL, 0u, NULL, NULL, NULL, 0u, &done) == HGE_OK && done == 0u);
    if (n_pts >= 2u) {
        double *I3 = alloc(n_pts);
        const double keep = V[n_pts - 1u];
        V[n_pts - 1u] = NAN; /* electrode 0 of the last point */
        CHECK(hge_hop_process(&s, V, n_pts, n_pts, NULL, I3, NULL, n_pts, NULL, NULL, work, nw, &done) ==
              HGE_ERR_RANGE);
        CHECK(done == n_pts - 1u && isfinite(I3[0]) && isnan(I3[n_pts - 1u]));
        V[n_pts - 1u] = keep;
        free(I3);
    }
    /* Newton that cannot converge: a start 1 kV away with damping to V0 per step. */
    double *far = alloc(n);
    for (uint32_t i = 0; i < n; i++) {
        far[i] = 1e3;
    }
    CHECK(hge_hop_process(&s, V, 1u, n_pts, far, I2, NULL, 1u, NULL, NULL, work, nw, &done) == HGE_ERR_RANGE);
    CHECK(done == 0u);
    /* The tensors at the first min(n_pts, 3) points as centres. */
    const uint64_t k = n_pts < 3u ? n_pts : 3u;
    double *Cc = alloc(7u * k), *It = alloc(k), *Gt = alloc(7u * k), *H = alloc(k * 49u), *T = alloc(k * 343u);
    for (uint32_t j = 0; j < 7u; j++) {
        for (uint64_t q = 0; q < k; q++) {
            Cc[j * k + q] = V[j * n_pts + q];
        }
    }
    CHECK(hge_hop_tensors(&s, Cc, k, k, 2e-3, It, Gt, k, H, T, work, nw, &done) == HGE_OK && done == k);
    for (uint64_t q = 0; q < k; q++) {
        CHECK(It[q] == I[q]); /* the centre's solve is hge_hop_process's, from the same start */
        for (uint32_t i = 0; i < 49u; i++) {
            CHECK(isfinite(H[q * 49u + i]));
        }
        for (uint32_t i = 0; i < 343u; i++) {
            CHECK(isfinite(T[q * 343u + i]));
        }
    }
    CHECK(hge_hop_tensors(&s, Cc, k, k, 0.0, It, Gt, k, H, T, work, nw, &done) == HGE_ERR_RANGE);
    CHECK(hge_hop_tensors(&s, Cc, k, k, 2e-3, It, Gt, k, H, T, work, nw - 1u, &done) == HGE_ERR_SIZE);
    CHECK(hge_hop_tensors(&s, Cc, k, k, 2e-3, It, NULL, k, H, T, work, nw, &done) == HGE_ERR_NULL);
    free(Cc), free(It), free(Gt), free(H), free(T), free(far), free(Z);
    free(work), free(V), free(I), free(G), free(phi), free(dphi), free(I2), free(G2), free(phi2);
    free(g_ss), free(g_st), free(c), free(E);
    return 0;
}

static int init_refusals(void)
{
    double g_ss[4] = {0, 1, 1, 0}, g_st[16], c[14], E[2] = {0.1, -0.1};
    for (int i = 0; i < 16; i++) {
        g_st[i] = 1.0;
    }
    for (int i = 0; i < 14; i++) {
        c[i] = 0.1;
    }
    hge_hop_t s;
    CHECK(hge_hop_init(&s, 2u, g_ss, g_st, c, E, 0.3, 0.1, 0.01, 0.5, 1e-11, 40u) == HGE_OK);
    CHECK(hge_hop_init(NULL, 2u, g_ss, g_st, c, E, 0.3, 0.1, 0.01, 0.5, 1e-11, 40u) == HGE_ERR_NULL);
    CHECK(hge_hop_init(&s, 1u, g_ss, g_st, c, E, 0.3, 0.1, 0.01, 0.5, 1e-11, 40u) == HGE_ERR_SIZE);
    CHECK(hge_hop_init(&s, HGE_HOP_MAX_SITES + 1u, g_ss, g_st, c, E, 0.3, 0.1, 0.01, 0.5, 1e-11, 40u) ==
          HGE_ERR_SIZE);
    CHECK(hge_hop_init(&s, 2u, g_ss, g_st, c, E, 0.0, 0.1, 0.01, 0.5, 1e-11, 40u) == HGE_ERR_COEF);
    CHECK(hge_hop_init(&s, 2u, g_ss, g_st, c, E, 0.3, NAN, 0.01, 0.5, 1e-11, 40u) == HGE_ERR_COEF);
    CHECK(hge_hop_init(&s, 2u, g_ss, g_st, c, E, 0.3, 0.1, 1.0, 0.5, 1e-11, 40u) == HGE_ERR_COEF);
    CHECK(hge_hop_init(&s, 2u, g_ss, g_st, c, E, 0.3, 0.1, 0.01, 0.5, 1e-11, 0u) == HGE_ERR_COEF);
    g_ss[1] = -1.0;
    CHECK(hge_hop_init(&s, 2u, g_ss, g_st, c, E, 0.3, 0.1, 0.01, 0.5, 1e-11, 40u) == HGE_ERR_COEF);
    g_ss[1] = 1.0;
    E[1] = INFINITY;
    CHECK(hge_hop_init(&s, 2u, g_ss, g_st, c, E, 0.3, 0.1, 0.01, 0.5, 1e-11, 40u) == HGE_ERR_COEF);
    return 0;
}

int main(void)
{
    int fails = init_refusals();
    const uint32_t sites[3] = {2u, 10u, HGE_HOP_MAX_SITES};
    const uint64_t pts[3] = {1u, 2u, 17u};
    int cases = 1;
    for (int a = 0; a < 3; a++) {
        for (int b = 0; b < 3; b++) {
            fails |= net_case(sites[a], pts[b]);
            cases++;
        }
    }
    if (fails) {
        return 1;
    }
    printf("PASS hop kernel: %d cases\n", cases);
    return 0;
}

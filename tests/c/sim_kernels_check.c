/*
 * sim_kernels_check.c - the simulator's C kernels (csrc/host/hge_sim_*.c) under
 * AddressSanitizer and UndefinedBehaviorSanitizer (tests/test_sim_sanitizers.py).
 *
 * Every buffer is allocated to its exact size, so a read or write one element past
 * it aborts the run: windows, ramps and runs that end on the record's last sample,
 * partial sample blocks (lengths 1..17 around the 8 and 16 sample blocks), a row
 * stride equal to the record length, every isa of the Taylor kernel (their outputs
 * compared bit for bit), and the refusals (nothing written).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hge_sim_chain.h"
#include "hge_sim_dac.h"
#include "hge_sim_ramp.h"
#include "hge_sim_runs.h"
#include "hge_sim_taylor.h"

#include "check_util.h"

static int taylor_case(uint32_t n_dim, uint64_t n)
{
    const uint32_t n_coef = hge_sim_taylor_coefs(n_dim);
    double *v = malloc(sizeof(double) * n_dim * n);
    int64_t bounds[4] = {0, (int64_t)(n / 2), (int64_t)(n / 2), (int64_t)n}; /* the last ends on sample n-1 */
    double *cen = malloc(sizeof(double) * 2 * n_dim);
    double *coef = malloc(sizeof(double) * 2 * n_coef);
    double *out = malloc(sizeof(double) * n);
    double *ref = malloc(sizeof(double) * n);
    for (uint64_t i = 0; i < n_dim * n; i++) {
        v[i] = uniform() - 0.5;
    }
    for (uint32_t i = 0; i < 2 * n_dim; i++) {
        cen[i] = uniform() - 0.5;
    }
    for (uint32_t i = 0; i < 2 * n_coef; i++) {
        coef[i] = 100.0 * (uniform() - 0.5);
    }
    hge_sim_taylor_t s;
    CHECK(hge_sim_taylor_init(&s, n_dim) == HGE_OK);
    int first = 1;
    for (uint32_t isa = HGE_SIM_ISA_PLAIN; isa <= HGE_SIM_ISA_AVX2; isa++) {
        if (!hge_sim_taylor_isa_available(isa)) {
            continue;
        }
        s.isa = isa;
        CHECK(hge_sim_taylor_process(&s, v, n, n, bounds, 2, cen, coef, first ? ref : out) == HGE_OK);
        if (!first) {
            CHECK(memcmp(out, ref, sizeof(double) * n) == 0);
        }
        first = 0;
    }
    int64_t bad[4] = {0, 1, 1, (int64_t)n + 1};
    memset(out, 0, sizeof(double) * n);
    s.isa = HGE_SIM_ISA_AUTO;
    CHECK(hge_sim_taylor_process(&s, v, n, n, bad, 2, cen, coef, out) == HGE_ERR_RANGE);
    CHECK(out[0] == 0.0);
    free(v);
    free(cen);
    free(coef);
    free(out);
    free(ref);
    return 0;
}

static int ramp_runs_lines_case(uint64_t n)
{
    const uint32_t n_dim = 7;
    double *v = malloc(sizeof(double) * n_dim * n);
    for (uint32_t j = 0; j < n_dim; j++) { /* a line, then a wiggle, then a line */
        for (uint64_t i = 0; i < n; i++) {
            v[j * n + i] = i < n / 3 ? 0.01 * j + 1e-3 * (double)i : 0.01 * j + 0.004 * sin((double)i);
        }
    }
    /* ramp over the whole record: 4 knots */
    const uint64_t n_pts = 4;
    double knots[4] = {0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0};
    double *I = malloc(sizeof(double) * n_pts), *G = malloc(sizeof(double) * n_dim * n_pts);
    for (uint64_t k = 0; k < n_pts; k++) {
        I[k] = uniform();
        for (uint32_t j = 0; j < n_dim; j++) {
            G[j * n_pts + k] = uniform();
        }
    }
    int64_t rows[4] = {0, (int64_t)n, 0, 4};
    double *out = malloc(sizeof(double) * n);
    CHECK(hge_sim_ramp_process(v, n_dim, n, n, rows, 1, knots, I, G, n_pts, n_pts, out) == HGE_OK);
    int64_t bad_rows[4] = {0, (int64_t)n, 1, 4};
    CHECK(hge_sim_ramp_process(v, n_dim, n, n, bad_rows, 1, knots, I, G, n_pts, n_pts, out) == HGE_ERR_RANGE);

    const uint64_t cap = (n + 31) / 32;
    int64_t *b = malloc(sizeof(int64_t) * 2 * cap);
    double *lo = malloc(sizeof(double) * n_dim * cap), *hi = malloc(sizeof(double) * n_dim * cap);
    uint64_t n_runs = 0;
    CHECK(hge_sim_runs(v, n_dim, n, n, 32, 0.025, b, lo, hi, cap, &n_runs) == HGE_OK);
    CHECK(n_runs <= cap);
    for (uint64_t r = 0; r < n_runs; r++) {
        CHECK(b[2 * r] >= 0 && b[2 * r] < b[2 * r + 1] && (uint64_t)b[2 * r + 1] <= n);
    }
    if (cap > 1) {
        CHECK(hge_sim_runs(v, n_dim, n, n, 32, 0.025, b, lo, hi, cap - 1, &n_runs) == HGE_ERR_SIZE);
    }
    int64_t segs[4] = {0, (int64_t)(n / 3), (int64_t)(n / 3), (int64_t)n};
    uint8_t line[2];
    CHECK(hge_sim_lines(v, n_dim, n, n, segs, 2, 1e-9, line) == HGE_OK);

    double *q = malloc(sizeof(double) * n_dim * n);
    double llo[7], lhi[7], clo[7], chi[7];
    for (uint32_t j = 0; j < n_dim; j++) {
        llo[j] = -1.0;
        lhi[j] = 1.0;
        clo[j] = -3276.0;
        chi[j] = 3276.0;
    }
    CHECK(hge_sim_dac(v, n_dim, n, n, llo, lhi, 20.0 / 65536.0, clo, chi, q, n) == HGE_OK);
    double *c = malloc(sizeof(double) * n);
    CHECK(hge_sim_chain(q, n, 1, 0.96, 0.04, 0.0, 1, 0.7, 0.3, 110.0, 1e-5, c) == HGE_OK);
    free(v);
    free(I);
    free(G);
    free(out);
    free(b);
    free(lo);
    free(hi);
    free(q);
    free(c);
    return 0;
}

int main(void)
{
    int cases = 0;
    for (uint32_t n_dim = 1; n_dim <= HGE_SIM_MAX_DIM; n_dim++) {
        for (uint64_t n = 1; n <= 35; n++) {
            if (taylor_case(n_dim, n)) {
                return 1;
            }
            cases++;
        }
    }
    for (uint64_t n = 3; n <= 200; n += 7) {
        if (ramp_runs_lines_case(n)) {
            return 1;
        }
        cases++;
    }
    printf("PASS sim kernels: %d cases\n", cases);
    return 0;
}

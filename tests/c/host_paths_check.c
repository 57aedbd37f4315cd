/*
 * host_paths_check.c - every host fast path of csrc/host against the portable C99 path,
 * bit for bit, on random plans, inputs and block splits, for tests/test_host_sanitizers.py,
 * which builds it with AddressSanitizer and UndefinedBehaviorSanitizer (so the lane-cache
 * kernels, which tools/firmware's host-check harness does not call, run under them too).
 * Threads come from the persistent worker pool and, for 2 threads, are also started per
 * call (HGE_POOL_SPAWN); a pass with HGE_POOL_BUSY set runs every pooled call while another
 * thread holds the pool, so the fallback runs too (tests/test_host_sanitizers.py also builds
 * this under ThreadSanitizer).
 * hge_host_mean_q0 likewise against hge_mean_q0. The portable path is itself checked against the Python model by the other tests.
 * Exit status 0 and a PASS line when every path agrees; 1 and the first difference if not.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>

#include "hge_lockin_host.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static uint32_t rnd(void) /* xorshift64*, upper half */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1DULL) >> 32);
}

#define MAX_M 13u
#define MAX_N 3000u

/* design.lockin_filter(1e4, 0.1); a high-gain set that saturates both sections; an
 * identity biquad with first-order gains that land just past the saturation edge. */
static const hge_bw3_coeffs_t COEFFS[3] = {
    {{377411636, 754823576, 377411636}, {-2089019890, 1018226595}, {27776684, 27776683}, -1018188457, 9},
    {{2147483647, -2147483647 - 1, 2147483647}, {-2146409906, 1073204936}, {2147483647, 2147483647}, -1072668082, 0},
    {{1073741824, 0, 0}, {0, 0}, {1610612736, 1610612736}, 0, 0},
};

static int32_t x[MAX_N];
static int32_t *rows;
static int32_t *lanes;
static int32_t *scaled;
static uint8_t *packed; /* exactly its size, no padding: ASan catches a read past the end */
static uint32_t steps[MAX_M];
static uint32_t phases[MAX_M];
static uint32_t blocks[8];

static int run_bw3(uint32_t m, uint32_t n, uint32_t nb, int32_t dc, const hge_bw3_coeffs_t *k, uint32_t isa,
                   uint32_t threads, uint32_t pool, int layout, int32_t *oi, int32_t *oq)
{
    hge_lockin_bw3_term_t terms[MAX_M];
    hge_lockin_bw3_t s;
    hge_host_opts_t o;
    uint32_t b;
    uint32_t pos = 0;
    o.isa = isa;
    o.threads = threads;
    o.pool = pool;
    if (hge_lockin_bw3_init(&s, k, terms, m, steps, phases) != HGE_OK || hge_lockin_bw3_set_dc(&s, dc) != HGE_OK) {
        return 1;
    }
    for (b = 0; b < nb; pos += blocks[b], ++b) {
        hge_status st;
        if (layout < 0) {
            st = hge_lockin_bw3_process(&s, x + pos, blocks[b]);
        } else if (layout == 0) {
            st = hge_host_bw3_process(&s, x + pos, blocks[b], 0, 0, &o);
        } else if (layout == 1) {
            st = hge_host_bw3_process(&s, x + pos, blocks[b], rows + pos, n, &o);
        } else if (layout == 2) {
            st = hge_host_bw3_process_lanes(&s, x + pos, blocks[b], lanes + HGE_LANE_ROW * pos, HGE_LANE_ROW * n, &o);
        } else if (layout == 3) {
            st = hge_host_bw3_process_packed(&s, x + pos, blocks[b], packed + HGE_PACKED_ROW * pos, HGE_PACKED_ROW * n,
                                              &o);
        } else {
            st = hge_host_bw3_process_scaled(&s, x + pos, blocks[b], scaled + HGE_LANE_ROW * pos, HGE_LANE_ROW * n, &o);
        }
        if (st != HGE_OK) {
            return 1;
        }
    }
    return hge_lockin_bw3_output(&s, oi, oq) != HGE_OK;
}

static int run_box(uint32_t m, uint32_t n, uint32_t nb, int32_t dc, uint32_t isa, uint32_t threads, uint32_t pool,
                   int layout, int64_t *oi, int64_t *oq)
{
    hge_lockin_boxcar_term_t terms[MAX_M];
    hge_lockin_boxcar_t s;
    hge_host_opts_t o;
    uint32_t b;
    uint32_t pos = 0;
    uint32_t count;
    o.isa = isa;
    o.threads = threads;
    o.pool = pool;
    if (hge_lockin_boxcar_init(&s, terms, m, steps, phases) != HGE_OK || hge_lockin_boxcar_set_dc(&s, dc) != HGE_OK) {
        return 1;
    }
    for (b = 0; b < nb; pos += blocks[b], ++b) {
        hge_status st;
        if (layout < 0) {
            st = hge_lockin_boxcar_process(&s, x + pos, blocks[b]);
        } else if (layout == 0) {
            st = hge_host_boxcar_process(&s, x + pos, blocks[b], 0, 0, &o);
        } else if (layout == 1) {
            st = hge_host_boxcar_process(&s, x + pos, blocks[b], rows + pos, n, &o);
        } else if (layout == 2) {
            st = hge_host_boxcar_process_lanes(&s, x + pos, blocks[b], lanes + HGE_LANE_ROW * pos, HGE_LANE_ROW * n, &o);
        } else if (layout == 3) {
            st = hge_host_boxcar_process_packed(&s, x + pos, blocks[b], packed + HGE_PACKED_ROW * pos, HGE_PACKED_ROW * n,
                                              &o);
        } else {
            /* The scaled cache serves the Butterworth only: integrate-and-dump on the lane
             * cache stands in, so both filters run in every iteration of main. */
            st = hge_host_boxcar_process_lanes(&s, x + pos, blocks[b], lanes + HGE_LANE_ROW * pos, HGE_LANE_ROW * n, &o);
        }
        if (st != HGE_OK) {
            return 1;
        }
    }
    return hge_lockin_boxcar_output(&s, oi, oq, &count) != HGE_OK;
}

int main(int argc, char **argv)
{
    uint32_t cases = argc > 1 ? (uint32_t)atoi(argv[1]) : 200u;
    uint32_t c;
    uint32_t runs = 0;
    for (c = 0; c < cases; ++c) {
        uint32_t m = 1u + rnd() % MAX_M;
        uint32_t n = 1u + rnd() % MAX_N;
        uint32_t nb = 1u + rnd() % 4u;
        uint32_t kind = rnd() % 4u; /* 0, 1: design; 2: high gain; 3: edge */
        const hge_bw3_coeffs_t *k = &COEFFS[kind == 0u ? 0u : kind - 1u];
        int32_t dc = (int32_t)(rnd() % (1u << 24)) - (1 << 23);
        uint32_t left = n;
        uint32_t i;
        uint32_t isa;
        uint32_t threads;
        uint32_t pool;
        int layout;
        int32_t want_i[MAX_M], want_q[MAX_M], got_i[MAX_M], got_q[MAX_M];
        int64_t bwant_i[MAX_M], bwant_q[MAX_M], bgot_i[MAX_M], bgot_q[MAX_M];
        for (i = 0; i < n; ++i) {
            x[i] = (kind == 3u) ? 8388607 : (int32_t)rnd() >> (rnd() % 8u);
        }
        for (i = 0; i < m; ++i) {
            steps[i] = kind == 3u ? 3u : 1u + rnd() % 0x7FFFFFFFu;
            phases[i] = kind == 3u ? 0x40000000u : rnd();
        }
        if (kind == 3u) {
            dc = 0;
        }
        for (i = 0; i + 1u < nb; ++i) {
            blocks[i] = left ? rnd() % (left + 1u) : 0u;
            left -= blocks[i];
        }
        blocks[nb - 1u] = left;
        rows = (int32_t *)malloc(sizeof(int32_t) * 2u * m * n);
        lanes = (int32_t *)malloc(sizeof(int32_t) * HGE_LANE_ROW * n * ((m + HGE_HOST_LANES - 1u) / HGE_HOST_LANES));
        packed = (uint8_t *)malloc((size_t)HGE_PACKED_ROW * n * ((m + HGE_HOST_LANES - 1u) / HGE_HOST_LANES));
        scaled = (int32_t *)malloc(sizeof(int32_t) * HGE_LANE_ROW * n * ((m + HGE_HOST_LANES - 1u) / HGE_HOST_LANES));
        if (rows == 0 || lanes == 0 || packed == 0 || scaled == 0 || hge_refs_fill(rows, n, m, steps, phases, n) != HGE_OK ||
            hge_refs_fill_lanes(lanes, HGE_LANE_ROW * n, m, steps, phases, n) != HGE_OK ||
            hge_refs_fill_scaled(scaled, HGE_LANE_ROW * n, m, steps, phases, n) != HGE_OK ||
            hge_refs_fill_packed(packed, HGE_PACKED_ROW * n, m, steps, phases, n) != HGE_OK) {
            printf("FAIL case %u: cache\n", c);
            return 1;
        }
        if (run_bw3(m, n, nb, dc, k, HGE_ISA_GENERIC, 1u, HGE_POOL_WORKERS, -1, want_i, want_q) ||
            run_box(m, n, nb, dc, HGE_ISA_GENERIC, 1u, HGE_POOL_WORKERS, -1, bwant_i, bwant_q)) {
            printf("FAIL case %u: portable path\n", c);
            return 1;
        }
        for (isa = HGE_ISA_AUTO; isa <= HGE_ISA_AVX2; ++isa) {
            int32_t mean_want;
            int32_t mean_got;
            if (!hge_host_isa_available(isa)) {
                continue;
            }
            if (hge_mean_q0(x, n, &mean_want) != HGE_OK || hge_host_mean_q0(x, n, &mean_got, isa) != HGE_OK ||
                mean_got != mean_want) {
                printf("FAIL case %u: hge_host_mean_q0 isa %u\n", c, isa);
                return 1;
            }
            for (threads = 1u; threads <= 3u; ++threads) {
                for (pool = HGE_POOL_WORKERS; pool <= (threads > 1u ? HGE_POOL_SPAWN : HGE_POOL_WORKERS); ++pool) {
                    for (layout = 0; layout <= 4; ++layout) {
                        if (run_bw3(m, n, nb, dc, k, isa, threads, pool, layout, got_i, got_q) ||
                            run_box(m, n, nb, dc, isa, threads, pool, layout, bgot_i, bgot_q)) {
                            printf("FAIL case %u: host path isa %u threads %u pool %u layout %d: status\n", c, isa,
                                   threads, pool, layout);
                            return 1;
                        }
                        for (i = 0; i < m; ++i) {
                            if (got_i[i] != want_i[i] || got_q[i] != want_q[i] || bgot_i[i] != bwant_i[i] ||
                                bgot_q[i] != bwant_q[i]) {
                                printf("FAIL case %u (M %u, n %u, coeffs %u): isa %u threads %u pool %u layout %d "
                                       "terminal %u\n", c, m, n, kind, isa, threads, pool, layout, i);
                                return 1;
                            }
                        }
                        runs += 2u;
                    }
                }
            }
        }
        free(rows);
        free(lanes);
        free(packed);
        free(scaled);
    }
    printf("PASS host paths: %u cases, %u runs equal to the portable path\n", cases, runs);
    return 0;
}

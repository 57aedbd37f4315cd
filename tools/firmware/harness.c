/*
 * harness.c - runs the Python model's vectors (vectors.c) through the C core on the
 * target and compares every output word. Prints PASS with the counts, or the first
 * differing word, over semihosting. Then times 7 terminals x 1000 samples per filter
 * with SysTick: under QEMU -icount shift=0 one instruction is 1 ns of virtual time,
 * so SysTick ticks (25 MHz) x 40 = instructions executed.
 */
#include "hge.h"
#include "hge_lockin_cortexm.h"
#include "semihost.h"
#include "vectors.h"

#ifndef TARGET_NAME
#define TARGET_NAME "unknown"
#endif

/* RAM per terminal is part of the contract: fail the build if it drifts. */
typedef char check_bw3_state[(sizeof(hge_lockin_bw3_term_t) <= 72u) ? 1 : -1];
typedef char check_boxcar_state[(sizeof(hge_lockin_boxcar_term_t) <= 24u) ? 1 : -1];

#define MAX_T 64u
static hge_lockin_bw3_term_t bw3_terms[MAX_T];
static hge_lockin_boxcar_term_t box_terms[MAX_T];
static int32_t out32_i[MAX_T], out32_q[MAX_T];
static int64_t out64_i[MAX_T], out64_q[MAX_T];
static int32_t w_buf[16];
static int64_t g_buf[16];

static uint32_t words;

static int fail(const char *what, uint32_t c, uint32_t i, int64_t got, int64_t want)
{
    sh_puts("FAIL " TARGET_NAME " ");
    sh_puts(what);
    sh_puts(" case ");
    sh_put_i64(c);
    sh_puts(" word ");
    sh_put_i64(i);
    sh_puts(": got ");
    sh_put_i64(got);
    sh_puts(", expected ");
    sh_put_i64(want);
    sh_puts("\n");
    return 1;
}

static int run_lockin(uint32_t c)
{
    const lockin_case_t *k = &v_lockin_cases[c];
    const int32_t *x = v_x + k->x_off;
    const uint32_t *bl = v_blocks + k->block_off;
    uint32_t b, m, pos = 0;
    if (k->filter == 0u) {
        hge_lockin_bw3_t s;
        if (hge_lockin_bw3_init(&s, &v_coeffs[k->coeff_idx], bw3_terms, k->n_terms, v_steps + k->term_off,
                                v_phases + k->term_off) != HGE_OK || hge_lockin_bw3_set_dc(&s, k->dc) != HGE_OK) {
            return fail("bw3 init", c, 0, 0, 0);
        }
        for (b = 0; b < k->n_blocks; ++b) {
            if (hge_lockin_bw3_process(&s, x + pos, bl[b]) != HGE_OK) {
                return fail("bw3 process", c, b, 0, 0);
            }
            pos += bl[b];
        }
        (void)hge_lockin_bw3_output(&s, out32_i, out32_q);
        for (m = 0; m < k->n_terms; ++m) {
            out64_i[m] = out32_i[m];
            out64_q[m] = out32_q[m];
        }
    } else {
        hge_lockin_boxcar_t s;
        uint32_t count;
        if (hge_lockin_boxcar_init(&s, box_terms, k->n_terms, v_steps + k->term_off,
                                   v_phases + k->term_off) != HGE_OK || hge_lockin_boxcar_set_dc(&s, k->dc) != HGE_OK) {
            return fail("boxcar init", c, 0, 0, 0);
        }
        for (b = 0; b < k->n_blocks; ++b) {
            if (hge_lockin_boxcar_process(&s, x + pos, bl[b]) != HGE_OK) {
                return fail("boxcar process", c, b, 0, 0);
            }
            pos += bl[b];
        }
        (void)hge_lockin_boxcar_output(&s, out64_i, out64_q, &count);
    }
    for (m = 0; m < k->n_terms; ++m, words += 2u) {
        if (out64_i[m] != v_exp_i[k->out_off + m]) {
            return fail("lockin I", c, m, out64_i[m], v_exp_i[k->out_off + m]);
        }
        if (out64_q[m] != v_exp_q[k->out_off + m]) {
            return fail("lockin Q", c, m, out64_q[m], v_exp_q[k->out_off + m]);
        }
    }
    return 0;
}

#ifdef HGE_HOST_BUILD
/* The host build (make host-check) also runs every host fast path of csrc/host
 * (generic and AVX2 code, NCO or reference cache, 1 or 3 threads) over the same
 * vectors, so the sanitizers see them too. */
#include <stdlib.h>

#include "hge_lockin_host.h"

static uint32_t host_runs;

static int run_lockin_host(uint32_t c)
{
    const lockin_case_t *k = &v_lockin_cases[c];
    const int32_t *x = v_x + k->x_off;
    const uint32_t *bl = v_blocks + k->block_off;
    int32_t *refs = (int32_t *)malloc(sizeof(int32_t) * 2u * k->n_terms * (k->n ? k->n : 1u));
    uint32_t isa, cached, threads, b, m, pos;
    int bad = 0;
    if (refs == 0 || hge_refs_fill(refs, k->n ? k->n : 1u, k->n_terms, v_steps + k->term_off,
                                   v_phases + k->term_off, k->n) != HGE_OK) {
        free(refs);
        return fail("host refs", c, 0, 0, 0);
    }
    for (isa = HGE_ISA_GENERIC; isa <= HGE_ISA_AVX2 && !bad; ++isa) {
        if (!hge_host_isa_available(isa)) {
            continue;
        }
        for (cached = 0; cached < 2u && !bad; ++cached) {
            for (threads = 1; threads <= 3u && !bad; threads += 2u) {
                hge_host_opts_t o;
                o.isa = isa;
                o.threads = threads;
                o.pool = HGE_POOL_WORKERS;
                pos = 0;
                if (k->filter == 0u) {
                    hge_lockin_bw3_t s;
                    (void)hge_lockin_bw3_init(&s, &v_coeffs[k->coeff_idx], bw3_terms, k->n_terms,
                                              v_steps + k->term_off, v_phases + k->term_off);
                    (void)hge_lockin_bw3_set_dc(&s, k->dc);
                    for (b = 0; b < k->n_blocks && !bad; pos += bl[b], ++b) {
                        bad = hge_host_bw3_process(&s, x + pos, bl[b], cached ? refs + pos : 0, k->n, &o) != HGE_OK;
                    }
                    (void)hge_lockin_bw3_output(&s, out32_i, out32_q);
                    for (m = 0; m < k->n_terms; ++m) {
                        out64_i[m] = out32_i[m];
                        out64_q[m] = out32_q[m];
                    }
                } else {
                    hge_lockin_boxcar_t s;
                    uint32_t count;
                    (void)hge_lockin_boxcar_init(&s, box_terms, k->n_terms, v_steps + k->term_off,
                                                 v_phases + k->term_off);
                    (void)hge_lockin_boxcar_set_dc(&s, k->dc);
                    for (b = 0; b < k->n_blocks && !bad; pos += bl[b], ++b) {
                        bad = hge_host_boxcar_process(&s, x + pos, bl[b], cached ? refs + pos : 0, k->n, &o) != HGE_OK;
                    }
                    (void)hge_lockin_boxcar_output(&s, out64_i, out64_q, &count);
                }
                for (m = 0; m < k->n_terms && !bad; ++m) {
                    bad = out64_i[m] != v_exp_i[k->out_off + m] || out64_q[m] != v_exp_q[k->out_off + m];
                }
                ++host_runs;
                if (bad) {
                    (void)fail("host path (isa, cached, threads)", c, isa * 100u + cached * 10u + threads,
                               out64_i[m > 0 ? m - 1 : 0], v_exp_i[k->out_off + (m > 0 ? m - 1 : 0)]);
                }
            }
        }
    }
    free(refs);
    return bad;
}
#endif

/* ---- self-test of the core's per-terminal kernels on this target ------------------------
 * The kernels the core selects for this architecture (hge_lockin_cortexm.h: ARMv7E-M or
 * ARMv6-M; the portable ones of hge_lockin_kernels.h elsewhere) against plain-int64
 * references written from the formulas of hge_lockin.h, over random states and the exact
 * saturation edges (acc = +-2^60, +-2^60 - 1 in each filter section), every b_shift 0..32,
 * random phases, steps, inputs and group offsets. Prints SELFTEST with the count. */
static uint32_t st_rng = 2463534242u;
static uint32_t st_rand(void)
{
    st_rng ^= st_rng << 13;
    st_rng ^= st_rng >> 17;
    st_rng ^= st_rng << 5;
    return st_rng;
}
/* Uniform-ish in [lo, hi] (hi - lo < 2^32). */
static int32_t st_range(int32_t lo, int32_t hi)
{
    uint32_t span = (uint32_t)hi - (uint32_t)lo;
    uint32_t r = st_rand();
    if (span != 0xFFFFFFFFu) {
        r %= span + 1u;
    }
    return (int32_t)((uint32_t)lo + r); /* two's complement wrap: GCC and clang define it */
}

static int32_t ref_sat(int64_t acc)
{
    int64_t y = acc >> 30;
    return y > HGE_FILTER_MAX ? (int32_t)HGE_FILTER_MAX : (y < HGE_FILTER_MIN ? (int32_t)HGE_FILTER_MIN : (int32_t)y);
}

static void ref_step(hge_bw3_channel_t *c, const hge_bw3_mac_t *k, int32_t u)
{
    int64_t acc = ((int64_t)k->b0 * u + (int64_t)k->b1 * c->x1 + (int64_t)k->b2 * c->x2) >> k->b_shift;
    int32_t y;
    acc += (int64_t)k->na1 * c->y1 + (int64_t)k->na2 * c->y2 + (int64_t)c->e1;
    c->e1 = (uint32_t)((uint64_t)acc & 0x3FFFFFFFu);
    y = ref_sat(acc);
    acc = (int64_t)k->c0 * y + (int64_t)k->c1 * c->y1 + (int64_t)k->nd1 * c->z1 + (int64_t)c->e2;
    c->e2 = (uint32_t)((uint64_t)acc & 0x3FFFFFFFu);
    c->x2 = c->x1;
    c->x1 = u;
    c->y2 = c->y1;
    c->y1 = y;
    c->z1 = ref_sat(acc);
}

static void kut_step2(hge_lockin_bw3_term_t *t, const hge_bw3_mac_t *k, int32_t ui, int32_t uq)
{
#if defined(HGE_LOCKIN_V7EM)
    hge_bw3_step2_v7em(&t->i, k, ui, uq);
#elif defined(HGE_LOCKIN_V6M)
    hge_bw3_step2_v6m(t, k, ui, uq);
#else
    hge_bw3_step(&t->i, k, ui);
    hge_bw3_step(&t->q, k, uq);
#endif
}

static int st_same_channel(const hge_bw3_channel_t *a, const hge_bw3_channel_t *b)
{
    return a->x1 == b->x1 && a->x2 == b->x2 && a->y1 == b->y1 && a->y2 == b->y2 && a->z1 == b->z1 &&
           a->e1 == b->e1 && a->e2 == b->e2;
}

static void st_random_channel(hge_bw3_channel_t *c)
{
    c->x1 = st_range(-(1 << 29) + 1, (1 << 29) - 1);
    c->x2 = st_range(-(1 << 29) + 1, (1 << 29) - 1);
    c->y1 = st_range(HGE_FILTER_MIN, HGE_FILTER_MAX);
    c->y2 = st_range(HGE_FILTER_MIN, HGE_FILTER_MAX);
    c->z1 = st_range(HGE_FILTER_MIN, HGE_FILTER_MAX);
    c->e1 = (uint32_t)st_range(0, 0x3FFFFFFF);
    c->e2 = (uint32_t)st_range(0, 0x3FFFFFFF);
    c->acc = 0;
}

static void st_random_mac(hge_bw3_mac_t *k)
{
    k->b0 = (int32_t)st_rand();
    k->b1 = (int32_t)st_rand();
    k->b2 = (int32_t)st_rand();
    k->b_shift = st_rand() % 33u;
    k->b_lshift = 32u - k->b_shift;
    k->na1 = st_range(-2147483647, 2147483647);
    k->na2 = st_range(-(1 << 30) + 1, (1 << 30) - 1);
    k->c0 = (int32_t)st_rand();
    k->c1 = (int32_t)st_rand();
    k->nd1 = st_range(-(1 << 30) + 1, (1 << 30) - 1);
    if (st_rand() & 1u) { /* small numerators too, so that not every step saturates */
        k->b0 >>= 12;
        k->b1 >>= 12;
        k->b2 >>= 12;
        k->c0 >>= 2;
        k->c1 >>= 2;
    }
}

/* Steps whose biquad (edge < 4) or first-order sum (edge >= 4) is exactly
 * 2^60, 2^60 - 1, -2^60, -2^60 - 1: the last values inside and outside [-2^60, 2^60). */
static void st_edge(uint32_t edge, hge_bw3_channel_t *c, hge_bw3_mac_t *k, int32_t *u)
{
    static const int32_t ys[4] = {1 << 30, (1 << 30) - 1, -(1 << 30), -(1 << 30)};
    static const int32_t ns[4] = {1 << 30, 1 << 30, 1 << 30, 1 << 30};
    static const uint32_t es[4] = {0u, 0x3FFFFFFFu, 0u, 0u};
    static const int32_t y2s[4] = {0, 0, 0, -1};
    uint32_t e = edge & 3u;
    hge_bw3_channel_t z = {0, 0, 0, 0, 0, 0u, 0u, 0};
    hge_bw3_mac_t m = {0, 0, 0, 0u, 0, 0, 0, 0, 0, 32u};
    *c = z;
    *k = m;
    *u = 0;
    if (edge < 4u) { /* biquad: na1 y1 + na2 y2 + e1; y2 = -1 with na2 = 1 makes -2^60 - 1 */
        k->na1 = ns[e];
        c->y1 = ys[e];
        k->na2 = 1;
        c->y2 = y2s[e];
        c->e1 = es[e];
    } else { /* first order: c1 y1 + nd1 z1 + e2 (biquad output 0: all zero) */
        k->c1 = ns[e];
        c->y1 = ys[e];
        k->nd1 = y2s[e] ? 1 : 0;
        c->z1 = y2s[e];
        c->e2 = es[e];
    }
}

static int32_t st_sin(uint32_t phase)
{
    return hge_sin_q22(phase);
}

static int self_test(void)
{
    static hge_lockin_bw3_term_t t;
    static hge_lockin_boxcar_term_t bt;
    static int32_t xs[2u * HGE_CHUNK];
    static int32_t x16[HGE_CHUNK];
    static int32_t xc[HGE_CHUNK];
    hge_bw3_channel_t ri;
    hge_bw3_channel_t rq;
    hge_bw3_mac_t k;
    uint32_t n = 0;
    uint32_t trial;
    for (trial = 0; trial < 2000u + 8u; ++trial, ++n) {
        int32_t ui;
        int32_t uq;
        if (trial < 8u) {
            st_edge(trial, &t.i, &k, &ui);
            t.q = t.i;
            uq = ui;
        } else {
            st_random_mac(&k);
            st_random_channel(&t.i);
            st_random_channel(&t.q);
            ui = st_range(-(1 << 29) + 1, (1 << 29) - 1);
            uq = st_range(-(1 << 29) + 1, (1 << 29) - 1);
        }
        ri = t.i;
        rq = t.q;
        ref_step(&ri, &k, ui);
        ref_step(&rq, &k, uq);
        kut_step2(&t, &k, ui, uq);
        if (!st_same_channel(&t.i, &ri) || !st_same_channel(&t.q, &rq)) {
            return fail("selftest filter step", trial, 0, t.i.z1, ri.z1);
        }
    }
    for (trial = 0; trial < 200u; ++trial, ++n) {
        /* One terminal over a chunk: kernel under test vs per-sample int64 reference. */
        uint32_t len = 1u + st_rand() % HGE_CHUNK;
        uint32_t count = st_rand() % HGE_BW3_DECIMATION;
        uint32_t j;
        uint32_t ph;
        int32_t ai;
        int32_t aq;
        int64_t bi;
        int64_t bq;
        hge_lockin_bw3_term_t r;
        hge_lockin_boxcar_term_t rb;
        uint32_t c2 = count;
        st_random_mac(&k);
        st_random_channel(&t.i);
        st_random_channel(&t.q);
        t.nco.phase = st_rand();
        t.nco.step = 1u + st_rand() % 0x7FFFFFFFu;
        t.i.acc = st_range(-(1 << 26) * (int32_t)count, (1 << 26) * (int32_t)count);
        t.q.acc = st_range(-(1 << 26) * (int32_t)count, (1 << 26) * (int32_t)count);
        for (j = 0; j < len; ++j) {
            int32_t v = (trial & 3u) == 0u ? ((j & 1u) ? HGE_SAMPLE_MIN : HGE_SAMPLE_MAX)
                                           : st_range(HGE_SAMPLE_MIN, HGE_SAMPLE_MAX);
            xc[j] = v;
            x16[j] = v * 16;
            xs[2u * j] = v;
            xs[2u * j + 1u] = v >> 8;
        }
        r = t;
        ph = r.nco.phase;
        ai = r.i.acc;
        aq = r.q.acc;
        for (j = 0; j < len; ++j) {
            ai += (int32_t)(((int64_t)xc[j] * st_sin(ph) + 262144) >> 19);
            aq += (int32_t)(((int64_t)xc[j] * st_sin(ph + HGE_QUARTER_TURN) + 262144) >> 19);
            ph += r.nco.step;
            if (++c2 == HGE_BW3_DECIMATION) {
                ref_step(&r.i, &k, ai);
                ref_step(&r.q, &k, aq);
                ai = aq = 0;
                c2 = 0u;
            }
        }
#if defined(HGE_LOCKIN_V7EM)
        hge_bw3_term_chunk_v7em(&t, &k, x16, len, count);
#elif defined(HGE_LOCKIN_V6M)
        hge_bw3_term_chunk_v6m(&t, &k, xs, len, count);
#else
        hge_bw3_term_chunk(&t, &k, x16, len, count);
#endif
        (void)x16; /* one of the two layouts is the kernel's */
        (void)xs;
        if (t.nco.phase != ph || t.i.acc != ai || t.q.acc != aq || !st_same_channel(&t.i, &r.i) ||
            !st_same_channel(&t.q, &r.q)) {
            return fail("selftest bw3 chunk", trial, len, t.i.acc, ai);
        }
        /* Integrate-and-dump over the same chunk. */
        bt.nco = r.nco;
        bt.acc_i = (int64_t)(int32_t)st_rand() * 1048576;
        bt.acc_q = (int64_t)(int32_t)st_rand() * 1048576;
        rb = bt;
        bi = rb.acc_i;
        bq = rb.acc_q;
        ph = rb.nco.phase;
        for (j = 0; j < len; ++j) {
            bi += (int64_t)xc[j] * st_sin(ph);
            bq += (int64_t)xc[j] * st_sin(ph + HGE_QUARTER_TURN);
            ph += rb.nco.step;
        }
#if defined(HGE_LOCKIN_V7EM)
        hge_boxcar_term_chunk_v7em(&bt, xc, len);
#else
        hge_boxcar_term_chunk(&bt, xc, len);
#endif
        if (bt.nco.phase != ph || bt.acc_i != bi || bt.acc_q != bq) {
            return fail("selftest boxcar chunk", trial, len, bt.acc_i, bi);
        }
    }
    sh_puts("SELFTEST " TARGET_NAME ": ");
    sh_put_i64(n);
    sh_puts(" kernel runs equal to the int64 references (filter steps incl. saturation edges, "
            "chunks of both filters)\n");
    return 0;
}

static int run_update(uint32_t c)
{
    const update_case_t *k = &v_update_cases[c];
    hge_update_t u;
    uint32_t m;
    if (hge_update_init(&u, v_u_lo + k->e_off, v_u_hi + k->e_off, k->n_electrodes, k->eta, k->shift) != HGE_OK) {
        return fail("update init", c, 0, 0, 0);
    }
    for (m = 0; m < k->n_electrodes; ++m) {
        g_buf[m] = v_u_g0[k->e_off + m];
        w_buf[m] = v_u_w[k->e_off + m];
    }
    (void)hge_update_accumulate(&u, g_buf, v_u_dedi + k->k_off, v_u_didv + k->kd_off, k->n_points);
    (void)hge_update_process(&u, w_buf, g_buf);
    for (m = 0; m < k->n_electrodes; ++m, words += 2u) {
        if (g_buf[m] != v_u_gexp[k->e_off + m]) {
            return fail("update g", c, m, g_buf[m], v_u_gexp[k->e_off + m]);
        }
        if (w_buf[m] != v_u_wexp[k->e_off + m]) {
            return fail("update w", c, m, w_buf[m], v_u_wexp[k->e_off + m]);
        }
    }
    return 0;
}

#ifndef HGE_HOST_BUILD /* the host check (make host-check) has no SysTick to time with */
/* Virtual nanoseconds per SysTick tick, times 2 (QEMU -icount shift=0 retires one
 * instruction per virtual ns): MPS2 boards clock SysTick at 25 MHz (40 ns), the
 * micro:bit's nRF51 at 16 MHz (62.5 ns; the Makefile passes 125). */
#ifndef HGE_TICK_NS_X2
#define HGE_TICK_NS_X2 80
#endif
static int32_t timing_x[1000];

/* SysTick: 24-bit down counter on the processor clock. */
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)

/* Instructions per terminal-sample to 0.1 (7 terminals x 1000 samples), from SysTick ticks. */
static void put_per_ts(uint32_t ticks)
{
    int64_t tenths = ((int64_t)ticks * HGE_TICK_NS_X2 * 10 + 7000) / 14000; /* rounded */
    sh_put_i64(tenths / 10);
    sh_puts(".");
    sh_put_i64(tenths % 10);
    sh_puts("\n");
}

static void time_filters(void)
{
    static const uint32_t steps[7] = {429496730u, 412316860u, 390842024u, 365072220u, 335007449u, 292057776u,
                                      231928234u};
    hge_lockin_bw3_t s;
    hge_lockin_boxcar_t sb;
    uint32_t k, t0, t1;
    for (k = 0; k < 1000u; ++k) {
        timing_x[k] = (int32_t)((k * 2654435761u) >> 9) - 4194304;
    }
    SYST_RVR = 0x00FFFFFFu;
    SYST_CVR = 0u;
    SYST_CSR = 5u; /* enable, processor clock */
    (void)hge_lockin_bw3_init(&s, &v_coeffs[0], bw3_terms, 7u, steps, 0);
    t0 = SYST_CVR;
    (void)hge_lockin_bw3_process(&s, timing_x, 1000u);
    t1 = SYST_CVR;
    sh_puts("TIMING " TARGET_NAME " bw3 instructions per terminal-sample: ");
    put_per_ts((t0 - t1) & 0x00FFFFFFu);
    (void)hge_lockin_boxcar_init(&sb, box_terms, 7u, steps, 0);
    t0 = SYST_CVR;
    (void)hge_lockin_boxcar_process(&sb, timing_x, 1000u);
    t1 = SYST_CVR;
    sh_puts("TIMING " TARGET_NAME " boxcar instructions per terminal-sample: ");
    put_per_ts((t0 - t1) & 0x00FFFFFFu);
}
#endif /* HGE_HOST_BUILD */

int main(void)
{
    uint32_t c, n = 0;
    int32_t mean;
    const int32_t *mx = v_mean_x;
    for (c = 0; c < v_n_lockin_cases; ++c, ++n) {
        if (run_lockin(c)) {
            return 1;
        }
#ifdef HGE_HOST_BUILD
        if (run_lockin_host(c)) {
            return 1;
        }
#endif
    }
    for (c = 0; c < v_n_mean_cases; ++c, ++n, ++words) {
        if (hge_mean_q0(mx, v_mean_n[c], &mean) != HGE_OK || mean != v_mean_exp[c]) {
            return fail("mean", c, 0, mean, v_mean_exp[c]);
        }
        mx += v_mean_n[c];
    }
    for (c = 0; c < v_n_update_cases; ++c, ++n) {
        if (run_update(c)) {
            return 1;
        }
    }
    if (self_test()) {
        return 1;
    }
    sh_puts("PASS " TARGET_NAME ": ");
    sh_put_i64(n);
    sh_puts(" vectors, ");
    sh_put_i64(words);
    sh_puts(" output words equal to the Python model\n");
    sh_puts("STATE " TARGET_NAME " bytes per terminal: bw3 ");
    sh_put_i64(hge_lockin_bw3_state_bytes());
    sh_puts(", boxcar ");
    sh_put_i64(hge_lockin_boxcar_state_bytes());
    sh_puts("\n");
#ifndef HGE_HOST_BUILD
    time_filters();
#else
    sh_puts("HOST " TARGET_NAME ": ");
    sh_put_i64(host_runs);
    sh_puts(" lock-in runs on the host fast paths equal to the Python model\n");
#endif
    return 0;
}

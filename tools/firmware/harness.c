/*
 * harness.c - runs the Python model's vectors (vectors.c) through the C core on the
 * target and compares every output word. Prints PASS with the counts, or the first
 * differing word, over semihosting. Then times 7 terminals x 1000 samples per filter
 * with SysTick: under QEMU -icount shift=0 one instruction is 1 ns of virtual time,
 * so SysTick ticks (25 MHz) x 40 = instructions executed.
 */
#include "hge.h"
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
    sh_put_i64((int64_t)((t0 - t1) & 0x00FFFFFFu) * HGE_TICK_NS_X2 / 14000);
    sh_puts("\n");
    (void)hge_lockin_boxcar_init(&sb, box_terms, 7u, steps, 0);
    t0 = SYST_CVR;
    (void)hge_lockin_boxcar_process(&sb, timing_x, 1000u);
    t1 = SYST_CVR;
    sh_puts("TIMING " TARGET_NAME " boxcar instructions per terminal-sample: ");
    sh_put_i64((int64_t)((t0 - t1) & 0x00FFFFFFu) * HGE_TICK_NS_X2 / 14000);
    sh_puts("\n");
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

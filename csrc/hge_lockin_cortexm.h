/*
 * hge_lockin_cortexm.h - the lock-in's per-terminal kernels for Cortex-M4
 * (ARMv7E-M with the DSP extension) and Cortex-M0/M0+ (ARMv6-M), selected in
 * hge_lockin.c by the compiler's architecture macros (HGE_LOCKIN_V7EM,
 * HGE_LOCKIN_V6M below). Internal: included by hge_lockin.c (and by the
 * firmware harness, which tests these kernels on the target).
 *
 * Every function here computes exactly what the portable kernels of
 * hge_lockin_kernels.h compute (same integers, bit for bit): the harness runs
 * the Python model's vectors through them on QEMU (make -C tools/firmware
 * check) and compares them with plain-int64 references over random and edge
 * states on the target itself (tools/firmware/harness.c, "SELFTEST" line).
 * What changes is the instruction sequence.
 *
 * Cortex-M4:
 *   - one terminal runs over a whole chunk with phase, step and both pre-sums
 *     in registers; a complete group of 8 samples is unrolled (not at -Os);
 *   - each sample is one asm block: the cosine's table nodes are addressed
 *     from the table's end (index 255 - idx, one SUB) and its fraction is
 *     65535 - f, so the quadrant fold is one SBFX + EOR for both; the
 *     interpolation lo + ((hi - lo) f + 2^15) >> 16 is one MLA with the
 *     rounding constant in a register; the mixer is one SMMLAR per product;
 *   - the filter step of both channels of a terminal: one hand-scheduled
 *     routine (hge_bw3_step2_v7em) with the channel state in registers (one LDM,
 *     one STM per channel), the 64-bit b_shift as four register shifts, and
 *     the saturation as one range check whose rare branch is out of line.
 * Cortex-M0/M0+ (no 32x32->64 multiply):
 *   - the chunk holds x' and x' >> 8 side by side; the mixer term takes two
 *     MULS (hge_presum_mac_pieces); at -O2 references and mixers are Thumb-1
 *     asm blocks (at -Os GCC keeps r8-r12 out of Thumb-1 allocation: C steps);
 *   - the filter step (hge_bw3_step_v6m) is Thumb-1 asm: four 16 x 16 MULS per
 *     product into a 64-bit sum with ADCS carries.
 */
#ifndef HGE_LOCKIN_CORTEXM_H
#define HGE_LOCKIN_CORTEXM_H

#include <stddef.h>

#include "hge_lockin_kernels.h"

/* The filter steps (both architectures) address fields by offset: pin the layouts they assume. */
typedef char hge_check_step_channel[(offsetof(hge_bw3_channel_t, x1) == 0u && offsetof(hge_bw3_channel_t, x2) == 4u &&
                                     offsetof(hge_bw3_channel_t, y1) == 8u && offsetof(hge_bw3_channel_t, y2) == 12u &&
                                     offsetof(hge_bw3_channel_t, z1) == 16u && offsetof(hge_bw3_channel_t, e1) == 20u &&
                                     offsetof(hge_bw3_channel_t, e2) == 24u && sizeof(hge_bw3_channel_t) == 32u)
                                        ? 1
                                        : -1];
typedef char hge_check_step_term[(offsetof(hge_lockin_bw3_term_t, q) == offsetof(hge_lockin_bw3_term_t, i) + 32u) ? 1 : -1];
typedef char hge_check_step_mac[(offsetof(hge_bw3_mac_t, b0) == 0u && offsetof(hge_bw3_mac_t, b1) == 4u &&
                                 offsetof(hge_bw3_mac_t, b2) == 8u && offsetof(hge_bw3_mac_t, b_shift) == 12u &&
                                 offsetof(hge_bw3_mac_t, na1) == 16u && offsetof(hge_bw3_mac_t, na2) == 20u &&
                                 offsetof(hge_bw3_mac_t, c0) == 24u && offsetof(hge_bw3_mac_t, c1) == 28u &&
                                 offsetof(hge_bw3_mac_t, nd1) == 32u && offsetof(hge_bw3_mac_t, b_lshift) == 36u)
                                    ? 1
                                    : -1];

#if defined(__ARM_ARCH_7EM__) && defined(__ARM_FEATURE_DSP) && defined(__GNUC__)
#define HGE_LOCKIN_V7EM 1

/*
 * One channel of hge_bw3_step in registers (r0 = channel, r1 = coefficients,
 * r2 = u; scratch r3, r11, r12, lr; state x1..e2 in r4..r10). Formats, rounding
 * and saturation as hge_bw3_step:
 *   biquad  acc = (b0 u + b1 x1 + b2 x2) >> b_shift + na1 y1 + na2 y2 + e1
 *           (SMULL/SMLAL into r12:lr; the arithmetic shift of the 64-bit sum by
 *           s = b_shift in [0, 32] is lo' = (lo >> s) | (hi << (32 - s)),
 *           hi' = hi >> s with register shifts, which give 0 (LSL, LSR) or the
 *           sign (ASR) for a count of 32, so s = 0 and s = 32 need no branch);
 *           e1 = acc mod 2^30 (BIC); y = acc >> 30 when acc is in [-2^60, 2^60),
 *           i.e. hi + 2^28 < 2^29 unsigned, else -2^30 or 2^30 - 1 by sign
 *           (hge_q30_sat; out of line: a filter only saturates on overload);
 *   first order  acc = c0 y + c1 y1 + nd1 z1 + e2, e2 and z as above.
 * No sum overflows int64 (bounds in hge_lockin.c). The new state is stored as
 * x1 = u, x2 = x1, y1 = y, y2 = y1, z1 = z, e1, e2: one STM, because y is
 * computed into r5 (x2, dead by then) and z into r7 (y2, dead). L: a digit
 * that makes this copy's local labels unique.
 */
#define HGE_V7EM_CHANNEL(L)                                                                                          \
    "ldm r0, {r4-r10}\n\t"                                                                                         \
    "ldrd r3, r11, [r1, #0]\n\t"  /* b0, b1 */                                                                     \
    "smull r12, lr, r3, r2\n\t"                                                                                    \
    "smlal r12, lr, r11, r4\n\t"                                                                                   \
    "ldrd r3, r11, [r1, #8]\n\t"  /* b2, b_shift */                                                                \
    "smlal r12, lr, r3, r5\n\t"                                                                                    \
    "ldr r3, [r1, #36]\n\t"       /* 32 - b_shift */                                                               \
    "lsr r12, r12, r11\n\t"                                                                                        \
    "lsl r5, lr, r3\n\t"                                                                                           \
    "orr r12, r12, r5\n\t"                                                                                         \
    "asr lr, lr, r11\n\t"                                                                                          \
    "ldrd r3, r11, [r1, #16]\n\t" /* na1, na2 */                                                                   \
    "smlal r12, lr, r3, r6\n\t"                                                                                    \
    "smlal r12, lr, r11, r7\n\t"                                                                                   \
    "adds r12, r12, r9\n\t"                                                                                        \
    "adc lr, lr, #0\n\t"                                                                                           \
    "bic r9, r12, #0xC0000000\n\t"                                                                                 \
    "add r3, lr, #0x10000000\n\t"                                                                                  \
    "cmp r3, #0x20000000\n\t"                                                                                      \
    "bhs " #L "1f\n\t"                                                                                             \
    "lsr r5, r12, #30\n\t"                                                                                         \
    "orr r5, r5, lr, lsl #2\n"                                                                                     \
    #L "2:\n\t"                                                                                                    \
    "ldrd r3, r11, [r1, #24]\n\t" /* c0, c1 */                                                                     \
    "smull r12, lr, r3, r5\n\t"                                                                                    \
    "smlal r12, lr, r11, r6\n\t"                                                                                   \
    "ldr r3, [r1, #32]\n\t"       /* nd1 */                                                                        \
    "smlal r12, lr, r3, r8\n\t"                                                                                    \
    "adds r12, r12, r10\n\t"                                                                                       \
    "adc lr, lr, #0\n\t"                                                                                           \
    "bic r10, r12, #0xC0000000\n\t"                                                                                \
    "add r3, lr, #0x10000000\n\t"                                                                                  \
    "cmp r3, #0x20000000\n\t"                                                                                      \
    "bhs " #L "3f\n\t"                                                                                             \
    "lsr r7, r12, #30\n\t"                                                                                         \
    "orr r7, r7, lr, lsl #2\n"                                                                                     \
    #L "4:\n\t"                                                                                                    \
    "stm r0, {r2, r4, r5, r6, r7, r9, r10}\n\t"

/* The saturated outputs of one channel copy: 2^30 - 1 for a positive sum,
 * -2^30 for a negative one (hi = lr holds the sign), then back. */
#define HGE_V7EM_SATURATE(L)                                                                                         \
    #L "1:\n\t"                                                                                                    \
    "mvn r5, #0xC0000000\n\t"                                                                                      \
    "cmp lr, #0\n\t"                                                                                               \
    "it lt\n\t"                                                                                                    \
    "movlt r5, #0xC0000000\n\t"                                                                                    \
    "b " #L "2b\n"                                                                                                 \
    #L "3:\n\t"                                                                                                    \
    "mvn r7, #0xC0000000\n\t"                                                                                      \
    "cmp lr, #0\n\t"                                                                                               \
    "it lt\n\t"                                                                                                    \
    "movlt r7, #0xC0000000\n\t"                                                                                    \
    "b " #L "4b\n\t"

/*
 * hge_bw3_step(&t->i, k, u_i) then hge_bw3_step(&t->q, k, u_q), for
 * ch = &t->i (the q channel follows 32 bytes later). AAPCS: r0 = ch, r1 = k,
 * r2 = u_i, r3 = u_q (kept on the stack for the second channel). Leaves the
 * pre-sums (acc fields) alone: the caller keeps them in registers.
 */
#define HGE_V7EM_ARG __attribute__((unused)) /* read by the asm from r0-r3, not by C */
__attribute__((naked, noinline)) static void hge_bw3_step2_v7em(HGE_V7EM_ARG hge_bw3_channel_t *ch,
                                                                 HGE_V7EM_ARG const hge_bw3_mac_t *k,
                                                                 HGE_V7EM_ARG int32_t u_i, HGE_V7EM_ARG int32_t u_q)
{
    __asm__ volatile("push {r3-r11, lr}\n\t" HGE_V7EM_CHANNEL(1) "ldr r2, [sp]\n\t"
                     "add r0, r0, #32\n\t" HGE_V7EM_CHANNEL(2) "pop {r3-r11, pc}\n" HGE_V7EM_SATURATE(1)
                         HGE_V7EM_SATURATE(2));
}

/*
 * One sample of one terminal, ARMv7E-M: the references of `ph` (identical to
 * hge_sincos_q22) and what each filter does with them. Written as one asm
 * block so that the instruction sequence is this one (GCC's scheduler
 * otherwise interleaves the unrolled samples and spills):
 *
 *   pos = ph ^ (bit 30 of ph ? ~0 : 0)   odd quadrants mirror (SBFX, EOR)
 *   idx = pos[29:22], f = pos[21:6]      the sine's segment and fraction
 *   sv  = lo + ((d f + 2^15) >> 16)       d = hi - lo; one MLA, kr = 2^15
 *   the cosine reads the mirrored position: segment 255 - idx (its nodes'
 *   address tend - 4 idx, tend = &table[255]) and fraction 65535 - f = ~f + 2^16,
 *   so cv = lo + ((d (~f + 2^16) + 2^15) >> 16) = hi + ((d ~f + 2^15) >> 16)
 *   (d 2^16 leaves the floor exactly; |d ~f| <= 25736 2^16 < 2^31: no overflow);
 *   signs: sin < 0 when ph >= 2^31, cos < 0 when ph + 2^30 >= 2^31 (mod 2^32):
 *   v = (v ^ m) - m with m = that bit spread (an ASR #31 operand).
 * Then ph += st.
 */
#define HGE_V7EM_REFS                                                                                                \
    "sbfx %[t0], %[ph], #30, #1\n\t"                                                                               \
    "eor %[t0], %[t0], %[ph]\n\t"                                                                                  \
    "ubfx %[ix], %[t0], #22, #8\n\t"                                                                               \
    "ubfx %[t0], %[t0], #6, #16\n\t"                                                                               \
    "add %[lo], %[tbl], %[ix], lsl #2\n\t"                                                                         \
    "ldrd %[lo], %[hi], [%[lo]]\n\t"                                                                               \
    "sub %[hi], %[hi], %[lo]\n\t"                                                                                  \
    "mla %[hi], %[hi], %[t0], %[kr]\n\t"                                                                           \
    "add %[lo], %[lo], %[hi], asr #16\n\t"                                                                         \
    "eor %[lo], %[lo], %[ph], asr #31\n\t"                                                                         \
    "sub %[lo], %[lo], %[ph], asr #31\n\t" /* lo = sin */

#define HGE_V7EM_COS                                                                                                 \
    "sub %[ix], %[tend], %[ix], lsl #2\n\t"                                                                        \
    "ldrd %[ix], %[hi], [%[ix]]\n\t"                                                                               \
    "mvn %[t0], %[t0]\n\t"                                                                                         \
    "sub %[ix], %[hi], %[ix]\n\t"                                                                                  \
    "mla %[ix], %[ix], %[t0], %[kr]\n\t"                                                                           \
    "add %[hi], %[hi], %[ix], asr #16\n\t"                                                                         \
    "add %[t0], %[ph], #0x40000000\n\t"                                                                            \
    "eor %[hi], %[hi], %[t0], asr #31\n\t"                                                                         \
    "sub %[hi], %[hi], %[t0], asr #31\n\t" /* hi = cos */

/* The same with the cosine's nodes addressed from the table's start (one more
 * instruction, one register fewer: integrate-and-dump's 64-bit sums take two). */
#define HGE_V7EM_COS_NARROW                                                                                          \
    "rsb %[ix], %[ix], #255\n\t"                                                                                   \
    "add %[ix], %[tbl], %[ix], lsl #2\n\t"                                                                        \
    "ldrd %[ix], %[hi], [%[ix]]\n\t"                                                                               \
    "mvn %[t0], %[t0]\n\t"                                                                                         \
    "sub %[ix], %[hi], %[ix]\n\t"                                                                                  \
    "mla %[ix], %[ix], %[t0], %[kr]\n\t"                                                                           \
    "add %[hi], %[hi], %[ix], asr #16\n\t"                                                                         \
    "add %[t0], %[ph], #0x40000000\n\t"                                                                            \
    "eor %[hi], %[hi], %[t0], asr #31\n\t"                                                                         \
    "sub %[hi], %[hi], %[t0], asr #31\n\t" /* hi = cos */

/* Butterworth: both products into the pre-sums, rounded as hge_presum_mac
 * (SMMLAR of 16 x' and 512 ref: (x' ref + 2^18) >> 19). */
#define HGE_V7EM_BW3_SAMPLE(xv)                                                                                      \
    do {                                                                                                           \
        int32_t t0_, ix_, lo_, hi_;                                                                                \
        __asm__(HGE_V7EM_REFS "lsl %[lo], %[lo], #9\n\t"                                                           \
                "smmlar %[ai], %[x], %[lo], %[ai]\n\t" HGE_V7EM_COS "lsl %[hi], %[hi], #9\n\t"                     \
                "smmlar %[aq], %[x], %[hi], %[aq]\n\t"                                                             \
                "add %[ph], %[ph], %[st]"                                                                          \
                : [ph] "+r"(phase), [ai] "+r"(acc_i), [aq] "+r"(acc_q), [t0] "=&r"(t0_), [ix] "=&r"(ix_),          \
                  [lo] "=&r"(lo_), [hi] "=&r"(hi_)                                                                 \
                : [x] "r"(xv), [st] "r"(step), [tbl] "r"(tbl), [tend] "r"(tend), [kr] "r"(k_round),              \
                  "m"(*(const int32_t(*)[HGE_SINE_TABLE_SIZE + 1u])hge_sine_table));                              \
    } while (0)

/*
 * hge_bw3_term_chunk for ARMv7E-M: the same integers. Runs a partial group up
 * to its end (if the chunk starts inside one), then whole groups of 8 with the
 * samples unrolled, then the partial rest (at -Os: sample by sample throughout).
 */
static void hge_bw3_term_chunk_v7em(hge_lockin_bw3_term_t *tp, const hge_bw3_mac_t *k, const int32_t *x16,
                                    uint32_t len, uint32_t count)
{
    uint32_t phase = tp->nco.phase;
    const uint32_t step = tp->nco.step;
    int32_t acc_i = tp->i.acc;
    int32_t acc_q = tp->q.acc;
    const int32_t k_round = 32768;
    const int32_t *tbl = hge_sine_table;
    const int32_t *tend = hge_sine_table + 255;
    const int32_t *x = x16;
    const int32_t *end = x16 + len;
#if defined(__OPTIMIZE_SIZE__)
    while (x < end) { /* -Os: one sample at a time (the unrolled group is 0.8 KiB of code) */
#else
    while (x < end && count != 0u) {
#endif
        HGE_V7EM_BW3_SAMPLE(*x);
        ++x;
        if (++count == HGE_BW3_DECIMATION) {
            hge_bw3_step2_v7em(&tp->i, k, acc_i, acc_q);
            acc_i = 0;
            acc_q = 0;
            count = 0u;
        }
    }
#if !defined(__OPTIMIZE_SIZE__)
    while ((uint32_t)(end - x) >= HGE_BW3_DECIMATION) {
        HGE_V7EM_BW3_SAMPLE(x[0]);
        HGE_V7EM_BW3_SAMPLE(x[1]);
        HGE_V7EM_BW3_SAMPLE(x[2]);
        HGE_V7EM_BW3_SAMPLE(x[3]);
        HGE_V7EM_BW3_SAMPLE(x[4]);
        HGE_V7EM_BW3_SAMPLE(x[5]);
        HGE_V7EM_BW3_SAMPLE(x[6]);
        HGE_V7EM_BW3_SAMPLE(x[7]);
        x += HGE_BW3_DECIMATION;
        hge_bw3_step2_v7em(&tp->i, k, acc_i, acc_q);
        acc_i = 0;
        acc_q = 0;
    }
    while (x < end) { /* fewer than 8 left, and count == 0 here: no group completes */
        HGE_V7EM_BW3_SAMPLE(*x);
        ++x;
    }
#endif
    tp->nco.phase = phase;
    tp->i.acc = acc_i;
    tp->q.acc = acc_q;
}

/* Integrate-and-dump: acc += x' ref, exact (SMLAL into the 64-bit sums). */
#define HGE_V7EM_BOX_SAMPLE(xv)                                                                                      \
    do {                                                                                                           \
        int32_t t0_, ix_, lo_, hi_;                                                                                \
        __asm__(HGE_V7EM_REFS "smlal %[ail], %[aih], %[x], %[lo]\n\t" HGE_V7EM_COS_NARROW                        \
                "smlal %[aql], %[aqh], %[x], %[hi]\n\t"                                                            \
                "add %[ph], %[ph], %[st]"                                                                          \
                : [ph] "+r"(phase), [ail] "+r"(ai_lo), [aih] "+r"(ai_hi), [aql] "+r"(aq_lo), [aqh] "+r"(aq_hi),    \
                  [t0] "=&r"(t0_), [ix] "=&r"(ix_), [lo] "=&r"(lo_), [hi] "=&r"(hi_)                               \
                : [x] "r"(xv), [st] "r"(step), [tbl] "r"(tbl), [kr] "r"(k_round),                                  \
                  "m"(*(const int32_t(*)[HGE_SINE_TABLE_SIZE + 1u])hge_sine_table));                              \
    } while (0)

/* hge_boxcar_term_chunk for ARMv7E-M: the same exact sums, unrolled by 4 (not at -Os). The
 * 64-bit sums live as two's-complement word pairs (SMLAL's operands). */
static void hge_boxcar_term_chunk_v7em(hge_lockin_boxcar_term_t *tp, const int32_t *xc, uint32_t len)
{
    uint32_t phase = tp->nco.phase;
    const uint32_t step = tp->nco.step;
    uint64_t ui = (uint64_t)tp->acc_i;
    uint64_t uq = (uint64_t)tp->acc_q;
    uint32_t ai_lo = (uint32_t)ui, ai_hi = (uint32_t)(ui >> 32);
    uint32_t aq_lo = (uint32_t)uq, aq_hi = (uint32_t)(uq >> 32);
    const int32_t k_round = 32768;
    const int32_t *tbl = hge_sine_table;
    const int32_t *x = xc;
    const int32_t *end = xc + len;
#if !defined(__OPTIMIZE_SIZE__)
    while ((uint32_t)(end - x) >= 4u) {
        HGE_V7EM_BOX_SAMPLE(x[0]);
        HGE_V7EM_BOX_SAMPLE(x[1]);
        HGE_V7EM_BOX_SAMPLE(x[2]);
        HGE_V7EM_BOX_SAMPLE(x[3]);
        x += 4;
    }
#endif
    while (x < end) {
        HGE_V7EM_BOX_SAMPLE(*x);
        ++x;
    }
    tp->nco.phase = phase;
    /* Back to int64 without an implementation-defined conversion: |sum| < 2^62. */
    ui = ((uint64_t)ai_hi << 32) | ai_lo;
    uq = ((uint64_t)aq_hi << 32) | aq_lo;
    tp->acc_i = (ui >> 63) ? -(int64_t)(~ui) - 1 : (int64_t)ui;
    tp->acc_q = (uq >> 63) ? -(int64_t)(~uq) - 1 : (int64_t)uq;
}

#endif /* ARMv7E-M */

#if defined(__ARM_ARCH_6M__)
#define HGE_LOCKIN_V6M 1
/*
 * ARMv6-M (Cortex-M0/M0+): the Butterworth terminal over a chunk, the same
 * integers as hge_bw3_term_chunk. Differences in the instruction stream only:
 *   - the chunk holds x' and xs = x' >> 8 side by side (conditioned once per
 *     chunk for all terminals), the operands of hge_presum_mac_pieces;
 *   - the cosine: as in the Cortex-M4 path, segment 255 - idx and
 *     cv = hi + ((d ~f + 2^15) >> 16) (derivation there), one fold for both;
 *   - phase, step and the pre-sums stay in locals over the chunk.
 */
static inline int32_t hge_v6m_mix(int32_t acc, int32_t xv, int32_t xs, int32_t ref)
{
    /* hge_presum_mac_pieces with x' and x' >> 8 given (derivation there). */
    int32_t qh = (xs * (ref >> 7)) >> 4;
    uint32_t fb = (uint32_t)xv * (uint32_t)ref - ((uint32_t)qh << 19) + 0x80040000u;
    return acc + (qh - 4096) + (int32_t)(fb >> 19);
}

/*
 * hge_bw3_step for ARMv6-M in Thumb-1 (r0 = channel, r1 = coefficients, r2 = u;
 * kept in r8, r9, r10; y in r11). Same formats, rounding and saturation as
 * hge_bw3_step. Each product a b (a a coefficient, |a| < 2^31; b a signal,
 * |b| <= 2^30) is added to the 64-bit sum r5:r4 from four 16 x 16 MULS:
 *   a = ah 2^16 + al, b = bh 2^16 + bl (al, bl = UXTH in [0, 2^16), ah, bh = ASRS #16),
 *   a b = 2^32 ah bh + 2^16 (ah bl + al bh) + al bl, where al bl < 2^32 (unsigned),
 *   |ah bh| <= 2^15 2^14, |ah bl| <= 2^15 (2^16 - 1) < 2^31, |al bh| < 2^30: each
 *   fits a MULS; each cross term c enters as 2^32 (c >> 16) + ((c << 16) mod 2^32).
 * The sums stay within int64 (bounds in hge_lockin.c), so the carries (ADCS) are
 * exact. The b_shift of the numerator: lo >> s | hi << (32 - s), hi >> s with
 * register shifts (a count of 32 gives 0 or the sign: s = 0 and 32 need no branch).
 * Saturation: in range iff hi + 2^28 < 2^29 (unsigned), else 2^30 - 1 or -2^30.
 * L: a digit making the labels of each saturation unique.
 */
#define HGE_V6M_LOADC(off) "mov r0, r8\n\tldr r7, [r0, #" #off "]\n\t"
#define HGE_V6M_PRODUCT(koff)                                                                                        \
    "mov r0, r9\n\t"                                                                                               \
    "ldr r6, [r0, #" #koff "]\n\t"                                                                                 \
    "uxth r0, r6\n\t"                                                                                              \
    "asrs r1, r6, #16\n\t"                                                                                         \
    "uxth r2, r7\n\t"                                                                                              \
    "asrs r3, r7, #16\n\t"                                                                                         \
    "movs r6, r0\n\t"                                                                                              \
    "muls r6, r2, r6\n\t"                                                                                          \
    "movs r7, r1\n\t"                                                                                              \
    "muls r7, r3, r7\n\t"                                                                                          \
    "muls r1, r2, r1\n\t"                                                                                          \
    "muls r0, r3, r0\n\t"                                                                                          \
    "adds r4, r4, r6\n\t"                                                                                          \
    "movs r6, #0\n\t"                                                                                              \
    "adcs r5, r6\n\t"                                                                                              \
    "adds r5, r5, r7\n\t"                                                                                          \
    "lsls r2, r1, #16\n\t"                                                                                         \
    "asrs r1, r1, #16\n\t"                                                                                         \
    "adds r4, r4, r2\n\t"                                                                                          \
    "adcs r5, r1\n\t"                                                                                              \
    "lsls r2, r0, #16\n\t"                                                                                         \
    "asrs r0, r0, #16\n\t"                                                                                         \
    "adds r4, r4, r2\n\t"                                                                                          \
    "adcs r5, r0\n\t"
/* sum += e (the remainder at channel offset eoff, [0, 2^30)); new e = sum mod 2^30
 * stored; r1 = sat(sum >> 30). */
#define HGE_V6M_FEEDBACK_SAT(eoff, L)                                                                                \
    "mov r0, r8\n\t"                                                                                               \
    "ldr r1, [r0, #" #eoff "]\n\t"                                                                                 \
    "movs r2, #0\n\t"                                                                                              \
    "adds r4, r4, r1\n\t"                                                                                          \
    "adcs r5, r2\n\t"                                                                                              \
    "lsls r1, r4, #2\n\t"                                                                                          \
    "lsrs r1, r1, #2\n\t"                                                                                          \
    "str r1, [r0, #" #eoff "]\n\t"                                                                                 \
    "movs r2, #1\n\t"                                                                                              \
    "lsls r2, r2, #28\n\t"                                                                                         \
    "adds r2, r2, r5\n\t"                                                                                          \
    "lsrs r2, r2, #29\n\t"                                                                                         \
    "bne " #L "1f\n\t"                                                                                             \
    "lsrs r1, r4, #30\n\t"                                                                                         \
    "lsls r2, r5, #2\n\t"                                                                                          \
    "orrs r1, r2\n\t"                                                                                              \
    "b " #L "2f\n"                                                                                                 \
    #L "1:\n\t"                                                                                                    \
    "movs r1, #1\n\t"                                                                                              \
    "lsls r1, r1, #30\n\t"                                                                                         \
    "cmp r5, #0\n\t"                                                                                               \
    "blt " #L "3f\n\t"                                                                                             \
    "subs r1, r1, #1\n\t"                                                                                          \
    "b " #L "2f\n"                                                                                                 \
    #L "3:\n\t"                                                                                                    \
    "rsbs r1, r1, #0\n"                                                                                            \
    #L "2:\n\t"

#define HGE_V6M_ARG __attribute__((unused)) /* read by the asm from r0-r2, not by C */
__attribute__((naked, noinline)) static void hge_bw3_step_v6m(HGE_V6M_ARG hge_bw3_channel_t *c,
                                                              HGE_V6M_ARG const hge_bw3_mac_t *k,
                                                              HGE_V6M_ARG int32_t u)
{
    __asm__ volatile(".syntax unified\n\t"
                     "push {r4-r7, lr}\n\t"
                     "mov r4, r8\n\t"
                     "mov r5, r9\n\t"
                     "mov r6, r10\n\t"
                     "mov r7, r11\n\t"
                     "push {r4-r7}\n\t"
                     "mov r8, r0\n\t"
                     "mov r9, r1\n\t"
                     "mov r10, r2\n\t"
                     /* biquad numerator b0 u + b1 x1 + b2 x2 */
                     "movs r4, #0\n\t"
                     "movs r5, #0\n\t"
                     "mov r7, r10\n\t" HGE_V6M_PRODUCT(0) HGE_V6M_LOADC(0) HGE_V6M_PRODUCT(4) HGE_V6M_LOADC(4)
                         HGE_V6M_PRODUCT(8)
                     /* >> b_shift */
                     "mov r0, r9\n\t"
                     "ldr r1, [r0, #12]\n\t"
                     "ldr r2, [r0, #36]\n\t"
                     "lsrs r4, r4, r1\n\t"
                     "movs r3, r5\n\t"
                     "lsls r3, r3, r2\n\t"
                     "orrs r4, r3\n\t"
                     "asrs r5, r5, r1\n\t"
                     /* + na1 y1 + na2 y2 + e1 */
                     HGE_V6M_LOADC(8) HGE_V6M_PRODUCT(16) HGE_V6M_LOADC(12) HGE_V6M_PRODUCT(20)
                         HGE_V6M_FEEDBACK_SAT(20, 1)
                     "mov r11, r1\n\t"
                     /* first order c0 y + c1 y1 + nd1 z1 + e2 */
                     "movs r4, #0\n\t"
                     "movs r5, #0\n\t"
                     "mov r7, r11\n\t" HGE_V6M_PRODUCT(24) HGE_V6M_LOADC(8) HGE_V6M_PRODUCT(28) HGE_V6M_LOADC(16)
                         HGE_V6M_PRODUCT(32) HGE_V6M_FEEDBACK_SAT(24, 2)
                     /* z1 = z, x2 = x1, x1 = u, y2 = y1, y1 = y */
                     "mov r0, r8\n\t"
                     "str r1, [r0, #16]\n\t"
                     "ldr r2, [r0, #0]\n\t"
                     "str r2, [r0, #4]\n\t"
                     "mov r2, r10\n\t"
                     "str r2, [r0, #0]\n\t"
                     "ldr r2, [r0, #8]\n\t"
                     "str r2, [r0, #12]\n\t"
                     "mov r2, r11\n\t"
                     "str r2, [r0, #8]\n\t"
                     "pop {r4-r7}\n\t"
                     "mov r8, r4\n\t"
                     "mov r9, r5\n\t"
                     "mov r10, r6\n\t"
                     "mov r11, r7\n\t"
                     "pop {r4-r7, pc}\n\t");
}

/* Both channels of a terminal (out of line: the sample loop keeps its registers). */
__attribute__((noinline)) static void hge_bw3_step2_v6m(hge_lockin_bw3_term_t *tp, const hge_bw3_mac_t *k,
                                                        int32_t u_i, int32_t u_q)
{
    hge_bw3_step_v6m(&tp->i, k, u_i);
    hge_bw3_step_v6m(&tp->q, k, u_q);
}

static void hge_bw3_term_chunk_v6m(hge_lockin_bw3_term_t *tp, const hge_bw3_mac_t *k, const int32_t *xp,
                                   uint32_t len, uint32_t count)
{
    uint32_t phase = tp->nco.phase;
    const uint32_t step = tp->nco.step;
    int32_t acc_i = tp->i.acc;
    int32_t acc_q = tp->q.acc;
    const int32_t *x = xp;
    const int32_t *end = xp + 2u * len;
#if !defined(__OPTIMIZE_SIZE__)
    const int32_t *tbl = hge_sine_table;
    /* &table[255 - idx] = 2 table + 1020 - &table[idx]: one SUBS from a constant. */
    const uintptr_t ktc = 2u * (uintptr_t)hge_sine_table + 1020u;
    const int32_t k15 = 32768;
#endif
    while (x < end) {
#if defined(__OPTIMIZE_SIZE__)
        /* -Os: GCC keeps r8-r12 out of Thumb-1 register allocation, too few
         * registers for the asm below; the same steps in C. */
        uint32_t pos = phase ^ (uint32_t)((int32_t)(phase << 1) >> 31);
        uint32_t idx = (pos << 2) >> 24;
        int32_t f = (int32_t)((pos << 10) >> 16);
        const int32_t *ns = &hge_sine_table[idx];
        const int32_t *nc = &hge_sine_table[255u - idx];
        int32_t d = ns[1] - ns[0];
        int32_t sv = ns[0] + ((d * f + 32768) >> 16);
        int32_t cv;
        int32_t m = (int32_t)phase >> 31;
        d = nc[1] - nc[0];
        cv = nc[1] + ((d * ~f + 32768) >> 16);
        sv = (sv ^ m) - m;
        m = (int32_t)(phase + HGE_QUARTER_TURN) >> 31;
        cv = (cv ^ m) - m;
        phase += step;
        acc_i = hge_v6m_mix(acc_i, x[0], x[1], sv);
        acc_q = hge_v6m_mix(acc_q, x[0], x[1], cv);
#else
        int32_t sv;
        int32_t cv;
        int32_t t0;
        int32_t t1;
        /* References (hge_v7em's derivation, in ARMv6-M instructions): pos =
         * ph ^ (bit 30 spread); 4 idx = (pos << 2) >> 24 << 2; f = (pos << 10) >> 16;
         * sv = lo + ((d f + 2^15) >> 16); cosine nodes at ktc - &table[idx]:
         * cv = hi + ((d ~f + 2^15) >> 16); then the signs. */
        __asm__(".syntax unified\n\t" /* GCC hands Thumb-1 inline asm over in divided syntax */
                "lsls %[t0], %[ph], #1\n\t"
                "asrs %[t0], %[t0], #31\n\t"
                "eors %[t0], %[ph]\n\t"
                "lsls %[t1], %[t0], #2\n\t"
                "lsrs %[t1], %[t1], #24\n\t"
                "lsls %[t1], %[t1], #2\n\t"
                "add %[t1], %[tbl]\n\t"
                "ldr %[s], [%[t1]]\n\t"
                "ldr %[c], [%[t1], #4]\n\t"
                "lsls %[t0], %[t0], #10\n\t"
                "lsrs %[t0], %[t0], #16\n\t"
                "subs %[c], %[c], %[s]\n\t"
                "muls %[c], %[t0], %[c]\n\t"
                "add %[c], %[k15]\n\t"
                "asrs %[c], %[c], #16\n\t"
                "adds %[s], %[s], %[c]\n\t"
                "mov %[c], %[ktc]\n\t"
                "subs %[t1], %[c], %[t1]\n\t"
                "ldr %[c], [%[t1]]\n\t"
                "ldr %[t1], [%[t1], #4]\n\t"
                "subs %[c], %[t1], %[c]\n\t"
                "mvns %[t0], %[t0]\n\t"
                "muls %[c], %[t0], %[c]\n\t"
                "add %[c], %[k15]\n\t"
                "asrs %[c], %[c], #16\n\t"
                "adds %[c], %[c], %[t1]\n\t"
                "asrs %[t0], %[ph], #31\n\t"
                "eors %[s], %[t0]\n\t"
                "subs %[s], %[s], %[t0]\n\t"
                "lsls %[t1], %[ph], #1\n\t"
                "asrs %[t1], %[t1], #31\n\t"
                "eors %[t1], %[t0]\n\t" /* bit 31 ^ bit 30 of ph = bit 31 of ph + 2^30 */
                "eors %[c], %[t1]\n\t"
                "subs %[c], %[c], %[t1]\n\t"
                "add %[ph], %[st]"
                : [ph] "+l"(phase), [s] "=&l"(sv), [c] "=&l"(cv), [t0] "=&l"(t0), [t1] "=&l"(t1)
                : [tbl] "r"(tbl), [ktc] "r"(ktc), [k15] "r"(k15), [st] "r"(step),
                  "m"(*(const int32_t(*)[HGE_SINE_TABLE_SIZE + 1u])hge_sine_table)
                : "cc");
        /* Both mixer terms: hge_presum_mac_pieces, with the last shift arithmetic
         * (F + 2^18 is an int32, see there) and its rounding as
         * floor((floor(F / 2^18) + 1) / 2) = floor((F + 2^18) / 2^19): no constants. */
        __asm__(".syntax unified\n\t"
                "asrs %[t0], %[s], #7\n\t"
                "muls %[t0], %[xs], %[t0]\n\t"
                "asrs %[t0], %[t0], #4\n\t"
                "muls %[s], %[xv], %[s]\n\t"
                "lsls %[t1], %[t0], #19\n\t"
                "subs %[s], %[s], %[t1]\n\t"
                "asrs %[s], %[s], #18\n\t"
                "adds %[s], %[s], #1\n\t"
                "asrs %[s], %[s], #1\n\t"
                "add %[ai], %[t0]\n\t"
                "add %[ai], %[s]\n\t"
                "asrs %[t0], %[c], #7\n\t"
                "muls %[t0], %[xs], %[t0]\n\t"
                "asrs %[t0], %[t0], #4\n\t"
                "muls %[c], %[xv], %[c]\n\t"
                "lsls %[t1], %[t0], #19\n\t"
                "subs %[c], %[c], %[t1]\n\t"
                "asrs %[c], %[c], #18\n\t"
                "adds %[c], %[c], #1\n\t"
                "asrs %[c], %[c], #1\n\t"
                "add %[aq], %[t0]\n\t"
                "add %[aq], %[c]"
                : [ai] "+r"(acc_i), [aq] "+r"(acc_q), [s] "+l"(sv), [c] "+l"(cv), [t0] "=&l"(t0), [t1] "=&l"(t1)
                : [xv] "l"(x[0]), [xs] "l"(x[1])
                : "cc");
#endif
        x += 2;
        if (++count == HGE_BW3_DECIMATION) {
            count = 0u;
            hge_bw3_step2_v6m(tp, k, acc_i, acc_q);
            acc_i = 0;
            acc_q = 0;
        }
    }
    tp->nco.phase = phase;
    tp->i.acc = acc_i;
    tp->q.acc = acc_q;
}
#endif /* ARMv6-M */

#endif /* HGE_LOCKIN_CORTEXM_H */

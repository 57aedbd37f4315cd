/*
 * hge_lockin_kernels.h - the per-sample and per-group arithmetic of the lock-in,
 * shared (as static inline functions) by the portable C99 path in hge_lockin.c
 * and the host-only fast paths in csrc/host/. One copy of every rounding and
 * saturation step, so each variant is bit-exact with the others by construction
 * and with hge_embedded/reference/fixed.py by test. Internal: not part of the API.
 */
#ifndef HGE_LOCKIN_KERNELS_H
#define HGE_LOCKIN_KERNELS_H

#include "hge_lockin.h"

#define HGE_REMAINDER_MASK 0x3FFFFFFFu

/* Samples are conditioned once per chunk (not once per terminal) into this
 * many int32 on the stack. */
#define HGE_CHUNK 64u

/*
 * Length of the next chunk of a block with *remaining samples left, and
 * *remaining reduced by it. The process loops run `while (remaining > 0)` on
 * it: remaining strictly decreases (by min(remaining, HGE_CHUNK) >= 1) and
 * never wraps (it subtracts at most what is left), so every uint32_t block
 * length terminates after ceil(n / HGE_CHUNK) chunks. (A running
 * `start += HGE_CHUNK` compared against n wraps past 2^32 - HGE_CHUNK.)
 */
static inline uint32_t hge_next_chunk(uint32_t *remaining)
{
    uint32_t len = *remaining < HGE_CHUNK ? *remaining : HGE_CHUNK;
    *remaining -= len;
    return len;
}

/* sat24(x - dc): Q0 in, Q0 out, saturating, in 32-bit arithmetic.
 * With |dc| <= 2^23, clamping x to [-2^25, 2^25 - 1] first changes nothing: any x
 * beyond it leaves x - dc beyond [-2^23, 2^23 - 1] either way, so the result is the
 * same. Both clamps have the form [-2^k, 2^k - 1], which GCC maps onto one SSAT
 * each on ARMv7-M (checked in the Cortex-M4 disassembly). */
static inline int32_t hge_condition(int32_t x, int32_t dc)
{
#if defined(__ARM_FEATURE_SAT) && defined(__GNUC__)
    /* SSAT #n saturates to [-2^(n-1), 2^(n-1) - 1]: the two clamps below, one
     * instruction each (CMSIS's __SSAT, written here: the core has no CMSIS). */
    int32_t v;
    __asm__("ssat %0, #26, %1" : "=r"(v) : "r"(x) : "cc");
    v -= dc;
    __asm__("ssat %0, #24, %1" : "=r"(v) : "r"(v) : "cc");
    return v;
#else
    int32_t v = x > 33554431 ? 33554431 : (x < -33554432 ? -33554432 : x);
    v -= dc;
    return v > HGE_SAMPLE_MAX ? (int32_t)HGE_SAMPLE_MAX : (v < HGE_SAMPLE_MIN ? (int32_t)HGE_SAMPLE_MIN : v);
#endif
}

/* sat(acc >> 30) into [-2^30, 2^30 - 1] (Q36 in int64 -> Q6, floor): the shift
 * fits exactly when acc lies in [-2^60, 2^60), one unsigned compare; otherwise
 * saturate by sign. acc + 2^60 cannot overflow since |acc| < 6 * 2^60 (bounds in
 * hge_lockin.c). Same result as hge_clamp64(acc >> 30, HGE_FILTER_MIN,
 * HGE_FILTER_MAX), cheaper on 32-bit cores. The exact edges (+-2^60, +-2^60 - 1)
 * are tested in tests/test_lockin_edges.py. */
static inline int32_t hge_q30_sat(int64_t acc)
{
    if ((uint64_t)acc + ((uint64_t)1 << 60) < ((uint64_t)1 << 61)) {
        return (int32_t)(acc >> 30);
    }
    return acc < 0 ? (int32_t)HGE_FILTER_MIN : (int32_t)HGE_FILTER_MAX;
}

/*
 * a0 b0 + a1 b1 + a2 b2, exact in int64, from 32-bit multiplies only: the
 * filter's sums of products on ARMv6-M (Cortex-M0/M0+), which has no 32x32->64
 * multiply (GCC would call libgcc's 64 x 64 __aeabi_lmul for each product).
 * With a = ah 2^16 + al, b = bh 2^16 + bl (ah, bh = floor(. / 2^16), al, bl in
 * [0, 2^16)):  sum a b = 2^32 P + 2^16 M + L,  P = sum ah bh, M = sum (ah bl + al bh),
 * L = sum al bl. Each piece product fits int32 (|ah bl|, |al bh| < 2^31) or uint32
 * (al bl < 2^32); M and L are summed in int64 and P in int32, which needs
 * sum |ah bh| < 2^31: true for every sum in hge_bw3_step (coefficients |.| < 2^31,
 * so |ah| <= 2^15; signals |.| <= 2^30, so |bh| <= 2^14: three terms < 3 2^29,
 * bounds in hge_lockin.c). Pass a2 = b2 = 0 for two terms. Tested on the host
 * against the plain sum (tests/test_lockin_edges.py) and on QEMU by the vectors.
 */
static inline int64_t hge_dot3_pieces(int32_t a0, int32_t b0, int32_t a1, int32_t b1, int32_t a2, int32_t b2)
{
    int32_t ah0 = a0 >> 16, ah1 = a1 >> 16, ah2 = a2 >> 16;
    int32_t bh0 = b0 >> 16, bh1 = b1 >> 16, bh2 = b2 >> 16;
    uint32_t al0 = (uint32_t)a0 & 0xFFFFu, al1 = (uint32_t)a1 & 0xFFFFu, al2 = (uint32_t)a2 & 0xFFFFu;
    uint32_t bl0 = (uint32_t)b0 & 0xFFFFu, bl1 = (uint32_t)b1 & 0xFFFFu, bl2 = (uint32_t)b2 & 0xFFFFu;
    int32_t p = ah0 * bh0 + ah1 * bh1 + ah2 * bh2;
    int64_t m = (int64_t)(ah0 * (int32_t)bl0) + (int64_t)((int32_t)al0 * bh0) +
                (int64_t)(ah1 * (int32_t)bl1) + (int64_t)((int32_t)al1 * bh1) +
                (int64_t)(ah2 * (int32_t)bl2) + (int64_t)((int32_t)al2 * bh2);
    int64_t l = (int64_t)(al0 * bl0) + (int64_t)(al1 * bl1) + (int64_t)(al2 * bl2);
    return (int64_t)p * 4294967296LL + m * 65536 + l;
}

static inline int64_t hge_dot3(int32_t a0, int32_t b0, int32_t a1, int32_t b1, int32_t a2, int32_t b2)
{
#if defined(__ARM_ARCH_6M__)
    return hge_dot3_pieces(a0, b0, a1, b1, a2, b2);
#else
    return (int64_t)a0 * b0 + (int64_t)a1 * b1 + (int64_t)a2 * b2;
#endif
}

/* One pre-sum u (Q6, |u| < 2^29) through biquad + first-order section with
 * error feedback (formats in hge_lockin.h). */
static inline void hge_bw3_step(hge_bw3_channel_t *c, const hge_bw3_mac_t *k, int32_t u)
{
    int64_t acc;
    int32_t y;
    int32_t z;
    acc = hge_dot3(k->b0, u, k->b1, c->x1, k->b2, c->x2);
    acc = (acc >> k->b_shift) + hge_dot3(k->na1, c->y1, k->na2, c->y2, 0, 0) + (int64_t)c->e1;
    c->e1 = (uint32_t)((uint64_t)acc & HGE_REMAINDER_MASK);
    y = hge_q30_sat(acc);

    acc = hge_dot3(k->c0, y, k->c1, c->y1, k->nd1, c->z1) + (int64_t)c->e2;
    c->e2 = (uint32_t)((uint64_t)acc & HGE_REMAINDER_MASK);
    z = hge_q30_sat(acc);

    c->x2 = c->x1;
    c->x1 = u;
    c->y2 = c->y1;
    c->y1 = y;
    c->z1 = z;
}

/*
 * Mixer product rounded to the pre-sum's format and added to it:
 *   acc + ((x' ref + 2^18) >> 19), the term |.| < 2^26.
 * Inputs: x16 = 16 x' (|x'| <= 2^23, so |x16| <= 2^27), ref Q22 (|ref| < 2^22).
 * The term is the high word of x16 (512 ref) + 2^31, the same number (both
 * factors fit int32), which on a Cortex-M4 (ARMv7E-M, __ARM_FEATURE_DSP) is one
 * SMMLAR: Ra + ((Rn Rm + 2^31) >> 32), exact since Ra 2^32 has no low bits.
 * Elsewhere plain C: the 64-bit product, +2^31, arithmetic shift (pinned in
 * hge_types.h).
 */
/*
 * The same term from 32-bit products only, for cores without a 32x32->64
 * multiply (ARMv6-M: Cortex-M0/M0+, where an int64 product is a libgcc call).
 * With x' = x16 / 16 = xh 2^12 + xl (xl in [0, 2^12), |xh| <= 2^11) and
 * ref = rh 2^11 + rl (rl in [0, 2^11), |rh| <= 2^11):
 *   x' ref = A 2^23 + (2 B + C) 2^11 + D,  A = xh rh, B = xh rl, C = xl rh, D = xl rl
 * (|A| <= 2^22, |B|, |C|, D < 2^23, |2B + C| < 2^25: every product and sum fits
 * int32), and since floor(floor(y) / k) = floor(y / k) for integers k,
 *   (x' ref + 2^18) >> 19 = 16 A + ((2 B + C + ((D + 2^18) >> 11)) >> 8),
 * the same integer as hge_presum_mac's term (tested on the host against it and
 * the model in tests/test_lockin_edges.py, and on QEMU by the vectors).
 */
static inline int32_t hge_presum_mac_pieces(int32_t acc, int32_t x16, int32_t ref)
{
    int32_t xv = x16 >> 4; /* exact: x16 is 16 x' (arithmetic shift, hge_types.h) */
    int32_t xh = xv >> 12;
    int32_t xl = xv & 4095;
    int32_t rh = ref >> 11;
    int32_t rl = ref & 2047;
    int32_t s = 2 * (xh * rl) + xl * rh + ((xl * rl + 262144) >> 11);
    return acc + 16 * (xh * rh) + (s >> 8);
}

static inline int32_t hge_presum_mac(int32_t acc, int32_t x16, int32_t ref)
{
#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__)
    int32_t out;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(out) : "r"(x16), "r"(ref * 512), "r"(acc));
    return out;
#elif defined(__ARM_ARCH_6M__)
    return hge_presum_mac_pieces(acc, x16, ref);
#else
    return acc + (int32_t)(((int64_t)x16 * (ref * 512) + 0x80000000LL) >> 32);
#endif
}

/*
 * One Butterworth terminal over a chunk of conditioned samples x16 (= 16 x'),
 * starting `count` samples into its current group of 8: references from the
 * terminal's NCO, mixer products into the pre-sums, a filter step at the end of
 * every group. The terminal is copied into locals for the run (its state stays in
 * registers) and written back.
 */
static inline void hge_bw3_term_chunk(hge_lockin_bw3_term_t *tp, const hge_bw3_mac_t *k,
                                      const int32_t *x16, uint32_t len, uint32_t count)
{
    hge_lockin_bw3_term_t t = *tp;
    uint32_t j = 0;
    while (j < len) {
        /* Run to the end of the current group of 8 (or of the chunk), then filter. */
        uint32_t stop = j + (HGE_BW3_DECIMATION - count);
        if (stop > len) {
            stop = len;
        }
        count += stop - j;
        for (; j < stop; ++j) {
            int32_t sn;
            int32_t cs;
            hge_sincos_q22(t.nco.phase, &sn, &cs);
            t.nco.phase += t.nco.step;
            t.i.acc = hge_presum_mac(t.i.acc, x16[j], sn);
            t.q.acc = hge_presum_mac(t.q.acc, x16[j], cs);
        }
        if (count == HGE_BW3_DECIMATION) {
            count = 0u;
            hge_bw3_step(&t.i, k, t.i.acc);
            hge_bw3_step(&t.q, k, t.q.acc);
            t.i.acc = 0;
            t.q.acc = 0;
        }
    }
    *tp = t;
}

/* One integrate-and-dump terminal over a chunk of conditioned samples xc (= x'). */
static inline void hge_boxcar_term_chunk(hge_lockin_boxcar_term_t *tp, const int32_t *xc, uint32_t len)
{
    hge_lockin_boxcar_term_t t = *tp;
    uint32_t j;
    for (j = 0; j < len; ++j) {
        int32_t sn;
        int32_t cs;
        hge_sincos_q22(t.nco.phase, &sn, &cs);
        t.acc_i += (int64_t)xc[j] * sn;
        t.acc_q += (int64_t)xc[j] * cs;
        t.nco.phase += t.nco.step;
    }
    *tp = t;
}

#endif /* HGE_LOCKIN_KERNELS_H */

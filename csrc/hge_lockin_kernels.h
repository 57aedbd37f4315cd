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
 * a0 b0 + a1 b1 + a2 b2, exact in int64, from 32-bit multiplies and 32-bit
 * sums only: the filter's sums of products on ARMv6-M (Cortex-M0/M0+), which
 * has no 32x32->64 multiply (GCC would call libgcc's 64 x 64 __aeabi_lmul for
 * each product) and whose 64-bit additions cost a carry chain each.
 * With a = ah 2^16 + al, b = bh 2^16 + bl (ah, bh = floor(. / 2^16), al, bl in
 * [0, 2^16)), every piece product fits 32 bits: ah bh and the cross products
 * t = ah bl, al bh in int32 (|ah| <= 2^15, bl < 2^16; al < 2^16, |bh| <= 2^14),
 * u = al bl in uint32. Each t is split once more, t = 2^16 (t >> 16) + (t mod
 * 2^16), and each u as u = 2^16 (u >> 16) + (u mod 2^16), so
 *   sum a b = 2^32 H + 2^16 MID + LO,
 *   H   = sum ah bh + sum (t >> 16)       (int32: < 3 2^29 + 6 2^15)
 *   MID = sum (t mod 2^16) + sum (u >> 16) (< 9 2^16)
 *   LO  = sum (u mod 2^16)                (< 3 2^16),
 * three 32-bit accumulators with no carries between them, normalised once at
 * the end (MID += LO >> 16, H += MID >> 16). The bound on sum |ah bh| < 3 2^29
 * holds for every sum in hge_bw3_step (coefficients |.| < 2^31, so |ah| <= 2^15;
 * signals |.| <= 2^30, so |bh| <= 2^14; bounds in hge_lockin.c). Pass a2 = b2 = 0
 * for two terms. Tested on the host against the plain sum
 * (tests/test_lockin_edges.py) and on QEMU by the vectors.
 */
/* x mod 2^16. On ARMv6-M one UXTH (GCC emits LSLS + LSRS for the mask). */
static inline uint32_t hge_lo16(uint32_t x)
{
#if defined(__ARM_ARCH_6M__) && defined(__GNUC__)
    uint32_t r;
    __asm__("uxth %0, %1" : "=l"(r) : "l"(x));
    return r;
#else
    return x & 0xFFFFu;
#endif
}

#define HGE_DOT_PIECE(a, b)                                                                                          \
    do {                                                                                                           \
        int32_t ah_ = (a) >> 16;                                                                                   \
        int32_t bh_ = (b) >> 16;                                                                                   \
        uint32_t al_ = hge_lo16((uint32_t)(a));                                                                    \
        uint32_t bl_ = hge_lo16((uint32_t)(b));                                                                    \
        int32_t t_ = ah_ * (int32_t)bl_;                                                                           \
        uint32_t u_ = al_ * bl_;                                                                                   \
        h += ah_ * bh_ + (t_ >> 16);                                                                               \
        mid += hge_lo16((uint32_t)t_);                                                                             \
        t_ = (int32_t)al_ * bh_;                                                                                   \
        h += t_ >> 16;                                                                                             \
        mid += hge_lo16((uint32_t)t_) + (u_ >> 16);                                                                \
        lo += hge_lo16(u_);                                                                                        \
    } while (0)

static inline int64_t hge_dot3_pieces(int32_t a0, int32_t b0, int32_t a1, int32_t b1, int32_t a2, int32_t b2)
{
    int32_t h = 0;
    uint32_t mid = 0u;
    uint32_t lo = 0u;
    HGE_DOT_PIECE(a0, b0);
    HGE_DOT_PIECE(a1, b1);
    HGE_DOT_PIECE(a2, b2);
    mid += lo >> 16;
    h += (int32_t)(mid >> 16);
    return (int64_t)h * 4294967296LL + (int64_t)((mid << 16) | (lo & 0xFFFFu));
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
 * multiply (ARMv6-M: Cortex-M0/M0+, where an int64 product is a libgcc call):
 * two MULS, no 64-bit arithmetic. The low word of x' ref is exact from one
 * 32-bit multiply (mod 2^32); a coarse product fixes the high part to within
 * 2^31, and together they give the exact product.
 * With x' = 2^8 xs + xl (xs = x' >> 8 in [-2^15, 2^15), xl in [0, 255]) and
 * ref = 2^7 rs + rl (rs = ref >> 7 in [-2^15, 2^15), rl in [0, 127]):
 *   x' ref = 2^15 Q + E,  Q = xs rs (|Q| <= 2^30: int32),
 *   E = 2^8 xs rl + 2^7 xl rs + xl rl,
 *   |E| <= 127 2^23 + 255 2^22 + 255 127 = 509 2^22 + 32385 < 2^31 - 2^23.
 * Write Q = 16 Qh + Ql (Qh = Q >> 4, Ql in [0, 15]) and F = x' ref - 2^19 Qh
 * = E + 2^15 Ql, so -2^31 < F and F + 2^18 < 509 2^22 + 2^15 + 2^19 + 2^18 < 2^31:
 * F is the int32 that is congruent to x' ref - 2^19 Qh mod 2^32, i.e.
 * (uint32) x' * (uint32) ref - (uint32) Qh << 19, wrapping (defined for uint32).
 * Since 2^19 Qh is a multiple of 2^19, the floor splits off exactly:
 *   (x' ref + 2^18) >> 19 = Qh + ((F + 2^18) >> 19).
 * The last shift is taken on F + 2^18 + 2^31 (in [0, 2^32): unsigned, no
 * implementation-defined conversion) and the 2^12 this adds is taken off again.
 * Tested on the host against the model at the split points and the extremes
 * (tests/test_lockin_edges.py) and on QEMU by the vectors.
 */
static inline int32_t hge_presum_mac_pieces(int32_t acc, int32_t x16, int32_t ref)
{
    int32_t xv = x16 >> 4; /* x', exact: x16 is 16 x' (arithmetic shift, hge_types.h) */
    int32_t qh = ((xv >> 8) * (ref >> 7)) >> 4;
    uint32_t fb = (uint32_t)xv * (uint32_t)ref - ((uint32_t)qh << 19) + 0x80040000u; /* F + 2^18 + 2^31 */
    return acc + (qh - 4096) + (int32_t)(fb >> 19);
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

/*
 * hge_lockin_host.c - see hge_lockin_host.h. Host only: POSIX threads, x86 runtime
 * dispatch. Every arithmetic step comes from hge_lockin_kernels.h; what changes
 * here is only the order of independent work:
 *   - terminals are independent, so any split over threads is the same sum;
 *   - a pre-sum is an int32 sum of 8 products with |sum| < 2^29 (hge_lockin.h),
 *     so summing the products in any order (here: all products of a chunk first,
 *     then the groups) is the same integer as the portable running sum;
 *   - a cached reference equals hge_sincos_q22 of the phase the NCO would hold
 *     (hge_refs_fill walks the same NCO), so cached mixing is the portable mixing;
 *   - filter steps of different channels are independent, so several channels run
 *     interleaved (group by group) instead of one after another, which lets the CPU
 *     overlap their multiply latency chains;
 *   - a channel's filter steps read only its own pre-sums, so the lane kernels compute
 *     a block's pre-sums first and then step each channel vector through the block
 *     (its state then stays in registers);
 *   - a scaled lane cache holds 256 ref, which the kernels divide out exactly (scalar
 *     edges) or fold into the product's rounding shift (AVX2), as for the packed cache.
 * Threads come from hge_host_pool.c.
 */
#define _POSIX_C_SOURCE 200809L
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif
#include <string.h>

#include "hge_host_pool.h"
#include "hge_lockin_host.h"
#include "hge_lockin_kernels.h"

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#define HGE_HOST_X86 1
#include <immintrin.h>
#else
#define HGE_HOST_X86 0
#endif

/* Conditioned samples per chunk (int32 on the stack), and terminals whose filter
 * steps run interleaved. */
#define HGE_HOST_CHUNK 2048u
#define HGE_HOST_BATCH 4u
#define HGE_HOST_GROUPS (HGE_HOST_CHUNK / HGE_BW3_DECIMATION)
/* Groups per block of the AVX2 lane kernel (pre-sums of a block, then its filter steps). */
#ifndef HGE_HOST_UBLOCK
#define HGE_HOST_UBLOCK 32u
#endif

typedef struct {
    hge_lockin_bw3_t *bw3;       /* exactly one of bw3, box is set */
    hge_lockin_boxcar_t *box;
    const int32_t *x;
    uint32_t n;
    const int32_t *refs;         /* NULL: NCO per sample */
    uint32_t stride;
    uint32_t m0, m1;             /* terminals [m0, m1) */
    int lanes;                   /* refs is a lane-interleaved cache (hge_refs_fill_lanes) */
    const uint8_t *packed;       /* non-NULL: a packed lane cache (hge_refs_fill_packed); stride in bytes */
    int scaled;                  /* refs is a scaled lane cache (hge_refs_fill_scaled; lanes is set too) */
    void (*run)(const void *job);
} hge_host_job_t;

int hge_host_isa_available(uint32_t isa)
{
    if (isa == HGE_ISA_AUTO || isa == HGE_ISA_GENERIC) {
        return 1;
    }
#if HGE_HOST_X86
    if (isa == HGE_ISA_AVX2) {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") ? 1 : 0;
    }
#endif
    return 0;
}

/* The arguments every reference-cache fill shares: buffers, terminal count, a row stride
 * holding `need` elements (the layout's row size times n), and phase steps in (0, 2^31). */
static hge_status hge_refs_check(int refs_null, uint32_t stride, uint64_t need, uint32_t n_terms,
                                 const uint32_t *steps)
{
    uint32_t m;
    if (refs_null || steps == 0) {
        return HGE_ERR_NULL;
    }
    if (n_terms == 0u || n_terms > HGE_MAX_TERMINALS) {
        return HGE_ERR_TERMINALS;
    }
    if (need > stride) {
        return HGE_ERR_SIZE;
    }
    for (m = 0; m < n_terms; ++m) {
        if (steps[m] == 0u || steps[m] >= 0x80000000u) {
            return HGE_ERR_FREQ;
        }
    }
    return HGE_OK;
}

hge_status hge_refs_fill(int32_t *refs, uint32_t stride, uint32_t n_terms, const uint32_t *steps,
                         const uint32_t *phases, uint32_t n)
{
    hge_status st;
    uint32_t m;
    uint32_t j;
    st = hge_refs_check(refs == 0, stride, n, n_terms, steps);
    if (st != HGE_OK) {
        return st;
    }
    for (m = 0; m < n_terms; ++m) {
        uint32_t phase = phases ? phases[m] : 0u;
        int32_t *rs = refs + (uint64_t)(2u * m) * stride;
        int32_t *rc = rs + stride;
        for (j = 0; j < n; ++j) {
            hge_sincos_q22(phase, &rs[j], &rc[j]);
            phase += steps[m];
        }
    }
    return HGE_OK;
}

hge_status hge_refs_fill_lanes(int32_t *refs, uint32_t stride, uint32_t n_terms, const uint32_t *steps,
                               const uint32_t *phases, uint32_t n)
{
    hge_status st;
    uint32_t m;
    uint32_t j;
    uint32_t b;
    uint32_t l;
    uint32_t n_batches;
    st = hge_refs_check(refs == 0, stride, (uint64_t)HGE_LANE_ROW * n, n_terms, steps);
    if (st != HGE_OK) {
        return st;
    }
    n_batches = (n_terms + HGE_HOST_LANES - 1u) / HGE_HOST_LANES;
    for (b = 0; b < n_batches; ++b) {
        int32_t *rb = refs + (uint64_t)b * stride;
        for (l = 0; l < HGE_HOST_LANES; ++l) {
            m = HGE_HOST_LANES * b + l;
            if (m < n_terms) {
                uint32_t phase = phases ? phases[m] : 0u;
                for (j = 0; j < n; ++j) {
                    hge_sincos_q22(phase, &rb[HGE_LANE_ROW * j + l], &rb[HGE_LANE_ROW * j + HGE_HOST_LANES + l]);
                    phase += steps[m];
                }
            } else {
                for (j = 0; j < n; ++j) {
                    rb[HGE_LANE_ROW * j + l] = 0;
                    rb[HGE_LANE_ROW * j + HGE_HOST_LANES + l] = 0;
                }
            }
        }
    }
    return HGE_OK;
}

hge_status hge_refs_fill_scaled(int32_t *refs, uint32_t stride, uint32_t n_terms, const uint32_t *steps,
                                const uint32_t *phases, uint32_t n)
{
    uint32_t b;
    uint64_t e;
    hge_status st = hge_refs_fill_lanes(refs, stride, n_terms, steps, phases, n);
    if (st != HGE_OK) {
        return st;
    }
    for (b = 0; b < (n_terms + HGE_HOST_LANES - 1u) / HGE_HOST_LANES; ++b) {
        int32_t *rb = refs + (uint64_t)b * stride;
        for (e = 0; e < (uint64_t)HGE_LANE_ROW * n; ++e) {
            rb[e] *= 256; /* |ref| <= 2^22: |256 ref| <= 2^30, no overflow */
        }
    }
    return HGE_OK;
}

/* One cache value as 24-bit two's complement, little-endian (|v| <= 2^22 fits). */
static void hge_pack24(uint8_t *p, int32_t v)
{
    uint32_t u = (uint32_t)v;
    p[0] = (uint8_t)(u & 0xFFu);
    p[1] = (uint8_t)((u >> 8) & 0xFFu);
    p[2] = (uint8_t)((u >> 16) & 0xFFu);
}

/* Inverse of hge_pack24: sign-extends bit 23 (no shift of a negative value). */
static inline int32_t hge_unpack24(const uint8_t *p)
{
    uint32_t u = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16);
    return (int32_t)u - (int32_t)((u & 0x800000u) << 1);
}

hge_status hge_refs_fill_packed(uint8_t *refs, uint32_t stride, uint32_t n_terms, const uint32_t *steps,
                                const uint32_t *phases, uint32_t n)
{
    hge_status st;
    uint32_t m;
    uint32_t j;
    uint32_t b;
    uint32_t l;
    uint32_t n_batches;
    st = hge_refs_check(refs == 0, stride, (uint64_t)HGE_PACKED_ROW * n, n_terms, steps);
    if (st != HGE_OK) {
        return st;
    }
    n_batches = (n_terms + HGE_HOST_LANES - 1u) / HGE_HOST_LANES;
    for (b = 0; b < n_batches; ++b) {
        uint8_t *rb = refs + (uint64_t)b * stride;
        for (l = 0; l < HGE_HOST_LANES; ++l) {
            uint32_t phase;
            m = HGE_HOST_LANES * b + l;
            phase = (m < n_terms && phases) ? phases[m] : 0u;
            for (j = 0; j < n; ++j) {
                int32_t sv = 0;
                int32_t cv = 0;
                if (m < n_terms) {
                    /* Q22 sin/cos: |v| <= 2^22 < 2^23, so 24 bits hold it exactly. */
                    hge_sincos_q22(phase, &sv, &cv);
                    phase += steps[m];
                }
                hge_pack24(rb + (uint64_t)HGE_PACKED_ROW * j + 3u * l, sv);
                hge_pack24(rb + (uint64_t)HGE_PACKED_ROW * j + 3u * (HGE_HOST_LANES + l), cv);
            }
        }
    }
    return HGE_OK;
}

/* Rows [0, len) of a packed cache (rb: the first) as lane rows (HGE_LANE_ROW int32 each). */
static inline void hge_unpack_rows(int32_t *out, const uint8_t *rb, uint32_t len)
{
    uint32_t j;
    uint32_t e;
    for (j = 0; j < len; ++j) {
        for (e = 0; e < HGE_LANE_ROW; ++e) {
            out[HGE_LANE_ROW * j + e] = hge_unpack24(rb + HGE_PACKED_ROW * j + 3u * e);
        }
    }
}

/* ------------------------------------------------------------ kernels ---- */
/* Written once as always-inline bodies; compiled below for each isa. */
#define HGE_INLINE static inline __attribute__((always_inline))

HGE_INLINE void hge_host_condition(const int32_t *x, uint32_t n, int32_t dc, int32_t scale, int32_t *out)
{
    uint32_t j;
    for (j = 0; j < n; ++j) {
        out[j] = hge_condition(x[j], dc) * scale;
    }
}

/* Rounded mixer products (x16 ref + 2^31) >> 32 of a run of samples: the term of
 * hge_presum_mac with acc = 0, for every sample (vectorisable: no dependency). */
HGE_INLINE void hge_host_products(const int32_t *x16, const int32_t *ref, uint32_t n, int32_t *p)
{
    uint32_t j;
    for (j = 0; j < n; ++j) {
        p[j] = (int32_t)(((int64_t)x16[j] * (ref[j] * 512) + 0x80000000LL) >> 32);
    }
}

/* Pre-sums of whole groups, u[g * HGE_HOST_ULANES] (one channel's column of a
 * group-major table: the channels of a batch sit side by side per group). */
#define HGE_HOST_ULANES (2u * HGE_HOST_BATCH)
HGE_INLINE void hge_host_group_sums(const int32_t *p, uint32_t groups, int32_t *u)
{
    uint32_t g;
    for (g = 0; g < groups; ++g) {
        const int32_t *q = p + HGE_BW3_DECIMATION * g;
        u[g * HGE_HOST_ULANES] = ((q[0] + q[1]) + (q[2] + q[3])) + ((q[4] + q[5]) + (q[6] + q[7]));
    }
}

#if HGE_HOST_X86
/*
 * The filter step of hge_bw3_step for four channels at once, in the 64-bit lanes of
 * AVX2 registers (structure of arrays). Each operation is the scalar one:
 *   - products: VPMULDQ multiplies the signed low 32 bits of each lane into an exact
 *     int64, so every state word (x, y, z) only needs its low 32 bits right;
 *   - acc >> b_shift: AVX2 has no 64-bit arithmetic shift; floor(a / 2^s) is
 *     s ^ ((a ^ s) >>> b) with s the sign mask (0 or -1), exact for b in 0..32;
 *   - hge_q30_sat(acc) = floor(clamp(acc, -2^60, 2^60 - 1) / 2^30): equal for every
 *     acc (inside the clamp nothing changes; beyond it both give the limit), and
 *     the low 32 bits of that floor are bits 30..61 of the clamped acc, so a
 *     logical shift by 30 is enough (the high bits of the lane are never read);
 *   - remainders acc & (2^30 - 1) as in the scalar code.
 */
typedef struct {
    __m256i x1, x2, y1, y2, z1, e1, e2;
} hge_v4ch_t;

typedef struct {
    __m256i b0, b1, b2, na1, na2, c0, c1, nd1, lo, hi, mask;
    __m256i bias60, bias62, nbias_s; /* 2^60, 2^62, -2^(62 - b_shift): hge_v_step_unsat */
    __m128i b_shift;
} hge_v4k_t;

__attribute__((target("avx2"))) static inline __m256i hge_v_sra64(__m256i a, __m128i count)
{
    __m256i sign = _mm256_cmpgt_epi64(_mm256_setzero_si256(), a);
    return _mm256_xor_si256(_mm256_srl_epi64(_mm256_xor_si256(a, sign), count), sign);
}

__attribute__((target("avx2"))) static inline __m256i hge_v_q30_sat(__m256i acc, const hge_v4k_t *k)
{
    acc = _mm256_blendv_epi8(acc, k->hi, _mm256_cmpgt_epi64(acc, k->hi));
    acc = _mm256_blendv_epi8(acc, k->lo, _mm256_cmpgt_epi64(k->lo, acc));
    return _mm256_srli_epi64(acc, 30);
}

__attribute__((target("avx2"))) static inline void hge_v_step(hge_v4ch_t *c, const hge_v4k_t *k, __m256i u)
{
    __m256i acc;
    __m256i y;
    __m256i z;
    acc = _mm256_add_epi64(_mm256_add_epi64(_mm256_mul_epi32(k->b0, u), _mm256_mul_epi32(k->b1, c->x1)),
                           _mm256_mul_epi32(k->b2, c->x2));
    acc = _mm256_add_epi64(_mm256_add_epi64(hge_v_sra64(acc, k->b_shift), _mm256_mul_epi32(k->na1, c->y1)),
                           _mm256_add_epi64(_mm256_mul_epi32(k->na2, c->y2), c->e1));
    c->e1 = _mm256_and_si256(acc, k->mask);
    y = hge_v_q30_sat(acc, k);
    acc = _mm256_add_epi64(_mm256_add_epi64(_mm256_mul_epi32(k->c0, y), _mm256_mul_epi32(k->c1, c->y1)),
                           _mm256_add_epi64(_mm256_mul_epi32(k->nd1, c->z1), c->e2));
    c->e2 = _mm256_and_si256(acc, k->mask);
    z = hge_v_q30_sat(acc, k);
    c->x2 = c->x1;
    c->x1 = u;
    c->y2 = c->y1;
    c->y1 = y;
    c->z1 = z;
}

/*
 * hge_v_step without the saturation, for runs in which it cannot act, and a flag that
 * says whether it would have: every accumulator acc that hge_q30_sat reads is OR-ed,
 * as acc + 2^60, into *flag; hge_q30_sat(acc) is the plain floor(acc / 2^30) exactly
 * when acc is in [-2^60, 2^60), i.e. when acc + 2^60 (no int64 overflow: |acc| < 6 2^60)
 * has bits 61..63 clear. So if the flag's bits 61..63 are clear after a run, every step
 * of it equals hge_v_step; otherwise the caller discards the run and redoes it with
 * hge_v_step. Saturation needs inputs far beyond a sane filter's range, so the
 * fallback costs nothing in practice (and is exercised by the saturation tests).
 * The biquad's floor(num / 2^b_shift) uses a bias instead of the sign trick:
 * |num| < 3 2^60, so num + 2^62 is positive and below 2^63, a logical shift floors
 * it, and floor((num + 2^62) / 2^s) = floor(num / 2^s) + 2^(62 - s) for s <= 32; the
 * 2^(62 - s) is taken off again with the remainder term (k->nbias_s = -2^(62 - s)).
 */
__attribute__((target("avx2"))) static inline void hge_v_step_unsat(hge_v4ch_t *c, const hge_v4k_t *k, __m256i u,
                                                                    __m256i *flag)
{
    __m256i acc;
    __m256i y;
    __m256i z;
    acc = _mm256_add_epi64(_mm256_add_epi64(_mm256_mul_epi32(k->b0, u), _mm256_mul_epi32(k->b1, c->x1)),
                           _mm256_add_epi64(_mm256_mul_epi32(k->b2, c->x2), k->bias62));
    acc = _mm256_add_epi64(_mm256_add_epi64(_mm256_srl_epi64(acc, k->b_shift), _mm256_mul_epi32(k->na1, c->y1)),
                           _mm256_add_epi64(_mm256_mul_epi32(k->na2, c->y2), _mm256_add_epi64(c->e1, k->nbias_s)));
    c->e1 = _mm256_and_si256(acc, k->mask);
    *flag = _mm256_or_si256(*flag, _mm256_add_epi64(acc, k->bias60));
    y = _mm256_srli_epi64(acc, 30);
    acc = _mm256_add_epi64(_mm256_add_epi64(_mm256_mul_epi32(k->c0, y), _mm256_mul_epi32(k->c1, c->y1)),
                           _mm256_add_epi64(_mm256_mul_epi32(k->nd1, c->z1), c->e2));
    c->e2 = _mm256_and_si256(acc, k->mask);
    *flag = _mm256_or_si256(*flag, _mm256_add_epi64(acc, k->bias60));
    z = _mm256_srli_epi64(acc, 30);
    c->x2 = c->x1;
    c->x1 = u;
    c->y2 = c->y1;
    c->y1 = y;
    c->z1 = z;
}

/*
 * Pre-sums of whole groups from cached references, 8 groups (64 samples) per
 * step: u[g * HGE_HOST_ULANES] = sum over the group of (x16 (512 ref) + 2^31) >> 32.
 * Products: VPMULDQ on the even int32 lanes and on the odd ones (shifted down),
 * + 2^31, high dwords blended back into place: the scalar term exactly. Group
 * sums: a tree of VPHADDD, i.e. integer additions in another order (exact, as
 * |sum| < 2^29). Groups beyond a multiple of 8 go through the scalar code.
 */
__attribute__((target("avx2"))) static void hge_host_presums_avx2(const int32_t *x16, const int32_t *ref,
                                                                  uint32_t groups, int32_t *u)
{
    const __m256i half = _mm256_set1_epi64x(0x80000000LL);
    uint32_t g;
    uint32_t q;
    for (g = 0; g + 8u <= groups; g += 8u) {
        __m256i prod[8];
        __m256i h0, h1, h2, h3;
        __m128i lo, hi;
        int32_t out[8];
        for (q = 0; q < 8u; ++q) {
            const int32_t *xs = x16 + HGE_BW3_DECIMATION * (g + q);
            const int32_t *rs = ref + HGE_BW3_DECIMATION * (g + q);
            __m256i xv = _mm256_loadu_si256((const __m256i *)(const void *)xs);
            __m256i rv = _mm256_slli_epi32(_mm256_loadu_si256((const __m256i *)(const void *)rs), 9);
            __m256i pe = _mm256_add_epi64(_mm256_mul_epi32(xv, rv), half);
            __m256i po = _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(xv, 32), _mm256_srli_epi64(rv, 32)), half);
            prod[q] = _mm256_blend_epi32(_mm256_srli_epi64(pe, 32), po, 0xAA);
        }
        h0 = _mm256_hadd_epi32(prod[0], prod[1]);
        h1 = _mm256_hadd_epi32(prod[2], prod[3]);
        h2 = _mm256_hadd_epi32(prod[4], prod[5]);
        h3 = _mm256_hadd_epi32(prod[6], prod[7]);
        h0 = _mm256_hadd_epi32(h0, h1); /* per 128-bit half: groups g..g+3 */
        h2 = _mm256_hadd_epi32(h2, h3); /* groups g+4..g+7 */
        lo = _mm_add_epi32(_mm256_castsi256_si128(h0), _mm256_extracti128_si256(h0, 1));
        hi = _mm_add_epi32(_mm256_castsi256_si128(h2), _mm256_extracti128_si256(h2, 1));
        _mm_storeu_si128((__m128i *)(void *)out, lo);
        _mm_storeu_si128((__m128i *)(void *)(out + 4), hi);
        for (q = 0; q < 8u; ++q) {
            u[(g + q) * HGE_HOST_ULANES] = out[q];
        }
    }
    for (; g < groups; ++g) {
        int32_t acc = 0;
        for (q = 0; q < HGE_BW3_DECIMATION; ++q) {
            acc = hge_presum_mac(acc, x16[HGE_BW3_DECIMATION * g + q], ref[HGE_BW3_DECIMATION * g + q]);
        }
        u[g * HGE_HOST_ULANES] = acc;
    }
}

/* Channels ch[0..nch) (nch <= 8; missing lanes run on zeros and are dropped)
 * through `groups` filter steps with pre-sums u[g * 8 + c]. */
__attribute__((target("avx2"))) static void hge_host_filter_avx2(hge_bw3_channel_t *const *ch, uint32_t nch,
                                                                 const hge_bw3_mac_t *km, const int32_t *u,
                                                                 uint32_t groups)
{
    hge_v4k_t k;
    hge_v4ch_t v[2];
    int64_t lane[7][8];
    uint32_t c;
    uint32_t g;
    k.b0 = _mm256_set1_epi64x(km->b0);
    k.b1 = _mm256_set1_epi64x(km->b1);
    k.b2 = _mm256_set1_epi64x(km->b2);
    k.na1 = _mm256_set1_epi64x(km->na1);
    k.na2 = _mm256_set1_epi64x(km->na2);
    k.c0 = _mm256_set1_epi64x(km->c0);
    k.c1 = _mm256_set1_epi64x(km->c1);
    k.nd1 = _mm256_set1_epi64x(km->nd1);
    k.lo = _mm256_set1_epi64x(-((int64_t)1 << 60));
    k.hi = _mm256_set1_epi64x(((int64_t)1 << 60) - 1);
    k.mask = _mm256_set1_epi64x(HGE_REMAINDER_MASK);
    k.b_shift = _mm_cvtsi32_si128((int)km->b_shift);
    for (c = 0; c < 8u; ++c) {
        const hge_bw3_channel_t *q = c < nch ? ch[c] : 0;
        lane[0][c] = q ? q->x1 : 0;
        lane[1][c] = q ? q->x2 : 0;
        lane[2][c] = q ? q->y1 : 0;
        lane[3][c] = q ? q->y2 : 0;
        lane[4][c] = q ? q->z1 : 0;
        lane[5][c] = q ? (int64_t)q->e1 : 0;
        lane[6][c] = q ? (int64_t)q->e2 : 0;
    }
    for (c = 0; c < 2u; ++c) {
        v[c].x1 = _mm256_loadu_si256((const __m256i *)(const void *)&lane[0][4u * c]);
        v[c].x2 = _mm256_loadu_si256((const __m256i *)(const void *)&lane[1][4u * c]);
        v[c].y1 = _mm256_loadu_si256((const __m256i *)(const void *)&lane[2][4u * c]);
        v[c].y2 = _mm256_loadu_si256((const __m256i *)(const void *)&lane[3][4u * c]);
        v[c].z1 = _mm256_loadu_si256((const __m256i *)(const void *)&lane[4][4u * c]);
        v[c].e1 = _mm256_loadu_si256((const __m256i *)(const void *)&lane[5][4u * c]);
        v[c].e2 = _mm256_loadu_si256((const __m256i *)(const void *)&lane[6][4u * c]);
    }
    for (g = 0; g < groups; ++g) {
        const int32_t *ug = u + HGE_HOST_ULANES * g;
        hge_v_step(&v[0], &k, _mm256_cvtepi32_epi64(_mm_loadu_si128((const __m128i *)(const void *)ug)));
        hge_v_step(&v[1], &k, _mm256_cvtepi32_epi64(_mm_loadu_si128((const __m128i *)(const void *)(ug + 4))));
    }
    for (c = 0; c < 2u; ++c) {
        _mm256_storeu_si256((__m256i *)(void *)&lane[0][4u * c], v[c].x1);
        _mm256_storeu_si256((__m256i *)(void *)&lane[1][4u * c], v[c].x2);
        _mm256_storeu_si256((__m256i *)(void *)&lane[2][4u * c], v[c].y1);
        _mm256_storeu_si256((__m256i *)(void *)&lane[3][4u * c], v[c].y2);
        _mm256_storeu_si256((__m256i *)(void *)&lane[4][4u * c], v[c].z1);
        _mm256_storeu_si256((__m256i *)(void *)&lane[5][4u * c], v[c].e1);
        _mm256_storeu_si256((__m256i *)(void *)&lane[6][4u * c], v[c].e2);
    }
    for (c = 0; c < nch; ++c) {
        /* Low 32 bits of each lane: the int32 state word (two's complement). */
        ch[c]->x1 = (int32_t)(uint32_t)(uint64_t)lane[0][c];
        ch[c]->x2 = (int32_t)(uint32_t)(uint64_t)lane[1][c];
        ch[c]->y1 = (int32_t)(uint32_t)(uint64_t)lane[2][c];
        ch[c]->y2 = (int32_t)(uint32_t)(uint64_t)lane[3][c];
        ch[c]->z1 = (int32_t)(uint32_t)(uint64_t)lane[4][c];
        ch[c]->e1 = (uint32_t)lane[5][c];
        ch[c]->e2 = (uint32_t)lane[6][c];
    }
}
#endif

/* Cached-reference Butterworth over one chunk for terminals [m0, m1), m1 - m0 <=
 * HGE_HOST_BATCH; the chunk starts `count` samples into the current group. */
HGE_INLINE void hge_host_bw3_batch_refs(hge_lockin_bw3_t *s, uint32_t m0, uint32_t m1, const int32_t *x16,
                                        uint32_t len, uint32_t count, const int32_t *refs, uint32_t stride,
                                        int simd_filter)
{
    int32_t p[HGE_HOST_CHUNK];
    int32_t u[HGE_HOST_GROUPS * HGE_HOST_ULANES];
    hge_bw3_channel_t *ch[2u * HGE_HOST_BATCH];
    uint32_t head = (HGE_BW3_DECIMATION - count) % HGE_BW3_DECIMATION;
    uint32_t groups;
    uint32_t nch = 2u * (m1 - m0);
    uint32_t m;
    uint32_t c;
    uint32_t g;
    uint32_t j;
    if (head > len) {
        head = len;
    }
    groups = (len - head) / HGE_BW3_DECIMATION;
    for (m = m0; m < m1; ++m) {
        hge_lockin_bw3_term_t *t = &s->terms[m];
        const int32_t *rs = refs + (uint64_t)(2u * m) * stride;
        const int32_t *rc = rs + stride;
        /* Finish the group a previous block started (scalar). */
        for (j = 0; j < head; ++j) {
            t->i.acc = hge_presum_mac(t->i.acc, x16[j], rs[j]);
            t->q.acc = hge_presum_mac(t->q.acc, x16[j], rc[j]);
        }
        if (count != 0u && count + head == HGE_BW3_DECIMATION) {
            hge_bw3_step(&t->i, &s->k, t->i.acc);
            hge_bw3_step(&t->q, &s->k, t->q.acc);
            t->i.acc = 0;
            t->q.acc = 0;
        }
        /* Whole groups: all products, then the sums. */
#if HGE_HOST_X86
        if (simd_filter) {
            hge_host_presums_avx2(x16 + head, rs + head, groups, u + 2u * (m - m0));
            hge_host_presums_avx2(x16 + head, rc + head, groups, u + 2u * (m - m0) + 1u);
        } else
#endif
        {
            hge_host_products(x16 + head, rs + head, groups * HGE_BW3_DECIMATION, p);
            hge_host_group_sums(p, groups, u + 2u * (m - m0));
            hge_host_products(x16 + head, rc + head, groups * HGE_BW3_DECIMATION, p);
            hge_host_group_sums(p, groups, u + 2u * (m - m0) + 1u);
        }
        ch[2u * (m - m0)] = &t->i;
        ch[2u * (m - m0) + 1u] = &t->q;
    }
    /* The filter steps, channels interleaved group by group (or in SIMD lanes). */
#if HGE_HOST_X86
    if (simd_filter) {
        hge_host_filter_avx2(ch, nch, &s->k, u, groups);
    } else
#endif
    {
        (void)simd_filter;
        for (g = 0; g < groups; ++g) {
            for (c = 0; c < nch; ++c) {
                hge_bw3_step(ch[c], &s->k, u[HGE_HOST_ULANES * g + c]);
            }
        }
    }
    /* Start the group the next block finishes (scalar); advance the NCOs. */
    for (m = m0; m < m1; ++m) {
        hge_lockin_bw3_term_t *t = &s->terms[m];
        const int32_t *rs = refs + (uint64_t)(2u * m) * stride;
        const int32_t *rc = rs + stride;
        for (j = head + groups * HGE_BW3_DECIMATION; j < len; ++j) {
            t->i.acc = hge_presum_mac(t->i.acc, x16[j], rs[j]);
            t->q.acc = hge_presum_mac(t->q.acc, x16[j], rc[j]);
        }
        t->nco.phase += t->nco.step * len;
    }
}

/* ------------------------------------------------- lane-interleaved cache ---- */

/*
 * One Butterworth terminal over a chunk of x16 with references from the lane cache
 * (rp: the terminal's sine in the chunk's first row; its cosine is HGE_HOST_LANES
 * further): hge_bw3_term_chunk with cached references, the same steps in the same
 * order. The phase is advanced by the caller (once per chunk).
 */
HGE_INLINE void hge_bw3_term_lanes(hge_lockin_bw3_term_t *tp, const hge_bw3_mac_t *k, const int32_t *x16,
                                   const int32_t *rp, uint32_t len, uint32_t count, int scaled)
{
    hge_bw3_channel_t ci = tp->i;
    hge_bw3_channel_t cq = tp->q;
    uint32_t j = 0;
    while (j < len) {
        uint32_t stop = j + (HGE_BW3_DECIMATION - count);
        if (stop > len) {
            stop = len;
        }
        count += stop - j;
        for (; j < stop; ++j) {
            /* A scaled cache holds 256 ref: the division is exact (no rounding). */
            int32_t rs = scaled ? rp[HGE_LANE_ROW * j] / 256 : rp[HGE_LANE_ROW * j];
            int32_t rc = scaled ? rp[HGE_LANE_ROW * j + HGE_HOST_LANES] / 256 : rp[HGE_LANE_ROW * j + HGE_HOST_LANES];
            ci.acc = hge_presum_mac(ci.acc, x16[j], rs);
            cq.acc = hge_presum_mac(cq.acc, x16[j], rc);
        }
        if (count == HGE_BW3_DECIMATION) {
            count = 0u;
            hge_bw3_step(&ci, k, ci.acc);
            hge_bw3_step(&cq, k, cq.acc);
            ci.acc = 0;
            cq.acc = 0;
        }
    }
    tp->i = ci;
    tp->q = cq;
}

#if HGE_HOST_X86
/* The filter constants in vector form (see hge_v_step). */
__attribute__((target("avx2"))) static inline void hge_v4k_load(hge_v4k_t *k, const hge_bw3_mac_t *km)
{
    k->b0 = _mm256_set1_epi64x(km->b0);
    k->b1 = _mm256_set1_epi64x(km->b1);
    k->b2 = _mm256_set1_epi64x(km->b2);
    k->na1 = _mm256_set1_epi64x(km->na1);
    k->na2 = _mm256_set1_epi64x(km->na2);
    k->c0 = _mm256_set1_epi64x(km->c0);
    k->c1 = _mm256_set1_epi64x(km->c1);
    k->nd1 = _mm256_set1_epi64x(km->nd1);
    k->lo = _mm256_set1_epi64x(-((int64_t)1 << 60));
    k->hi = _mm256_set1_epi64x(((int64_t)1 << 60) - 1);
    k->mask = _mm256_set1_epi64x(HGE_REMAINDER_MASK);
    k->bias60 = _mm256_set1_epi64x((int64_t)1 << 60);
    k->bias62 = _mm256_set1_epi64x((int64_t)1 << 62);
    k->nbias_s = _mm256_set1_epi64x((long long)-((int64_t)1 << (62 - (int)km->b_shift))); /* b_shift <= 32 (init) */
    k->b_shift = _mm_cvtsi32_si128((int)km->b_shift);
}

/*
 * Whole groups of one batch of nl <= HGE_HOST_LANES (4) Butterworth terminals (t[0..nl)),
 * everything in registers. A cache row [s0 s1 s2 s3 c0 c1 c2 c3] is one vector; VPMULDQ
 * multiplies its even int32 lanes (s0 s2 c0 c2) and, after a 64-bit shift, its odd ones
 * (s1 s3 c1 c3), so the channel vectors (64-bit lanes, structure of arrays) are
 * v[0] = (I0, I2, Q0, Q2) and v[1] = (I1, I3, Q1, Q3). Per sample: the sample
 * broadcast, one row, and per channel vector
 *   acc += ((x16 ref + 2^22) >>> 23)            (VPMULDQ: exact signed 64-bit product)
 * whose low 32 bits are hge_presum_mac's term floor((x' ref + 2^18) / 2^19) in two's
 * complement (x16 = 16 x', |x16 ref| < 2^49; a logical shift leaves the same low 32
 * bits as the arithmetic one). Eight terms sum in the low 32 bits to the pre-sum
 * (exact: |sum| < 2^29; carries into the high half are never read), and the filter
 * step reads only the low 32 bits of u (VPMULDQ), so the group's step follows
 * directly. Unused lanes (references 0) stay 0 and are not written back.
 * exact = 0: hge_v_step_unsat, returning 1 (and leaving t untouched) if a step would
 * have saturated; exact = 1: hge_v_step. (A double-precision mixer on the FMA units,
 * exact through a 1.5 2^52 rounding constant, measured no faster here.)
 */
static inline uint32_t hge_lane_vec(uint32_t l) { return l & 1u; }
static inline uint32_t hge_lane_pos(uint32_t l, uint32_t quadrature) { return 2u * quadrature + (l >> 1); }

/*
 * One row of a packed cache (hge_refs_fill_packed, 24 bytes at p) as two vectors of
 * 256 ref in the even int32 lanes (what VPMULDQ reads; odd lanes 0): *ev the terminals
 * 0 and 2 (s0 s2 c0 c2), *od terminals 1 and 3 (s1 s3 c1 c3), the two channel-vector
 * orders of hge_bw3_lanes_avx2_run. Two 16-byte loads (bytes 0..15 and 8..23: exactly
 * the row, never past it, no alignment needed), then per vector one byte shuffle that
 * puts each 24-bit value in the top three bytes of its int32 lane with a zero low byte,
 * which is 256 ref as an int32 (two's complement: bit 23 becomes the sign bit).
 */
__attribute__((target("avx2"))) static inline void hge_packed_row_avx2(const uint8_t *p, __m256i shuf_ev,
                                                                      __m256i shuf_od, __m256i *ev, __m256i *od)
{
    __m128i lo = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i hi = _mm_loadu_si128((const __m128i *)(const void *)(p + 8));
    __m256i raw = _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
    *ev = _mm256_shuffle_epi8(raw, shuf_ev);
    *od = _mm256_shuffle_epi8(raw, shuf_od);
}

/* pk non-NULL (a packed cache, rows of HGE_PACKED_ROW bytes) replaces r; callers pass
 * constants for exact and packed so each variant is compiled on its own. */
__attribute__((target("avx2"), always_inline)) static inline int hge_bw3_lanes_avx2_run(
    hge_lockin_bw3_term_t *t, uint32_t nl, const hge_bw3_mac_t *km, const int32_t *x16, const int32_t *r,
    const uint8_t *pk, uint32_t groups, int exact, int packed, int scaled)
{
    /* Low half: the sines at bytes 0..11 of the row (value k at 3k); high half: the
     * cosines at bytes 12..23 = 4..15 of p + 8 (value k at 4 + 3k). -128: a zero byte. */
    const __m256i shuf_ev = _mm256_setr_epi8(-128, 0, 1, 2, -128, -128, -128, -128, -128, 6, 7, 8, -128, -128, -128, -128,
                                             -128, 4, 5, 6, -128, -128, -128, -128, -128, 10, 11, 12, -128, -128, -128, -128);
    const __m256i shuf_od = _mm256_setr_epi8(-128, 3, 4, 5, -128, -128, -128, -128, -128, 9, 10, 11, -128, -128, -128, -128,
                                             -128, 7, 8, 9, -128, -128, -128, -128, -128, 13, 14, 15, -128, -128, -128, -128);
    const __m256i half31 = _mm256_set1_epi64x((int64_t)1 << 31);
    const __m256i half = _mm256_set1_epi64x((int64_t)1 << 22);
    __m256i flag = _mm256_setzero_si256();
    hge_v4k_t k;
    hge_v4ch_t v[2];
    int64_t lane[7][2][4];
    uint32_t c;
    uint32_t l;
    uint32_t g;
    uint32_t q;
    hge_v4k_load(&k, km);
    memset(lane, 0, sizeof lane);
    for (l = 0; l < nl; ++l) {
        for (c = 0; c < 2u; ++c) {
            const hge_bw3_channel_t *ch = c ? &t[l].q : &t[l].i;
            uint32_t vi = hge_lane_vec(l);
            uint32_t li = hge_lane_pos(l, c);
            lane[0][vi][li] = ch->x1;
            lane[1][vi][li] = ch->x2;
            lane[2][vi][li] = ch->y1;
            lane[3][vi][li] = ch->y2;
            lane[4][vi][li] = ch->z1;
            lane[5][vi][li] = (int64_t)ch->e1;
            lane[6][vi][li] = (int64_t)ch->e2;
        }
    }
    for (c = 0; c < 2u; ++c) {
        v[c].x1 = _mm256_loadu_si256((const __m256i *)(const void *)lane[0][c]);
        v[c].x2 = _mm256_loadu_si256((const __m256i *)(const void *)lane[1][c]);
        v[c].y1 = _mm256_loadu_si256((const __m256i *)(const void *)lane[2][c]);
        v[c].y2 = _mm256_loadu_si256((const __m256i *)(const void *)lane[3][c]);
        v[c].z1 = _mm256_loadu_si256((const __m256i *)(const void *)lane[4][c]);
        v[c].e1 = _mm256_loadu_si256((const __m256i *)(const void *)lane[5][c]);
        v[c].e2 = _mm256_loadu_si256((const __m256i *)(const void *)lane[6][c]);
    }
    /* Blocks of HGE_HOST_UBLOCK groups: first every group's pre-sums into ub (the mixer
     * loop keeps only its accumulators and unpack constants in registers), then the
     * filter steps over the block (the loop that holds the channel state). Splitting
     * the two loops changes no arithmetic, only which registers spill (measured faster). */
    for (g = 0; g < groups; g += HGE_HOST_UBLOCK) {
        __m256i ub[2u * HGE_HOST_UBLOCK];
        uint32_t nb = groups - g < HGE_HOST_UBLOCK ? groups - g : HGE_HOST_UBLOCK;
        uint32_t b;
        for (b = 0; b < nb; ++b) {
            __m256i ai = _mm256_setzero_si256();
            __m256i aq = _mm256_setzero_si256();
            for (q = 0; q < HGE_BW3_DECIMATION; ++q) {
                __m256i xb = _mm256_set1_epi32(*x16);
                if (packed) {
                    /* x16 here is 32 x' (the caller's x32): (32 x')(256 ref) = x16 (512 ref), and
                     * the term floor((x16 512 ref + 2^31) / 2^32) is the high int32 of the exact
                     * product + 2^31 (|x16 512 ref| < 2^58); VPADDD sums the high int32s of the
                     * group without carries from the low ones (mod 2^32, exact: |sum| < 2^29),
                     * and one 64-bit shift per group brings the pre-sum to the low int32. */
                    __m256i ev;
                    __m256i od;
                    hge_packed_row_avx2(pk, shuf_ev, shuf_od, &ev, &od);
                    ai = _mm256_add_epi32(ai, _mm256_add_epi64(_mm256_mul_epi32(xb, ev), half31));
                    aq = _mm256_add_epi32(aq, _mm256_add_epi64(_mm256_mul_epi32(xb, od), half31));
                    pk += HGE_PACKED_ROW;
                } else if (scaled) {
                    /* A scaled row: 256 ref in every int32 lane, x16 here is 32 x' (the caller's
                     * x32): the packed path's arithmetic without the unpacking (even lanes
                     * directly, odd lanes after a 64-bit shift). */
                    __m256i rv = _mm256_loadu_si256((const __m256i *)(const void *)r);
                    ai = _mm256_add_epi32(ai, _mm256_add_epi64(_mm256_mul_epi32(xb, rv), half31));
                    aq = _mm256_add_epi32(aq, _mm256_add_epi64(_mm256_mul_epi32(xb, _mm256_srli_epi64(rv, 32)), half31));
                    r += HGE_LANE_ROW;
                } else {
                    __m256i rv = _mm256_loadu_si256((const __m256i *)(const void *)r);
                    ai = _mm256_add_epi64(ai, _mm256_srli_epi64(_mm256_add_epi64(_mm256_mul_epi32(xb, rv), half), 23));
                    aq = _mm256_add_epi64(aq, _mm256_srli_epi64(
                                                  _mm256_add_epi64(_mm256_mul_epi32(xb, _mm256_srli_epi64(rv, 32)), half),
                                                  23));
                    r += HGE_LANE_ROW;
                }
                x16 += 1;
            }
            if (packed || scaled) {
                ai = _mm256_srli_epi64(ai, 32);
                aq = _mm256_srli_epi64(aq, 32);
            }
            ub[2u * b] = ai;
            ub[2u * b + 1u] = aq;
        }
        /* One channel vector at a time: its 7 state words and the flag stay in registers
         * (both vectors at once spill state, and a spilled recurrence waits on a store). */
        for (c = 0; c < 2u; ++c) {
            hge_v4ch_t w = v[c];
            for (b = 0; b < nb; ++b) {
                if (exact) {
                    hge_v_step(&w, &k, ub[2u * b + c]);
                } else {
                    hge_v_step_unsat(&w, &k, ub[2u * b + c], &flag);
                }
            }
            v[c] = w;
        }
    }
    if (!exact && !_mm256_testz_si256(flag, _mm256_set1_epi64x((int64_t)0xE000000000000000ULL))) {
        return 1; /* a step would have saturated: state not written back */
    }
    for (c = 0; c < 2u; ++c) {
        _mm256_storeu_si256((__m256i *)(void *)lane[0][c], v[c].x1);
        _mm256_storeu_si256((__m256i *)(void *)lane[1][c], v[c].x2);
        _mm256_storeu_si256((__m256i *)(void *)lane[2][c], v[c].y1);
        _mm256_storeu_si256((__m256i *)(void *)lane[3][c], v[c].y2);
        _mm256_storeu_si256((__m256i *)(void *)lane[4][c], v[c].z1);
        _mm256_storeu_si256((__m256i *)(void *)lane[5][c], v[c].e1);
        _mm256_storeu_si256((__m256i *)(void *)lane[6][c], v[c].e2);
    }
    for (l = 0; l < nl; ++l) {
        for (c = 0; c < 2u; ++c) {
            hge_bw3_channel_t *ch = c ? &t[l].q : &t[l].i;
            uint32_t vi = hge_lane_vec(l);
            uint32_t li = hge_lane_pos(l, c);
            /* Low 32 bits of each lane: the int32 state word (two's complement). */
            ch->x1 = (int32_t)(uint32_t)(uint64_t)lane[0][vi][li];
            ch->x2 = (int32_t)(uint32_t)(uint64_t)lane[1][vi][li];
            ch->y1 = (int32_t)(uint32_t)(uint64_t)lane[2][vi][li];
            ch->y2 = (int32_t)(uint32_t)(uint64_t)lane[3][vi][li];
            ch->z1 = (int32_t)(uint32_t)(uint64_t)lane[4][vi][li];
            ch->e1 = (uint32_t)lane[5][vi][li];
            ch->e2 = (uint32_t)lane[6][vi][li];
        }
    }
    return 0;
}

/* Whole groups of a batch: the unsaturated run, redone with saturation if it would
 * have saturated anywhere (the terminals are untouched until a run succeeds). */
__attribute__((target("avx2"))) static void hge_bw3_lanes_avx2(hge_lockin_bw3_term_t *t, uint32_t nl,
                                                               const hge_bw3_mac_t *km, const int32_t *x16,
                                                               const int32_t *r, uint32_t groups)
{
    if (hge_bw3_lanes_avx2_run(t, nl, km, x16, r, 0, groups, 0, 0, 0)) {
        (void)hge_bw3_lanes_avx2_run(t, nl, km, x16, r, 0, groups, 1, 0, 0);
    }
}

/* hge_bw3_lanes_avx2 reading a scaled lane cache (256 ref); x32 = 2 x16. */
__attribute__((target("avx2"))) static void hge_bw3_scaled_avx2(hge_lockin_bw3_term_t *t, uint32_t nl,
                                                                const hge_bw3_mac_t *km, const int32_t *x32,
                                                                const int32_t *r, uint32_t groups)
{
    if (hge_bw3_lanes_avx2_run(t, nl, km, x32, r, 0, groups, 0, 0, 1)) {
        (void)hge_bw3_lanes_avx2_run(t, nl, km, x32, r, 0, groups, 1, 0, 1);
    }
}

/* hge_bw3_lanes_avx2 reading a packed cache (pk: the first group's row); x32 = 2 x16
 * (32 x', |.| <= 2^28). */
__attribute__((target("avx2"))) static void hge_bw3_packed_avx2(hge_lockin_bw3_term_t *t, uint32_t nl,
                                                                const hge_bw3_mac_t *km, const int32_t *x32,
                                                                const uint8_t *pk, uint32_t groups)
{
    if (hge_bw3_lanes_avx2_run(t, nl, km, x32, 0, pk, groups, 0, 1, 0)) {
        (void)hge_bw3_lanes_avx2_run(t, nl, km, x32, 0, pk, groups, 1, 1, 0);
    }
}

/* Integrate-and-dump for one batch over len samples of x' (exact int64 sums in the
 * same two lane vectors as hge_bw3_lanes_avx2: integer sums in any order are equal). */
__attribute__((target("avx2"))) static void hge_boxcar_lanes_avx2(hge_lockin_boxcar_term_t *t, uint32_t nl,
                                                                  const int32_t *xc, const int32_t *r, uint32_t len)
{
    int64_t lane[2][4];
    __m256i a0 = _mm256_setzero_si256();
    __m256i a1 = _mm256_setzero_si256();
    uint32_t l;
    uint32_t j;
    for (j = 0; j < len; ++j) {
        __m256i xb = _mm256_set1_epi32(xc[j]);
        __m256i rv = _mm256_loadu_si256((const __m256i *)(const void *)(r + HGE_LANE_ROW * j));
        a0 = _mm256_add_epi64(a0, _mm256_mul_epi32(xb, rv));
        a1 = _mm256_add_epi64(a1, _mm256_mul_epi32(xb, _mm256_srli_epi64(rv, 32)));
    }
    _mm256_storeu_si256((__m256i *)(void *)lane[0], a0);
    _mm256_storeu_si256((__m256i *)(void *)lane[1], a1);
    for (l = 0; l < nl; ++l) {
        t[l].acc_i += lane[hge_lane_vec(l)][hge_lane_pos(l, 0u)];
        t[l].acc_q += lane[hge_lane_vec(l)][hge_lane_pos(l, 1u)];
    }
}
#endif

/* Lane-cache Butterworth over one chunk for the batch starting at terminal m0 (rb: the
 * batch's row of the chunk's first sample); the chunk starts `count` samples into the
 * current group. */
HGE_INLINE void hge_host_bw3_batch_lanes(hge_lockin_bw3_t *s, uint32_t m0, const int32_t *x16, const int32_t *x32,
                                         uint32_t len, uint32_t count, const int32_t *rb, int simd, int scaled)
{
    uint32_t nl = s->n_terms - m0 < HGE_HOST_LANES ? s->n_terms - m0 : HGE_HOST_LANES;
    uint32_t l;
#if HGE_HOST_X86
    if (simd) {
        uint32_t head = (HGE_BW3_DECIMATION - count) % HGE_BW3_DECIMATION;
        uint32_t groups;
        uint32_t done;
        if (head > len) {
            head = len;
        }
        groups = (len - head) / HGE_BW3_DECIMATION;
        done = head + HGE_BW3_DECIMATION * groups;
        for (l = 0; l < nl && head > 0u; ++l) {
            hge_bw3_term_lanes(&s->terms[m0 + l], &s->k, x16, rb + l, head, count, scaled);
        }
        if (scaled) {
            hge_bw3_scaled_avx2(&s->terms[m0], nl, &s->k, x32 + head, rb + HGE_LANE_ROW * head, groups);
        } else {
            hge_bw3_lanes_avx2(&s->terms[m0], nl, &s->k, x16 + head, rb + HGE_LANE_ROW * head, groups);
        }
        for (l = 0; l < nl && done < len; ++l) {
            hge_bw3_term_lanes(&s->terms[m0 + l], &s->k, x16 + done, rb + HGE_LANE_ROW * done + l, len - done, 0u,
                               scaled);
        }
    } else
#endif
    {
        (void)simd;
        (void)x32;
        for (l = 0; l < nl; ++l) {
            hge_bw3_term_lanes(&s->terms[m0 + l], &s->k, x16, rb + l, len, count, scaled);
        }
    }
    for (l = 0; l < nl; ++l) {
        s->terms[m0 + l].nco.phase += s->terms[m0 + l].nco.step * len;
    }
}

HGE_INLINE void hge_host_boxcar_batch_lanes(hge_lockin_boxcar_t *s, uint32_t m0, const int32_t *xc, uint32_t len,
                                            const int32_t *rb, int simd)
{
    uint32_t nl = s->n_terms - m0 < HGE_HOST_LANES ? s->n_terms - m0 : HGE_HOST_LANES;
    uint32_t l;
    uint32_t j;
#if HGE_HOST_X86
    if (simd) {
        hge_boxcar_lanes_avx2(&s->terms[m0], nl, xc, rb, len);
    } else
#endif
    {
        (void)simd;
        for (l = 0; l < nl; ++l) {
            int64_t ai = 0;
            int64_t aq = 0;
            for (j = 0; j < len; ++j) {
                ai += (int64_t)xc[j] * rb[HGE_LANE_ROW * j + l];
                aq += (int64_t)xc[j] * rb[HGE_LANE_ROW * j + HGE_HOST_LANES + l];
            }
            s->terms[m0 + l].acc_i += ai;
            s->terms[m0 + l].acc_q += aq;
        }
    }
    for (l = 0; l < nl; ++l) {
        s->terms[m0 + l].nco.phase += s->terms[m0 + l].nco.step * len;
    }
}

/* Rows unpacked at a time for the scalar kernels on a packed cache. */
#define HGE_HOST_UNPACK 64u

/* hge_bw3_term_lanes for the batch's nl terminals over len rows of a packed cache:
 * unpacked HGE_HOST_UNPACK rows at a time (the values are the lane cache's). */
HGE_INLINE void hge_bw3_terms_packed(hge_lockin_bw3_term_t *t, uint32_t nl, const hge_bw3_mac_t *k,
                                     const int32_t *x16, const uint8_t *pk, uint32_t len, uint32_t count)
{
    int32_t rows[HGE_HOST_UNPACK * HGE_LANE_ROW];
    uint32_t done = 0;
    uint32_t l;
    while (done < len) {
        uint32_t piece = len - done < HGE_HOST_UNPACK ? len - done : HGE_HOST_UNPACK;
        hge_unpack_rows(rows, pk + (uint64_t)HGE_PACKED_ROW * done, piece);
        for (l = 0; l < nl; ++l) {
            hge_bw3_term_lanes(&t[l], k, x16 + done, rows + l, piece, count, 0);
        }
        count = (count + piece) % HGE_BW3_DECIMATION;
        done += piece;
    }
}

/* hge_host_bw3_batch_lanes on a packed cache (pb: the batch's row of the chunk's first sample). */
HGE_INLINE void hge_host_bw3_batch_packed(hge_lockin_bw3_t *s, uint32_t m0, const int32_t *x16, const int32_t *x32,
                                          uint32_t len, uint32_t count, const uint8_t *pb, int simd)
{
    uint32_t nl = s->n_terms - m0 < HGE_HOST_LANES ? s->n_terms - m0 : HGE_HOST_LANES;
    uint32_t l;
#if HGE_HOST_X86
    if (simd) {
        uint32_t head = (HGE_BW3_DECIMATION - count) % HGE_BW3_DECIMATION;
        uint32_t groups;
        uint32_t done;
        if (head > len) {
            head = len;
        }
        groups = (len - head) / HGE_BW3_DECIMATION;
        done = head + HGE_BW3_DECIMATION * groups;
        if (head > 0u) {
            hge_bw3_terms_packed(&s->terms[m0], nl, &s->k, x16, pb, head, count);
        }
        hge_bw3_packed_avx2(&s->terms[m0], nl, &s->k, x32 + head, pb + (uint64_t)HGE_PACKED_ROW * head, groups);
        if (done < len) {
            hge_bw3_terms_packed(&s->terms[m0], nl, &s->k, x16 + done, pb + (uint64_t)HGE_PACKED_ROW * done,
                                 len - done, 0u);
        }
    } else
#endif
    {
        (void)simd;
        (void)x32;
        hge_bw3_terms_packed(&s->terms[m0], nl, &s->k, x16, pb, len, count);
    }
    for (l = 0; l < nl; ++l) {
        s->terms[m0 + l].nco.phase += s->terms[m0 + l].nco.step * len;
    }
}

/* hge_host_boxcar_batch_lanes on a packed cache, HGE_HOST_UNPACK rows at a time
 * (exact int64 sums: any split gives the same integers). */
HGE_INLINE void hge_host_boxcar_batch_packed(hge_lockin_boxcar_t *s, uint32_t m0, const int32_t *xc, uint32_t len,
                                             const uint8_t *pb, int simd)
{
    int32_t rows[HGE_HOST_UNPACK * HGE_LANE_ROW];
    uint32_t nl = s->n_terms - m0 < HGE_HOST_LANES ? s->n_terms - m0 : HGE_HOST_LANES;
    uint32_t done = 0;
    uint32_t l;
    uint32_t j;
    uint32_t phase_len = len;
    while (done < len) {
        uint32_t piece = len - done < HGE_HOST_UNPACK ? len - done : HGE_HOST_UNPACK;
        hge_unpack_rows(rows, pb + (uint64_t)HGE_PACKED_ROW * done, piece);
#if HGE_HOST_X86
        if (simd) {
            hge_boxcar_lanes_avx2(&s->terms[m0], nl, xc + done, rows, piece);
        } else
#endif
        {
            (void)simd;
            for (l = 0; l < nl; ++l) {
                int64_t ai = 0;
                int64_t aq = 0;
                for (j = 0; j < piece; ++j) {
                    ai += (int64_t)xc[done + j] * rows[HGE_LANE_ROW * j + l];
                    aq += (int64_t)xc[done + j] * rows[HGE_LANE_ROW * j + HGE_HOST_LANES + l];
                }
                s->terms[m0 + l].acc_i += ai;
                s->terms[m0 + l].acc_q += aq;
            }
        }
        done += piece;
    }
    for (l = 0; l < nl; ++l) {
        s->terms[m0 + l].nco.phase += s->terms[m0 + l].nco.step * phase_len;
    }
}

HGE_INLINE void hge_host_bw3_job(const hge_host_job_t *job, int simd_filter)
{
    int32_t x16[HGE_HOST_CHUNK];
    int32_t x32[HGE_HOST_CHUNK]; /* 2 x16, for the packed AVX2 kernel */
    hge_lockin_bw3_t *s = job->bw3;
    uint32_t count = s->presum_count;
    uint32_t done = 0;
    uint32_t remaining = job->n;
    uint32_t m;
    while (remaining > 0u) {
        uint32_t len = remaining < HGE_HOST_CHUNK ? remaining : HGE_HOST_CHUNK;
        remaining -= len;
        hge_host_condition(job->x + done, len, s->dc, 16, x16);
        if ((job->packed != 0 || job->scaled) && simd_filter) {
            uint32_t j;
            for (j = 0; j < len; ++j) {
                x32[j] = 2 * x16[j]; /* |x16| <= 2^27: no overflow */
            }
        }
        if (job->packed != 0) {
            for (m = job->m0; m < job->m1; m += HGE_HOST_LANES) {
                hge_host_bw3_batch_packed(s, m, x16, x32, len, count,
                                          job->packed + (uint64_t)(m / HGE_HOST_LANES) * job->stride +
                                              (uint64_t)HGE_PACKED_ROW * done,
                                          simd_filter);
            }
        } else if (job->lanes) {
            /* Jobs start on batch boundaries (hge_host_run). */
            for (m = job->m0; m < job->m1; m += HGE_HOST_LANES) {
                hge_host_bw3_batch_lanes(s, m, x16, x32, len, count,
                                         job->refs + (uint64_t)(m / HGE_HOST_LANES) * job->stride + HGE_LANE_ROW * done,
                                         simd_filter, job->scaled);
            }
        } else if (job->refs != 0) {
            for (m = job->m0; m < job->m1; m += HGE_HOST_BATCH) {
                uint32_t end = job->m1 - m < HGE_HOST_BATCH ? job->m1 : m + HGE_HOST_BATCH;
                hge_host_bw3_batch_refs(s, m, end, x16, len, count, job->refs + done, job->stride, simd_filter);
            }
        } else {
            for (m = job->m0; m < job->m1; ++m) {
                hge_bw3_term_chunk(&s->terms[m], &s->k, x16, len, count);
            }
        }
        count = (count + len) % HGE_BW3_DECIMATION;
        done += len;
    }
}

HGE_INLINE void hge_host_boxcar_job(const hge_host_job_t *job, int simd)
{
    int32_t xc[HGE_HOST_CHUNK];
    hge_lockin_boxcar_t *s = job->box;
    uint32_t done = 0;
    uint32_t remaining = job->n;
    uint32_t m;
    uint32_t j;
    while (remaining > 0u) {
        uint32_t len = remaining < HGE_HOST_CHUNK ? remaining : HGE_HOST_CHUNK;
        remaining -= len;
        hge_host_condition(job->x + done, len, s->dc, 1, xc);
        for (m = job->m0; m < job->m1 && job->packed != 0; m += HGE_HOST_LANES) {
            hge_host_boxcar_batch_packed(s, m, xc, len,
                                         job->packed + (uint64_t)(m / HGE_HOST_LANES) * job->stride +
                                             (uint64_t)HGE_PACKED_ROW * done,
                                         simd);
        }
        for (m = job->m0; m < job->m1 && job->lanes && job->packed == 0; m += HGE_HOST_LANES) {
            hge_host_boxcar_batch_lanes(s, m, xc,
                                        len, job->refs + (uint64_t)(m / HGE_HOST_LANES) * job->stride + HGE_LANE_ROW * done,
                                        simd);
        }
        for (m = job->m0; m < job->m1 && !job->lanes; ++m) {
            hge_lockin_boxcar_term_t *t = &s->terms[m];
            if (job->refs != 0) {
                /* Exact int64 dot products; integer sums in any order are equal. */
                const int32_t *rs = job->refs + done + (uint64_t)(2u * m) * job->stride;
                const int32_t *rc = rs + job->stride;
                int64_t ai = 0;
                int64_t aq = 0;
                for (j = 0; j < len; ++j) {
                    ai += (int64_t)xc[j] * rs[j];
                    aq += (int64_t)xc[j] * rc[j];
                }
                t->acc_i += ai;
                t->acc_q += aq;
                t->nco.phase += t->nco.step * len;
            } else {
                hge_boxcar_term_chunk(t, xc, len);
            }
        }
        done += len;
    }
}

static void hge_host_run_generic(const void *p)
{
    const hge_host_job_t *job = (const hge_host_job_t *)p;
    if (job->bw3 != 0) {
        hge_host_bw3_job(job, 0);
    } else {
        hge_host_boxcar_job(job, 0);
    }
}

#if HGE_HOST_X86
__attribute__((target("avx2"), flatten)) static void hge_host_run_avx2(const void *p)
{
    const hge_host_job_t *job = (const hge_host_job_t *)p;
    if (job->bw3 != 0) {
        hge_host_bw3_job(job, 1);
    } else {
        hge_host_boxcar_job(job, 1);
    }
}
#endif

static void hge_host_task(const void *p)
{
    const hge_host_job_t *job = (const hge_host_job_t *)p;
    job->run(job);
}

/* Split terminals [0, n_terms) over opts->threads jobs and run them (hge_host_pool.h). */
static hge_status hge_host_run(hge_host_job_t *base, uint32_t n_terms, const hge_host_opts_t *opts)
{
    hge_host_job_t jobs[HGE_HOST_MAX_THREADS];
    const void *args[HGE_HOST_MAX_THREADS];
    uint32_t isa;
    uint32_t k;
    uint32_t n_jobs;
    uint32_t unit;
    uint32_t n_units;
    if (opts == 0) {
        return HGE_ERR_NULL;
    }
    isa = opts->isa;
    if (isa > HGE_ISA_AVX2 || !hge_host_isa_available(isa) || opts->threads == 0u ||
        opts->threads > HGE_HOST_MAX_THREADS || opts->pool > HGE_POOL_SPAWN) {
        return HGE_ERR_RANGE;
    }
    if (isa == HGE_ISA_AUTO) {
        isa = hge_host_isa_available(HGE_ISA_AVX2) ? HGE_ISA_AVX2 : HGE_ISA_GENERIC;
    }
    base->run = hge_host_run_generic;
#if HGE_HOST_X86
    if (isa == HGE_ISA_AVX2) {
        base->run = hge_host_run_avx2;
    }
#endif
    /* Split by terminal, or (lane cache) by whole batches of HGE_HOST_LANES. */
    unit = base->lanes ? HGE_HOST_LANES : 1u;
    n_units = (n_terms + unit - 1u) / unit;
    n_jobs = opts->threads < n_units ? opts->threads : n_units;
    for (k = 0; k < n_jobs; ++k) {
        uint32_t u1 = (uint32_t)((uint64_t)n_units * (k + 1u) / n_jobs);
        jobs[k] = *base;
        jobs[k].m0 = unit * (uint32_t)((uint64_t)n_units * k / n_jobs);
        jobs[k].m1 = unit * u1 < n_terms ? unit * u1 : n_terms;
        args[k] = &jobs[k];
    }
    /* Job 0 on this thread, the others on workers; every job runs (on this thread if no
     * other can be had) before this returns. */
    return hge_pool_run(hge_host_task, args, n_jobs, opts->pool) == n_jobs ? HGE_OK : HGE_ERR_RANGE;
}

static hge_status hge_host_bw3_any(hge_lockin_bw3_t *s, const int32_t *x, uint32_t n, const int32_t *refs,
                                   uint32_t stride, const hge_host_opts_t *opts, int lanes, const uint8_t *packed,
                                   int scaled)
{
    hge_host_job_t job;
    hge_status st;
    if (s == 0 || x == 0 || s->terms == 0) {
        return HGE_ERR_NULL;
    }
    if (packed != 0) {
        if ((uint64_t)n * HGE_PACKED_ROW > stride) {
            return HGE_ERR_SIZE;
        }
        refs = 0;
        lanes = 1;
    } else if (refs != 0 && (uint64_t)n * (lanes ? HGE_LANE_ROW : 1u) > stride) {
        return HGE_ERR_SIZE;
    }
    if (lanes && refs == 0 && packed == 0) {
        return HGE_ERR_NULL;
    }
    job.lanes = lanes;
    job.packed = packed;
    job.scaled = scaled;
    job.bw3 = s;
    job.box = 0;
    job.x = x;
    job.n = n;
    job.refs = refs;
    job.stride = stride;
    job.m0 = 0;
    job.m1 = s->n_terms;
    st = hge_host_run(&job, s->n_terms, opts);
    if (st == HGE_OK) {
        s->presum_count = (uint32_t)(((uint64_t)s->presum_count + n) % HGE_BW3_DECIMATION);
    }
    return st;
}

static hge_status hge_host_boxcar_any(hge_lockin_boxcar_t *s, const int32_t *x, uint32_t n, const int32_t *refs,
                                      uint32_t stride, const hge_host_opts_t *opts, int lanes, const uint8_t *packed)
{
    hge_host_job_t job;
    hge_status st;
    if (s == 0 || x == 0 || s->terms == 0) {
        return HGE_ERR_NULL;
    }
    if ((uint64_t)s->count + n > HGE_BOXCAR_MAX_SAMPLES) {
        return HGE_ERR_SIZE;
    }
    if (packed != 0) {
        if ((uint64_t)n * HGE_PACKED_ROW > stride) {
            return HGE_ERR_SIZE;
        }
        refs = 0;
        lanes = 1;
    } else if (refs != 0 && (uint64_t)n * (lanes ? HGE_LANE_ROW : 1u) > stride) {
        return HGE_ERR_SIZE;
    }
    if (lanes && refs == 0 && packed == 0) {
        return HGE_ERR_NULL;
    }
    job.lanes = lanes;
    job.packed = packed;
    job.scaled = 0;
    job.bw3 = 0;
    job.box = s;
    job.x = x;
    job.n = n;
    job.refs = refs;
    job.stride = stride;
    job.m0 = 0;
    job.m1 = s->n_terms;
    st = hge_host_run(&job, s->n_terms, opts);
    if (st == HGE_OK) {
        s->count += n;
    }
    return st;
}

hge_status hge_host_bw3_process(hge_lockin_bw3_t *s, const int32_t *x, uint32_t n, const int32_t *refs,
                                uint32_t stride, const hge_host_opts_t *opts)
{
    return hge_host_bw3_any(s, x, n, refs, stride, opts, 0, 0, 0);
}

hge_status hge_host_bw3_process_lanes(hge_lockin_bw3_t *s, const int32_t *x, uint32_t n, const int32_t *refs,
                                      uint32_t stride, const hge_host_opts_t *opts)
{
    return hge_host_bw3_any(s, x, n, refs, stride, opts, 1, 0, 0);
}

hge_status hge_host_boxcar_process(hge_lockin_boxcar_t *s, const int32_t *x, uint32_t n,
                                   const int32_t *refs, uint32_t stride, const hge_host_opts_t *opts)
{
    return hge_host_boxcar_any(s, x, n, refs, stride, opts, 0, 0);
}

hge_status hge_host_boxcar_process_lanes(hge_lockin_boxcar_t *s, const int32_t *x, uint32_t n,
                                         const int32_t *refs, uint32_t stride, const hge_host_opts_t *opts)
{
    return hge_host_boxcar_any(s, x, n, refs, stride, opts, 1, 0);
}

hge_status hge_host_bw3_process_packed(hge_lockin_bw3_t *s, const int32_t *x, uint32_t n, const uint8_t *refs,
                                       uint32_t stride, const hge_host_opts_t *opts)
{
    if (refs == 0) {
        return HGE_ERR_NULL;
    }
    return hge_host_bw3_any(s, x, n, 0, stride, opts, 1, refs, 0);
}

hge_status hge_host_bw3_process_scaled(hge_lockin_bw3_t *s, const int32_t *x, uint32_t n, const int32_t *refs,
                                       uint32_t stride, const hge_host_opts_t *opts)
{
    if (refs == 0) {
        return HGE_ERR_NULL;
    }
    return hge_host_bw3_any(s, x, n, refs, stride, opts, 1, 0, 1);
}

hge_status hge_host_boxcar_process_packed(hge_lockin_boxcar_t *s, const int32_t *x, uint32_t n,
                                          const uint8_t *refs, uint32_t stride, const hge_host_opts_t *opts)
{
    if (refs == 0) {
        return HGE_ERR_NULL;
    }
    return hge_host_boxcar_any(s, x, n, 0, stride, opts, 1, refs);
}

/* ---------------------------------------------------------------- mean ---- */

/* Sum of hge_condition(x[k], 0) (24-bit saturation), exact int64 (|sum| <= 2^47). */
HGE_INLINE int64_t hge_host_sat_sum(const int32_t *x, uint32_t n)
{
    int64_t sum = 0;
    uint32_t k;
    for (k = 0; k < n; ++k) {
        sum += hge_condition(x[k], 0);
    }
    return sum;
}

#if HGE_HOST_X86
/* Saturated codes are in [-2^23, 2^23), so HGE_MEAN_ROUND = 32 of them sum to |s| <= 2^28
 * in an int32 lane: four int32 accumulators take 32 vectors of 8 codes each per round
 * (four independent add chains), then their lanes (pairwise sums |.| <= 2^29) are
 * widened into the int64 sum. Exact integers throughout, so the order of the additions
 * does not matter. */
#define HGE_MEAN_ROUND 32u
__attribute__((target("avx2"))) static int64_t hge_host_sat_sum_avx2(const int32_t *x, uint32_t n)
{
    const __m256i lo = _mm256_set1_epi32(HGE_SAMPLE_MIN);
    const __m256i hi = _mm256_set1_epi32(HGE_SAMPLE_MAX);
    __m256i wide = _mm256_setzero_si256();
    int64_t lane[4];
    uint32_t k = 0;
    while (k + 32u <= n) {
        __m256i a0 = _mm256_setzero_si256();
        __m256i a1 = _mm256_setzero_si256();
        __m256i a2 = _mm256_setzero_si256();
        __m256i a3 = _mm256_setzero_si256();
        uint32_t r;
        for (r = 0; r < HGE_MEAN_ROUND && k + 32u <= n; ++r, k += 32u) {
            const __m256i *p = (const __m256i *)(const void *)(x + k);
            a0 = _mm256_add_epi32(a0, _mm256_min_epi32(_mm256_max_epi32(_mm256_loadu_si256(p), lo), hi));
            a1 = _mm256_add_epi32(a1, _mm256_min_epi32(_mm256_max_epi32(_mm256_loadu_si256(p + 1), lo), hi));
            a2 = _mm256_add_epi32(a2, _mm256_min_epi32(_mm256_max_epi32(_mm256_loadu_si256(p + 2), lo), hi));
            a3 = _mm256_add_epi32(a3, _mm256_min_epi32(_mm256_max_epi32(_mm256_loadu_si256(p + 3), lo), hi));
        }
        /* Each a_i lane: at most 32 codes, |sum| <= 2^28; widen to int64 (sign-extended). */
        a0 = _mm256_add_epi32(a0, a1); /* |.| <= 2^29 */
        a2 = _mm256_add_epi32(a2, a3);
        wide = _mm256_add_epi64(wide, _mm256_cvtepi32_epi64(_mm256_castsi256_si128(a0)));
        wide = _mm256_add_epi64(wide, _mm256_cvtepi32_epi64(_mm256_extracti128_si256(a0, 1)));
        wide = _mm256_add_epi64(wide, _mm256_cvtepi32_epi64(_mm256_castsi256_si128(a2)));
        wide = _mm256_add_epi64(wide, _mm256_cvtepi32_epi64(_mm256_extracti128_si256(a2, 1)));
    }
    _mm256_storeu_si256((__m256i *)(void *)lane, wide);
    return lane[0] + lane[1] + lane[2] + lane[3] + hge_host_sat_sum(x + k, n - k);
}
#endif

hge_status hge_host_mean_q0(const int32_t *x, uint32_t n, int32_t *mean, uint32_t isa)
{
    int64_t sum;
    uint64_t biased;
    if (x == 0 || mean == 0) {
        return HGE_ERR_NULL;
    }
    if (n == 0u || n > HGE_MEAN_MAX_SAMPLES) {
        return HGE_ERR_SIZE;
    }
    if (isa > HGE_ISA_AVX2 || !hge_host_isa_available(isa)) {
        return HGE_ERR_RANGE;
    }
    if (isa == HGE_ISA_AUTO) {
        isa = hge_host_isa_available(HGE_ISA_AVX2) ? HGE_ISA_AVX2 : HGE_ISA_GENERIC;
    }
#if HGE_HOST_X86
    if (isa == HGE_ISA_AVX2) {
        sum = hge_host_sat_sum_avx2(x, n);
    } else
#endif
    {
        sum = hge_host_sat_sum(x, n);
    }
    /* The rounding of hge_mean_q0, unchanged: shift to non-negative so unsigned division
     * floors, mean = floor((2 (sum + 2^23 n) + n) / (2 n)) - 2^23. */
    biased = (uint64_t)(sum + (int64_t)8388608 * (int64_t)n);
    *mean = (int32_t)((int64_t)((2u * biased + n) / (2u * (uint64_t)n)) - 8388608);
    return HGE_OK;
}

/* ------------------------------------------------------------- windows ---- */

/* One thread's share of hge_host_bw3_windows / hge_host_boxcar_windows: windows [k0, k1),
 * each through the same calls a caller would make one window at a time (init, set_dc,
 * the host process of the cache's layout on this thread alone, output). */
typedef struct {
    const hge_bw3_coeffs_t *coeffs; /* NULL: integrate-and-dump */
    void *terms;                    /* this thread's n_terms terminals of workspace */
    uint32_t n_terms;
    const uint32_t *steps;
    const uint32_t *phases;
    const int32_t *x;
    uint32_t n;
    uint32_t k0, k1;
    const int32_t *dcs;
    const int32_t *refs;
    const uint8_t *packed;
    uint32_t stride;
    int lanes;
    int scaled;
    void (*run)(const void *job);
    int32_t *out32_i, *out32_q;     /* Butterworth outputs */
    int64_t *out64_i, *out64_q;     /* integrate-and-dump outputs */
    hge_status status;              /* the first error of this share (HGE_OK if none) */
} hge_host_windows_job_t;

static void hge_host_windows_task(const void *p)
{
    hge_host_windows_job_t *w = (hge_host_windows_job_t *)(uintptr_t)p;
    hge_host_job_t job;
    uint32_t k;
    job.refs = w->refs;
    job.packed = w->packed;
    job.stride = w->stride;
    job.lanes = w->lanes;
    job.scaled = w->scaled;
    job.n = w->n;
    job.m0 = 0;
    job.m1 = w->n_terms;
    job.run = w->run;
    w->status = HGE_OK;
    for (k = w->k0; k < w->k1; ++k) {
        const int32_t dc = w->dcs != 0 ? w->dcs[k] : 0;
        const uint64_t at = (uint64_t)k * w->n_terms;
        hge_status st;
        job.x = w->x + (uint64_t)k * w->n;
        if (w->coeffs != 0) {
            hge_lockin_bw3_t s;
            st = hge_lockin_bw3_init(&s, w->coeffs, (hge_lockin_bw3_term_t *)w->terms, w->n_terms, w->steps,
                                     w->phases);
            if (st == HGE_OK) {
                st = hge_lockin_bw3_set_dc(&s, dc);
            }
            if (st == HGE_OK) {
                job.bw3 = &s;
                job.box = 0;
                job.run(&job);
                s.presum_count = (uint32_t)(((uint64_t)s.presum_count + w->n) % HGE_BW3_DECIMATION);
                st = hge_lockin_bw3_output(&s, w->out32_i + at, w->out32_q + at);
            }
        } else {
            hge_lockin_boxcar_t s;
            uint32_t count;
            st = hge_lockin_boxcar_init(&s, (hge_lockin_boxcar_term_t *)w->terms, w->n_terms, w->steps, w->phases);
            if (st == HGE_OK) {
                st = hge_lockin_boxcar_set_dc(&s, dc);
            }
            if (st == HGE_OK) {
                job.bw3 = 0;
                job.box = &s;
                job.run(&job);
                s.count += w->n;
                st = hge_lockin_boxcar_output(&s, w->out64_i + at, w->out64_q + at, &count);
            }
        }
        if (st != HGE_OK) {
            w->status = st;
            return;
        }
    }
}

/* The checks and the thread split shared by both filters; coeffs NULL: integrate-and-dump. */
static hge_status hge_host_windows(const hge_bw3_coeffs_t *coeffs, void *terms, uint32_t term_bytes,
                                   uint32_t n_terms, const uint32_t *steps, const uint32_t *phases,
                                   const int32_t *x, uint32_t n, uint32_t n_windows, const int32_t *dcs,
                                   const void *refs, uint32_t layout, uint32_t stride,
                                   const hge_host_opts_t *opts, int32_t *out32_i, int32_t *out32_q,
                                   int64_t *out64_i, int64_t *out64_q)
{
    hge_host_windows_job_t jobs[HGE_HOST_MAX_THREADS];
    const void *args[HGE_HOST_MAX_THREADS];
    void (*run)(const void *job) = hge_host_run_generic;
    uint32_t isa;
    uint32_t n_jobs;
    uint32_t k;
    uint64_t per_sample;
    if (terms == 0 || x == 0 || opts == 0 || (coeffs != 0 ? out32_i == 0 || out32_q == 0 : out64_i == 0 || out64_q == 0)) {
        return HGE_ERR_NULL;
    }
    if (n_terms == 0u || n_terms > HGE_MAX_TERMINALS) {
        return HGE_ERR_TERMINALS;
    }
    if (n == 0u || (coeffs == 0 && n > HGE_BOXCAR_MAX_SAMPLES)) {
        return HGE_ERR_SIZE;
    }
    if (layout > HGE_REFS_SCALED || (layout == HGE_REFS_SCALED && coeffs == 0)) {
        return HGE_ERR_RANGE;
    }
    if (layout != HGE_REFS_NONE && refs == 0) {
        return HGE_ERR_NULL;
    }
    per_sample = layout == HGE_REFS_NONE ? 0u
                 : layout == HGE_REFS_ROWS ? 1u
                 : layout == HGE_REFS_PACKED ? HGE_PACKED_ROW : HGE_LANE_ROW;
    if ((uint64_t)n * per_sample > stride && layout != HGE_REFS_NONE) {
        return HGE_ERR_SIZE;
    }
    isa = opts->isa;
    if (isa > HGE_ISA_AVX2 || !hge_host_isa_available(isa) || opts->threads == 0u ||
        opts->threads > HGE_HOST_MAX_THREADS || opts->pool > HGE_POOL_SPAWN) {
        return HGE_ERR_RANGE;
    }
    if (n_windows == 0u) {
        return HGE_OK;
    }
    if (isa == HGE_ISA_AUTO) {
        isa = hge_host_isa_available(HGE_ISA_AVX2) ? HGE_ISA_AVX2 : HGE_ISA_GENERIC;
    }
#if HGE_HOST_X86
    if (isa == HGE_ISA_AVX2) {
        run = hge_host_run_avx2;
    }
#endif
    (void)term_bytes;
    n_jobs = opts->threads < n_windows ? opts->threads : n_windows;
    for (k = 0; k < n_jobs; ++k) {
        hge_host_windows_job_t *j = &jobs[k];
        j->coeffs = coeffs;
        j->terms = (uint8_t *)terms + (uint64_t)k * n_terms * term_bytes;
        j->n_terms = n_terms;
        j->steps = steps;
        j->phases = phases;
        j->x = x;
        j->n = n;
        j->k0 = (uint32_t)((uint64_t)n_windows * k / n_jobs);
        j->k1 = (uint32_t)((uint64_t)n_windows * (k + 1u) / n_jobs);
        j->dcs = dcs;
        j->refs = layout == HGE_REFS_NONE || layout == HGE_REFS_PACKED ? 0 : (const int32_t *)refs;
        j->packed = layout == HGE_REFS_PACKED ? (const uint8_t *)refs : 0;
        j->stride = stride;
        j->lanes = layout >= HGE_REFS_LANES;
        j->scaled = layout == HGE_REFS_SCALED;
        j->run = run;
        j->out32_i = out32_i;
        j->out32_q = out32_q;
        j->out64_i = out64_i;
        j->out64_q = out64_q;
        j->status = HGE_OK;
        args[k] = j;
    }
    if (hge_pool_run(hge_host_windows_task, args, n_jobs, opts->pool) != n_jobs) {
        return HGE_ERR_RANGE;
    }
    for (k = 0; k < n_jobs; ++k) {
        if (jobs[k].status != HGE_OK) {
            return jobs[k].status;
        }
    }
    return HGE_OK;
}

hge_status hge_host_bw3_windows(const hge_bw3_coeffs_t *coeffs, hge_lockin_bw3_term_t *terms, uint32_t n_terms,
                                const uint32_t *steps, const uint32_t *phases, const int32_t *x, uint32_t n,
                                uint32_t n_windows, const int32_t *dcs, const void *refs, uint32_t layout,
                                uint32_t stride, const hge_host_opts_t *opts, int32_t *out_i, int32_t *out_q)
{
    if (coeffs == 0) {
        return HGE_ERR_NULL;
    }
    return hge_host_windows(coeffs, terms, (uint32_t)sizeof(hge_lockin_bw3_term_t), n_terms, steps, phases, x, n,
                            n_windows, dcs, refs, layout, stride, opts, out_i, out_q, 0, 0);
}

hge_status hge_host_boxcar_windows(hge_lockin_boxcar_term_t *terms, uint32_t n_terms, const uint32_t *steps,
                                   const uint32_t *phases, const int32_t *x, uint32_t n, uint32_t n_windows,
                                   const int32_t *dcs, const void *refs, uint32_t layout, uint32_t stride,
                                   const hge_host_opts_t *opts, int64_t *out_i, int64_t *out_q)
{
    return hge_host_windows(0, terms, (uint32_t)sizeof(hge_lockin_boxcar_term_t), n_terms, steps, phases, x, n,
                            n_windows, dcs, refs, layout, stride, opts, 0, 0, out_i, out_q);
}

/* -------------------------------------------------------------- codes ---- */

/* Round to nearest, ties to even, for |v| <= 2^51: adding and subtracting 1.5 2^52 leaves
 * the integer nearest v in IEEE binary64 under the default rounding mode (this file is built
 * without -ffast-math, so the compiler keeps both operations; x86-64 computes in SSE2
 * doubles, not in x87 extended precision). */
static double hge_round_even(double v)
{
    const double big = 6755399441055744.0; /* 1.5 2^52 */
    return (v + big) - big;
}

hge_status hge_host_codes(const double *x, uint32_t n_windows, uint32_t n, double full_scale, int32_t *codes,
                          double *scale, int32_t *dcs, uint32_t isa)
{
    const double code_max = 8388607.0; /* 2^23 - 1 */
    uint32_t k;
    if (x == 0 || codes == 0 || scale == 0) {
        return HGE_ERR_NULL;
    }
    if (n == 0u || n > HGE_MEAN_MAX_SAMPLES) {
        return HGE_ERR_SIZE;
    }
    if (!(full_scale >= 0.0) || full_scale > 1.7976931348623157e308) {
        return HGE_ERR_RANGE; /* NaN, negative or infinite full scale */
    }
    if (isa > HGE_ISA_AVX2 || !hge_host_isa_available(isa)) {
        return HGE_ERR_RANGE;
    }
    for (k = 0; k < n_windows; ++k) {
        const double *xk = x + (uint64_t)k * n;
        int32_t *ck = codes + (uint64_t)k * n;
        double peak = 0.0;
        double s;
        uint32_t j;
        for (j = 0; j < n; ++j) {
            const double a = xk[j] < 0.0 ? -xk[j] : xk[j];
            if (!(a <= 1.7976931348623157e308)) {
                return HGE_ERR_RANGE; /* NaN or infinite sample */
            }
            peak = a > peak ? a : peak;
        }
        if (full_scale > 0.0) {
            if (peak > full_scale * (1.0 + 1e-12)) {
                return HGE_ERR_RANGE;
            }
            s = full_scale / code_max;
        } else {
            /* One bit of headroom (demod.AUTO_CODE = 2^22 - 1): the core saturates x - dc to 24 bits,
             * and |x - dc| <= 2 max|x| fits only so. */
            s = (peak > 0.0 ? peak : 1.0) / 4194303.0;
        }
        scale[k] = s;
        for (j = 0; j < n; ++j) {
            const double q = xk[j] / s;
            ck[j] = q >= code_max ? (int32_t)8388607 : q <= -code_max ? (int32_t)-8388607 : (int32_t)hge_round_even(q);
        }
        if (dcs != 0) {
            hge_status st = hge_host_mean_q0(ck, n, &dcs[k], isa);
            if (st != HGE_OK) {
                return st;
            }
        }
    }
    return HGE_OK;
}

/* ------------------------------------------------------- fundamentals ---- */

/* Round to nearest, ties to even, for any finite v: below 2^52 by hge_round_even, at or above it
 * v is already an integer. NaN stays NaN. */
static double hge_round_even_any(double v)
{
    const double a = v < 0.0 ? -v : v;
    return a < 4503599627370496.0 ? hge_round_even(v) : v; /* 2^52 */
}

/* The DAC values round(v[j] / lsb) lsb of n samples into q (hge_round_even_any lane by lane). */
static void hge_dac_values_scalar(const double *v, uint32_t n, double lsb, double *q)
{
    uint32_t j;
    for (j = 0; j < n; ++j) {
        q[j] = hge_round_even_any(v[j] / lsb) * lsb;
    }
}

#if HGE_HOST_X86
/* hge_dac_values_scalar four samples at a time: divide, |x| < 2^52 ? (x + 1.5 2^52) - 1.5 2^52 : x
 * (NaN keeps x, as the scalar's comparison), multiply -- the same IEEE operations per element, no
 * fused multiply-add (avx2 does not enable fma), so the same bits. */
__attribute__((target("avx2"))) static void hge_dac_values_avx2(const double *v, uint32_t n, double lsb, double *q)
{
    const __m256d vlsb = _mm256_set1_pd(lsb), big = _mm256_set1_pd(6755399441055744.0);
    const __m256d two52 = _mm256_set1_pd(4503599627370496.0), sign = _mm256_set1_pd(-0.0);
    uint32_t j = 0;
    for (; j + 4u <= n; j += 4u) {
        const __m256d x = _mm256_div_pd(_mm256_loadu_pd(v + j), vlsb);
        const __m256d r = _mm256_sub_pd(_mm256_add_pd(x, big), big);
        const __m256d small = _mm256_cmp_pd(_mm256_andnot_pd(sign, x), two52, _CMP_LT_OQ);
        _mm256_storeu_pd(q + j, _mm256_mul_pd(_mm256_blendv_pd(x, r, small), vlsb));
    }
    hge_dac_values_scalar(v + j, n - j, lsb, q + j);
}
#endif

#define HGE_FUND_CHUNK 256u

hge_status hge_host_fundamentals(const double *volts, uint64_t row_stride, const uint32_t *rows, uint32_t m,
                                 const uint64_t *starts, uint32_t n_windows, uint32_t n, double lsb,
                                 const double *ps, const double *pc, double *out_s, double *out_c)
{
    uint32_t k;
    uint32_t i;
    if (volts == 0 || rows == 0 || starts == 0 || ps == 0 || pc == 0 || out_s == 0 || out_c == 0) {
        return HGE_ERR_NULL;
    }
    if (m == 0u || n == 0u) {
        return HGE_ERR_SIZE;
    }
    if (!(lsb > 0.0) || lsb > 1.7976931348623157e308) {
        return HGE_ERR_RANGE;
    }
    for (k = 0; k < n_windows; ++k) {
        if (starts[k] > row_stride || row_stride - starts[k] < n) {
            return HGE_ERR_SIZE; /* a window past the end of its row */
        }
    }
#if HGE_HOST_X86
    const int avx2 = hge_host_isa_available(HGE_ISA_AVX2);
#endif
    for (i = 0; i < m; ++i) {
        const double *p_s = ps + (uint64_t)i * n;
        const double *p_c = pc + (uint64_t)i * n;
        for (k = 0; k < n_windows; ++k) {
            const double *v = volts + (uint64_t)rows[i] * row_stride + starts[k];
            double s = 0.0;
            double c = 0.0;
            uint32_t j0;
            /* The DAC values a chunk at a time (vectorised: elementwise, exact), the two sums in
             * sample order as before (the same bits). */
            for (j0 = 0; j0 < n; j0 += HGE_FUND_CHUNK) {
                double q[HGE_FUND_CHUNK];
                const uint32_t len = n - j0 < HGE_FUND_CHUNK ? n - j0 : HGE_FUND_CHUNK;
                uint32_t j;
#if HGE_HOST_X86
                if (avx2) {
                    hge_dac_values_avx2(v + j0, len, lsb, q);
                } else
#endif
                {
                    hge_dac_values_scalar(v + j0, len, lsb, q);
                }
                for (j = 0; j < len; ++j) {
                    s += q[j] * p_s[j0 + j];
                    c += q[j] * p_c[j0 + j];
                }
            }
            out_s[(uint64_t)k * m + i] = s;
            out_c[(uint64_t)k * m + i] = c;
        }
    }
    return HGE_OK;
}

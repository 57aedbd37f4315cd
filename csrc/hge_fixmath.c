/* hge_fixmath.c - see hge_fixmath.h for formats, rounding and saturation. */
#include "hge_fixmath.h"

int64_t hge_div_round(int64_t num, int64_t den)
{
    int64_t q = num / den;
    int64_t r = num % den;
    if (r < 0) { /* C truncates toward zero: move to floor */
        q -= 1;
        r += den;
    }
    if (2 * r >= den) {
        q += 1;
    }
    return q;
}

static uint32_t hge_bitlen64(uint64_t v)
{
    uint32_t n = 0;
    while (v != 0u) {
        v >>= 1;
        ++n;
    }
    return n;
}

int64_t hge_shift_round(int64_t v, int32_t s)
{
    if (s >= 0) {
        uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
        if (s >= 63 || (mag != 0u && hge_bitlen64(mag) + (uint32_t)s > 63u)) {
            return v == 0 ? 0 : (v < 0 ? -HGE_I64_SAT : HGE_I64_SAT);
        }
        return v < 0 ? -(int64_t)(mag << (uint32_t)s) : (int64_t)(mag << (uint32_t)s);
    }
    if (s <= -63) {
        return 0;
    }
    /* floor(v / 2^k + 1/2) = (floor(v / 2^(k-1)) + 1) >> 1, no overflow. */
    return ((v >> (uint32_t)(-s - 1)) + 1) >> 1;
}

int64_t hge_ratio(int64_t num, int64_t den, int32_t shift)
{
    uint64_t mag = num < 0 ? (uint64_t)0 - (uint64_t)num : (uint64_t)num;
    int32_t room = 62 - (int32_t)hge_bitlen64(mag);
    int32_t a = shift < room ? shift : room;
    int64_t q;
    if (a < 0) {
        a = 0;
    }
    q = hge_div_round(num * ((int64_t)1 << (uint32_t)a), den);
    return hge_shift_round(q, shift - a);
}

int64_t hge_mul_shift(int64_t a, int64_t b, uint32_t s)
{
    uint64_t ma = a < 0 ? (uint64_t)0 - (uint64_t)a : (uint64_t)a;
    uint64_t mb = b < 0 ? (uint64_t)0 - (uint64_t)b : (uint64_t)b;
    uint64_t a0 = ma & 0xFFFFFFFFu, a1 = ma >> 32, b0 = mb & 0xFFFFFFFFu, b1 = mb >> 32;
    uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
    uint64_t mid = (p00 >> 32) + (p01 & 0xFFFFFFFFu) + (p10 & 0xFFFFFFFFu);
    uint64_t lo = (p00 & 0xFFFFFFFFu) | (mid << 32);
    uint64_t hi = p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
    uint64_t half = (uint64_t)1 << (s - 1u);
    uint64_t res;
    int neg = (a < 0) != (b < 0);
    /* (hi:lo) + 2^(s-1), then >> s. */
    lo += half;
    if (lo < half) {
        hi += 1u;
    }
    if (s >= 64u) {
        res = hi >> (s - 64u);
        hi = 0u;
    } else {
        res = (lo >> s) | (hi << (64u - s));
        hi >>= s;
    }
    if (hi != 0u || res > (uint64_t)HGE_I64_SAT) {
        return neg ? -HGE_I64_SAT : HGE_I64_SAT;
    }
    return neg ? -(int64_t)res : (int64_t)res;
}

uint64_t hge_isqrt64(uint64_t v)
{
    uint64_t res = 0u;
    uint64_t bit = (uint64_t)1 << 62;
    while (bit > v) {
        bit >>= 2;
    }
    while (bit != 0u) {
        if (v >= res + bit) {
            v -= res + bit;
            res = (res >> 1) + bit;
        } else {
            res >>= 1;
        }
        bit >>= 2;
    }
    return res;
}

int64_t hge_sqrt_norm(uint64_t v, int32_t *e)
{
    int32_t k = 0;
    while (v < ((uint64_t)1 << 60)) {
        v <<= 2;
        ++k;
    }
    *e = k;
    return (int64_t)hge_isqrt64(v);
}

int64_t hge_exp_q24(int32_t t)
{
    int64_t t30, k, r, p;
    int64_t i;
    if (t > HGE_EXP_T_MAX) {
        t = HGE_EXP_T_MAX;
    } else if (t < -HGE_EXP_T_MAX) {
        t = -HGE_EXP_T_MAX;
    }
    t30 = (int64_t)t * 64;
    k = hge_div_round(t30, HGE_LN2_Q30);
    r = t30 - k * HGE_LN2_Q30;
    p = (int64_t)1 << 30;
    for (i = 8; i >= 1; --i) {
        p = ((int64_t)1 << 30) + hge_div_round(hge_mul_shift(r, p, 30u), i);
    }
    return hge_shift_round(p, (int32_t)k - 6);
}

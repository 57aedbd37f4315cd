/*
 * hge_fixmath.h - integer helpers of the on-device trainer: rounding division,
 * a 64 x 64 -> 128-bit multiply-and-shift, integer square root and exponential.
 * No division by a variable in the per-sample path uses these; they run a few
 * times per window or per iteration. Modelled step by step in
 * hge_embedded/reference/trainer_fixed.py (same names).
 *
 * Rounding everywhere: half-up on the real value (floor(v + 1/2)), except
 * hge_mul_shift, which rounds the magnitude half-up (half away from zero) so
 * it is odd-symmetric. Overflow: saturate to [-(2^63 - 1), 2^63 - 1], never wrap.
 */
#ifndef HGE_FIXMATH_H
#define HGE_FIXMATH_H

#include "hge_types.h"

#define HGE_I64_SAT ((int64_t)0x7FFFFFFFFFFFFFFFLL)

/* floor(num / den + 1/2) for den > 0 and |num| < 2^62 (so 2 * remainder
 * cannot overflow). Exact; C's truncating division is corrected to floor. */
int64_t hge_div_round(int64_t num, int64_t den);

/* round(v * 2^s) for any s: s >= 0 shifts left with saturation; s < 0 is
 * floor(v / 2^-s + 1/2) (half-up). */
int64_t hge_shift_round(int64_t v, int32_t s);

/* round(num * 2^shift / den), 0 < den < 2^32, |num| < 2^62, any shift:
 * num is first shifted left by a = min(shift, headroom to 2^62), divided with
 * hge_div_round, and the quotient shifted by shift - a (hge_shift_round). The
 * quotient keeps at least 62 - 32 = 30 significant bits. Saturates. */
int64_t hge_ratio(int64_t num, int64_t den, int32_t shift);

/* sign(a b) * floor((|a| |b| + 2^(s-1)) / 2^s), s in 1..63, exact 128-bit
 * product, saturated to +-(2^63 - 1). */
int64_t hge_mul_shift(int64_t a, int64_t b, uint32_t s);

/* floor(sqrt(v)), exact, bit by bit (no division). */
uint64_t hge_isqrt64(uint64_t v);

/* Normalised square root of v >= 1: returns r = floor(sqrt(v * 4^e)) with
 * the largest e >= 0 such that v * 4^e < 2^62, so r in [2^30, 2^31) and
 * sqrt(v) = r 2^-e (relative error < 2^-30, always low). *e receives e. */
int64_t hge_sqrt_norm(uint64_t v, int32_t *e);

/* Exponential e^t, t in Q24 clamped to [-HGE_EXP_T_MAX, HGE_EXP_T_MAX];
 * result Q24 (int64, < 2^42). Steps: k = floor(t / ln2 + 1/2) with ln2 in
 * Q30, r = t - k ln2 (Q30, |r| <= ln2 / 2), e^r by Horner on the Taylor
 * series to degree 8 (each step rounded: mul_shift then div_round), then
 * times 2^k by hge_shift_round. Error (derived in trainer_fixed.py and
 * tested): relative < 3e-8 plus 0.5 LSB of Q24. */
#define HGE_EXP_T_MAX ((int32_t)12 << 24)
#define HGE_LN2_Q30 744261118L
int64_t hge_exp_q24(int32_t t);

#endif /* HGE_FIXMATH_H */

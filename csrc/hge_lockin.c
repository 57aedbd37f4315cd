/*
 * hge_lockin.c - see hge_lockin.h for formats.
 *
 * Accumulator bounds of one filter section (why int64 never overflows):
 *   mixer:  |x'| <= 2^23, |ref| < 2^22 -> |x' ref| < 2^45; rounded >> 19 -> < 2^26;
 *           a pre-sum of 8 -> |u| < 2^29 (int32)
 *   biquad: |b| < 2^31, |u| < 2^29  -> numerator < 3 * 2^60 (before >> b_shift)
 *           |a1| < 2^31, |a2| < 2^30, |y| <= 2^30 -> 2^61 + 2^60
 *           e < 2^30; total < 6 * 2^60 + 2^30 < 2^63
 *   first order: |c| < 2^31, |y| <= 2^30 -> 2^62; |d| < 2^30, |z| <= 2^30 -> 2^60
 *           total < 2^62 + 2^60 + 2^30 < 2^63
 */
#include "hge_lockin.h"

#define HGE_REMAINDER_MASK 0x3FFFFFFFu

uint32_t hge_lockin_bw3_state_bytes(void)
{
    return (uint32_t)sizeof(hge_lockin_bw3_term_t);
}

uint32_t hge_lockin_boxcar_state_bytes(void)
{
    return (uint32_t)sizeof(hge_lockin_boxcar_term_t);
}

/* sat24(x - dc): Q0 in, Q0 out, saturating, in 32-bit arithmetic.
 * With |dc| < 2^23, clamping x to +-2^25 first changes nothing: any x beyond
 * it leaves x - dc beyond +-2^23 either way, so the result is the same. */
static inline int32_t hge_condition(int32_t x, int32_t dc)
{
    int32_t v = x > 33554432 ? 33554432 : (x < -33554432 ? -33554432 : x);
    v -= dc;
    return v > HGE_SAMPLE_MAX ? (int32_t)HGE_SAMPLE_MAX : (v < HGE_SAMPLE_MIN ? (int32_t)HGE_SAMPLE_MIN : v);
}

hge_status hge_mean_q0(const int32_t *x, uint32_t n, int32_t *mean)
{
    int64_t sum = 0;
    uint64_t biased;
    uint32_t k;
    if (x == 0 || mean == 0) {
        return HGE_ERR_NULL;
    }
    if (n == 0u || n > HGE_MEAN_MAX_SAMPLES) {
        return HGE_ERR_SIZE;
    }
    for (k = 0; k < n; ++k) {
        sum += hge_condition(x[k], 0);
    }
    /* Shift to non-negative so unsigned division is a floor:
     * mean = floor((2 (sum + 2^23 n) + n) / (2 n)) - 2^23. */
    biased = (uint64_t)(sum + (int64_t)8388608 * (int64_t)n);
    *mean = (int32_t)((int64_t)((2u * biased + n) / (2u * (uint64_t)n)) - 8388608);
    return HGE_OK;
}

static hge_status hge_check_steps(uint32_t n_terms, const uint32_t *steps)
{
    uint32_t m;
    if (steps == 0) {
        return HGE_ERR_NULL;
    }
    if (n_terms == 0u || n_terms > HGE_MAX_TERMINALS) {
        return HGE_ERR_TERMINALS;
    }
    for (m = 0; m < n_terms; ++m) {
        if (steps[m] == 0u || steps[m] >= 0x80000000u) {
            return HGE_ERR_FREQ;
        }
    }
    return HGE_OK;
}

static int hge_bw3_coeffs_stable(const hge_bw3_coeffs_t *k)
{
    const int64_t one = (int64_t)1 << 30;
    int64_t a1 = k->a[0] < 0 ? -(int64_t)k->a[0] : (int64_t)k->a[0];
    int64_t a2 = k->a[1];
    int64_t d = k->d;
    if (a2 <= -one || a2 >= one || a1 >= one + a2) {
        return 0;
    }
    return d > -one && d < one && k->b_shift <= 32u;
}

/* ---------------------------------------------------------------- bw3 ---- */

static void hge_bw3_channel_clear(hge_bw3_channel_t *c)
{
    c->acc = c->x1 = c->x2 = c->y1 = c->y2 = c->z1 = 0;
    c->e1 = c->e2 = 0u;
}

hge_status hge_lockin_bw3_init(hge_lockin_bw3_t *s, const hge_bw3_coeffs_t *coeffs,
                               hge_lockin_bw3_term_t *terms, uint32_t n_terms,
                               const uint32_t *steps, const uint32_t *phases)
{
    hge_status st;
    uint32_t m;
    if (s == 0 || coeffs == 0 || terms == 0) {
        return HGE_ERR_NULL;
    }
    st = hge_check_steps(n_terms, steps);
    if (st != HGE_OK) {
        return st;
    }
    if (!hge_bw3_coeffs_stable(coeffs)) {
        return HGE_ERR_COEF;
    }
    s->coeffs = coeffs;
    s->terms = terms;
    s->n_terms = n_terms;
    s->dc = 0;
    for (m = 0; m < n_terms; ++m) {
        terms[m].nco.step = steps[m];
    }
    return hge_lockin_bw3_reset(s, phases);
}

hge_status hge_lockin_bw3_reset(hge_lockin_bw3_t *s, const uint32_t *phases)
{
    uint32_t m;
    if (s == 0 || s->terms == 0) {
        return HGE_ERR_NULL;
    }
    for (m = 0; m < s->n_terms; ++m) {
        s->terms[m].nco.phase = phases ? phases[m] : 0u;
        hge_bw3_channel_clear(&s->terms[m].i);
        hge_bw3_channel_clear(&s->terms[m].q);
    }
    s->presum_count = 0u;
    return HGE_OK;
}

hge_status hge_lockin_bw3_set_dc(hge_lockin_bw3_t *s, int32_t dc)
{
    if (s == 0) {
        return HGE_ERR_NULL;
    }
    if (dc < HGE_SAMPLE_MIN || dc > HGE_SAMPLE_MAX) {
        return HGE_ERR_RANGE;
    }
    s->dc = dc;
    return HGE_OK;
}

/* Coefficients as the inner loop wants them: denominators negated, so every
 * term is a multiply-accumulate (exact: |a1| < 2^31 - 1 by the stability
 * check, |a2|, |d1| < 2^30, so each negation fits). */
typedef struct {
    int32_t b0, b1, b2, na1, na2, c0, c1, nd1;
    uint32_t b_shift;
} hge_bw3_mac_t;

/* sat(acc >> 30) into [-2^30, 2^30 - 1]: the shift fits exactly when acc lies in
 * [-2^60, 2^60), one unsigned compare; otherwise saturate by sign. acc + 2^60
 * cannot overflow since |acc| < 6 * 2^60 (bounds above). Same result as
 * hge_clamp64(acc >> 30, HGE_FILTER_MIN, HGE_FILTER_MAX), cheaper on 32-bit cores. */
static inline int32_t hge_q30_sat(int64_t acc)
{
    if ((uint64_t)(acc + ((int64_t)1 << 60)) < ((uint64_t)1 << 61)) {
        return (int32_t)(acc >> 30);
    }
    return acc < 0 ? (int32_t)HGE_FILTER_MIN : (int32_t)HGE_FILTER_MAX;
}

/* One pre-sum u (Q6, |u| < 2^29) through biquad + first-order section with error feedback. */
static inline void hge_bw3_step(hge_bw3_channel_t *c, const hge_bw3_mac_t *k, int32_t u)
{
    int64_t acc;
    int32_t y;
    int32_t z;
    acc = (int64_t)k->b0 * u + (int64_t)k->b1 * c->x1 + (int64_t)k->b2 * c->x2;
    acc = (acc >> k->b_shift) + (int64_t)k->na1 * c->y1 + (int64_t)k->na2 * c->y2 + (int64_t)c->e1;
    c->e1 = (uint32_t)((uint64_t)acc & HGE_REMAINDER_MASK);
    y = hge_q30_sat(acc);

    acc = (int64_t)k->c0 * y + (int64_t)k->c1 * c->y1 + (int64_t)k->nd1 * c->z1 + (int64_t)c->e2;
    c->e2 = (uint32_t)((uint64_t)acc & HGE_REMAINDER_MASK);
    z = hge_q30_sat(acc);

    c->x2 = c->x1;
    c->x1 = u;
    c->y2 = c->y1;
    c->y1 = y;
    c->z1 = z;
}

/* Mixer product rounded to the pre-sum's format: (x' ref + 2^18) >> 19, |.| < 2^26.
 * Written as the high word of (16 x') (512 ref) + 2^31, which is the same number
 * (both factors still fit int32: |x'| <= 2^23, |ref| < 2^22) and is one
 * rounding high-multiply (SMMULR) on a Cortex-M4. */
static inline int32_t hge_presum_term(int32_t xv, int32_t ref)
{
    return (int32_t)(((int64_t)(xv * 16) * (ref * 512) + 0x80000000LL) >> 32);
}

/* Samples are conditioned once per chunk (not once per terminal) into this
 * many int32 on the stack. */
#define HGE_CHUNK 32u

static void hge_condition_chunk(const int32_t *x, uint32_t n, int32_t dc, int32_t *out)
{
    uint32_t j;
    for (j = 0; j < n; ++j) {
        out[j] = hge_condition(x[j], dc);
    }
}

hge_status hge_lockin_bw3_process(hge_lockin_bw3_t *s, const int32_t *x, uint32_t n)
{
    hge_bw3_mac_t k;
    int32_t buf[HGE_CHUNK];
    uint32_t start;
    uint32_t m;
    uint32_t j;
    if (s == 0 || x == 0 || s->terms == 0 || s->coeffs == 0) {
        return HGE_ERR_NULL;
    }
    k.b0 = s->coeffs->b[0];
    k.b1 = s->coeffs->b[1];
    k.b2 = s->coeffs->b[2];
    k.na1 = -s->coeffs->a[0];
    k.na2 = -s->coeffs->a[1];
    k.c0 = s->coeffs->c[0];
    k.c1 = s->coeffs->c[1];
    k.nd1 = -s->coeffs->d;
    k.b_shift = s->coeffs->b_shift;
    /* Chunk by chunk, terminal-major inside a chunk: one terminal's state stays
     * in locals while it runs over the chunk. */
    for (start = 0; start < n; start += HGE_CHUNK) {
        uint32_t len = n - start < HGE_CHUNK ? n - start : HGE_CHUNK;
        hge_condition_chunk(x + start, len, s->dc, buf);
        for (m = 0; m < s->n_terms; ++m) {
            hge_lockin_bw3_term_t t = s->terms[m];
            uint32_t count = s->presum_count;
            j = 0;
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
                    t.i.acc += hge_presum_term(buf[j], sn);
                    t.q.acc += hge_presum_term(buf[j], cs);
                }
                if (count == HGE_BW3_DECIMATION) {
                    count = 0u;
                    hge_bw3_step(&t.i, &k, t.i.acc);
                    hge_bw3_step(&t.q, &k, t.q.acc);
                    t.i.acc = 0;
                    t.q.acc = 0;
                }
            }
            s->terms[m] = t;
        }
        s->presum_count = (uint32_t)((s->presum_count + len) % HGE_BW3_DECIMATION);
    }
    return HGE_OK;
}

hge_status hge_lockin_bw3_output(const hge_lockin_bw3_t *s, int32_t *out_i, int32_t *out_q)
{
    uint32_t m;
    if (s == 0 || s->terms == 0 || out_i == 0 || out_q == 0) {
        return HGE_ERR_NULL;
    }
    for (m = 0; m < s->n_terms; ++m) {
        out_i[m] = s->terms[m].i.z1;
        out_q[m] = s->terms[m].q.z1;
    }
    return HGE_OK;
}

/* ------------------------------------------------------------- boxcar ---- */

hge_status hge_lockin_boxcar_init(hge_lockin_boxcar_t *s, hge_lockin_boxcar_term_t *terms,
                                  uint32_t n_terms, const uint32_t *steps,
                                  const uint32_t *phases)
{
    hge_status st;
    uint32_t m;
    if (s == 0 || terms == 0) {
        return HGE_ERR_NULL;
    }
    st = hge_check_steps(n_terms, steps);
    if (st != HGE_OK) {
        return st;
    }
    s->terms = terms;
    s->n_terms = n_terms;
    s->dc = 0;
    for (m = 0; m < n_terms; ++m) {
        terms[m].nco.step = steps[m];
    }
    return hge_lockin_boxcar_reset(s, phases);
}

hge_status hge_lockin_boxcar_reset(hge_lockin_boxcar_t *s, const uint32_t *phases)
{
    uint32_t m;
    if (s == 0 || s->terms == 0) {
        return HGE_ERR_NULL;
    }
    for (m = 0; m < s->n_terms; ++m) {
        s->terms[m].nco.phase = phases ? phases[m] : 0u;
        s->terms[m].acc_i = 0;
        s->terms[m].acc_q = 0;
    }
    s->count = 0u;
    return HGE_OK;
}

hge_status hge_lockin_boxcar_set_dc(hge_lockin_boxcar_t *s, int32_t dc)
{
    if (s == 0) {
        return HGE_ERR_NULL;
    }
    if (dc < HGE_SAMPLE_MIN || dc > HGE_SAMPLE_MAX) {
        return HGE_ERR_RANGE;
    }
    s->dc = dc;
    return HGE_OK;
}

hge_status hge_lockin_boxcar_process(hge_lockin_boxcar_t *s, const int32_t *x, uint32_t n)
{
    int32_t buf[HGE_CHUNK];
    uint32_t start;
    uint32_t m;
    uint32_t k;
    if (s == 0 || x == 0 || s->terms == 0) {
        return HGE_ERR_NULL;
    }
    if ((uint64_t)s->count + n > HGE_BOXCAR_MAX_SAMPLES) {
        return HGE_ERR_SIZE;
    }
    for (start = 0; start < n; start += HGE_CHUNK) {
        uint32_t len = n - start < HGE_CHUNK ? n - start : HGE_CHUNK;
        hge_condition_chunk(x + start, len, s->dc, buf);
        for (m = 0; m < s->n_terms; ++m) {
            hge_lockin_boxcar_term_t t = s->terms[m];
            for (k = 0; k < len; ++k) {
                int32_t sn;
                int32_t cs;
                hge_sincos_q22(t.nco.phase, &sn, &cs);
                t.acc_i += (int64_t)buf[k] * sn;
                t.acc_q += (int64_t)buf[k] * cs;
                t.nco.phase += t.nco.step;
            }
            s->terms[m] = t;
        }
    }
    s->count += n;
    return HGE_OK;
}

hge_status hge_lockin_boxcar_output(const hge_lockin_boxcar_t *s, int64_t *out_i,
                                    int64_t *out_q, uint32_t *count)
{
    uint32_t m;
    if (s == 0 || s->terms == 0 || out_i == 0 || out_q == 0 || count == 0) {
        return HGE_ERR_NULL;
    }
    for (m = 0; m < s->n_terms; ++m) {
        out_i[m] = s->terms[m].acc_i;
        out_q[m] = s->terms[m].acc_q;
    }
    *count = s->count;
    return HGE_OK;
}

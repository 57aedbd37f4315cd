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
#include "hge_lockin_cortexm.h"
#include "hge_lockin_kernels.h"

uint32_t hge_lockin_bw3_state_bytes(void)
{
    return (uint32_t)sizeof(hge_lockin_bw3_term_t);
}

uint32_t hge_lockin_boxcar_state_bytes(void)
{
    return (uint32_t)sizeof(hge_lockin_boxcar_term_t);
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
    s->k.b0 = coeffs->b[0];
    s->k.b1 = coeffs->b[1];
    s->k.b2 = coeffs->b[2];
    s->k.na1 = -coeffs->a[0];
    s->k.na2 = -coeffs->a[1];
    s->k.c0 = coeffs->c[0];
    s->k.c1 = coeffs->c[1];
    s->k.nd1 = -coeffs->d;
    s->k.b_shift = coeffs->b_shift;
    s->k.b_lshift = 32u - coeffs->b_shift;
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

#if !defined(HGE_LOCKIN_V6M)
/* x'' = 16 sat24(x - dc) for a chunk: conditioned once per chunk (not per
 * terminal), prescaled for hge_presum_mac (|x''| <= 2^27). */
static void hge_condition_chunk16(const int32_t *x, uint32_t n, int32_t dc, int32_t *out)
{
    uint32_t j;
    for (j = 0; j < n; ++j) {
        out[j] = hge_condition(x[j], dc) * 16;
    }
}
#endif

static void hge_condition_chunk(const int32_t *x, uint32_t n, int32_t dc, int32_t *out)
{
    uint32_t j;
    for (j = 0; j < n; ++j) {
        out[j] = hge_condition(x[j], dc);
    }
}

#if defined(HGE_LOCKIN_V6M)
/* x' and x' >> 8 side by side, for hge_bw3_term_chunk_v6m. */
static void hge_condition_chunk_pairs(const int32_t *x, uint32_t n, int32_t dc, int32_t *out)
{
    uint32_t j;
    for (j = 0; j < n; ++j) {
        int32_t v = hge_condition(x[j], dc);
        out[2u * j] = v;
        out[2u * j + 1u] = v >> 8;
    }
}
#endif

hge_status hge_lockin_bw3_process(hge_lockin_bw3_t *s, const int32_t *x, uint32_t n)
{
#if defined(HGE_LOCKIN_V6M)
    int32_t buf[2u * HGE_CHUNK];
#else
    int32_t buf[HGE_CHUNK];
#endif
    uint32_t remaining = n;
    uint32_t m;
    if (s == 0 || x == 0 || s->terms == 0) {
        return HGE_ERR_NULL;
    }
    /* Chunk by chunk, terminal-major inside a chunk: one terminal's state stays
     * in locals while it runs over the chunk. */
    while (remaining > 0u) {
        uint32_t len = hge_next_chunk(&remaining);
#if defined(HGE_LOCKIN_V6M)
        hge_condition_chunk_pairs(x, len, s->dc, buf);
#else
        hge_condition_chunk16(x, len, s->dc, buf);
#endif
        x += len;
        for (m = 0; m < s->n_terms; ++m) {
#if defined(HGE_LOCKIN_V7EM)
            hge_bw3_term_chunk_v7em(&s->terms[m], &s->k, buf, len, s->presum_count);
#elif defined(HGE_LOCKIN_V6M)
            hge_bw3_term_chunk_v6m(&s->terms[m], &s->k, buf, len, s->presum_count);
#else
            hge_bw3_term_chunk(&s->terms[m], &s->k, buf, len, s->presum_count);
#endif
        }
        s->presum_count = (s->presum_count + len) % HGE_BW3_DECIMATION;
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
    uint32_t remaining = n;
    uint32_t m;
    if (s == 0 || x == 0 || s->terms == 0) {
        return HGE_ERR_NULL;
    }
    if ((uint64_t)s->count + n > HGE_BOXCAR_MAX_SAMPLES) {
        return HGE_ERR_SIZE;
    }
    while (remaining > 0u) {
        uint32_t len = hge_next_chunk(&remaining);
        hge_condition_chunk(x, len, s->dc, buf);
        x += len;
        for (m = 0; m < s->n_terms; ++m) {
#if defined(HGE_LOCKIN_V7EM)
            hge_boxcar_term_chunk_v7em(&s->terms[m], buf, len);
#else
            hge_boxcar_term_chunk(&s->terms[m], buf, len);
#endif
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

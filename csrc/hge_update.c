/* hge_update.c - see hge_update.h for formats, rounding and saturation. */
#include "hge_update.h"

#define HGE_I64_MAX ((int64_t)0x7FFFFFFFFFFFFFFFLL)

/* 32-bit FNV-1a over the limits, four bytes per value, least significant first. */
static uint32_t hge_limits_fingerprint(const int32_t *w_min, const int32_t *w_max, uint32_t n)
{
    uint32_t h = 2166136261u;
    uint32_t m;
    uint32_t b;
    for (m = 0; m < 2u * n; ++m) {
        uint32_t v = (uint32_t)(m < n ? w_min[m] : w_max[m - n]);
        for (b = 0; b < 4u; ++b) {
            h = (h ^ ((v >> (8u * b)) & 0xFFu)) * 16777619u;
        }
    }
    return h;
}

hge_status hge_update_init(hge_update_t *u, const int32_t *w_min, const int32_t *w_max,
                           uint32_t n_electrodes, int32_t eta, uint32_t shift)
{
    uint32_t m;
    if (u == 0 || w_min == 0 || w_max == 0) {
        return HGE_ERR_NULL;
    }
    if (n_electrodes == 0u) {
        return HGE_ERR_SIZE;
    }
    if (n_electrodes > HGE_MAX_TERMINALS) {
        return HGE_ERR_TERMINALS;
    }
    if (shift > 62u) {
        return HGE_ERR_RANGE;
    }
    for (m = 0; m < n_electrodes; ++m) {
        if (w_min[m] > w_max[m]) {
            return HGE_ERR_RANGE;
        }
    }
    u->w_min = w_min;
    u->w_max = w_max;
    u->n_electrodes = n_electrodes;
    u->eta = eta;
    u->shift = shift;
    u->limits_fingerprint = hge_limits_fingerprint(w_min, w_max, n_electrodes);
    return HGE_OK;
}

/* a + b saturated to [-(2^63 - 1), 2^63 - 1]. */
static int64_t hge_add_sat64(int64_t a, int64_t b)
{
    if (b > 0 && a > HGE_I64_MAX - b) {
        return HGE_I64_MAX;
    }
    if (b < 0 && a < -HGE_I64_MAX - b) {
        return -HGE_I64_MAX;
    }
    return hge_clamp64(a + b, -HGE_I64_MAX, HGE_I64_MAX);
}

/* g * eta saturated to [-(2^63 - 1), 2^63 - 1], without overflow. */
static int64_t hge_mul_sat64(int64_t g, int32_t eta)
{
    uint64_t mag_g = g < 0 ? (uint64_t)0 - (uint64_t)g : (uint64_t)g;
    uint64_t mag_e = eta < 0 ? (uint64_t)0 - (uint64_t)(int64_t)eta : (uint64_t)eta;
    int negative = (g < 0) != (eta < 0);
    if (mag_e != 0u && mag_g > (uint64_t)HGE_I64_MAX / mag_e) {
        return negative ? -HGE_I64_MAX : HGE_I64_MAX;
    }
    return negative ? -(int64_t)(mag_g * mag_e) : (int64_t)(mag_g * mag_e);
}

hge_status hge_update_accumulate(const hge_update_t *u, int64_t *g, const int32_t *dEdI,
                                 const int32_t *dIdV, uint32_t n_points)
{
    uint32_t k;
    uint32_t m;
    if (u == 0 || g == 0 || dEdI == 0 || dIdV == 0) {
        return HGE_ERR_NULL;
    }
    for (k = 0; k < n_points; ++k) {
        const int32_t *row = dIdV + (uint64_t)k * u->n_electrodes;
        for (m = 0; m < u->n_electrodes; ++m) {
            g[m] = hge_add_sat64(g[m], (int64_t)dEdI[k] * row[m]);
        }
    }
    return HGE_OK;
}

hge_status hge_update_process(const hge_update_t *u, int32_t *w, const int64_t *g)
{
    uint32_t m;
    if (u == 0 || w == 0 || g == 0) {
        return HGE_ERR_NULL;
    }
    if (hge_limits_fingerprint(u->w_min, u->w_max, u->n_electrodes) != u->limits_fingerprint) {
        return HGE_ERR_RANGE;
    }
    for (m = 0; m < u->n_electrodes; ++m) {
        if (u->w_min[m] > u->w_max[m]) {
            return HGE_ERR_RANGE;
        }
    }
    for (m = 0; m < u->n_electrodes; ++m) {
        int64_t p = hge_mul_sat64(g[m], u->eta);
        int64_t delta;
        /* Round half-up without overflow: floor(p / 2^s) plus the bit below it
         * (= floor((floor(p / 2^(s-1)) + 1) / 2); adding 1 first would overflow
         * at p = 2^63 - 1, s = 1). */
        delta = u->shift == 0u ? p : (p >> u->shift) + ((p >> (u->shift - 1u)) & 1);
        /* Any |delta| >= 2^33 already pushes w past every int32 limit. */
        delta = hge_clamp64(delta, -((int64_t)1 << 33), (int64_t)1 << 33);
        w[m] = (int32_t)hge_clamp64((int64_t)w[m] - delta, u->w_min[m], u->w_max[m]);
    }
    return HGE_OK;
}

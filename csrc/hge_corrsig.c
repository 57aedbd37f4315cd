/* hge_corrsig.c - see hge_corrsig.h for the steps, formats and accuracy. */
#include "hge_corrsig.h"

hge_status hge_corrsig(const int32_t *y, const uint8_t *z, uint32_t n, int32_t scale, int32_t *q,
                       hge_corrsig_result_t *r)
{
    uint32_t k, n1 = 0, maxd = 0;
    int32_t L = 0, e_y, e_k, F = 0;
    int64_t s = 0, m, sd = 0, d1 = 0, d0 = 0, syy, p, sy_m, sk_m, rho, omr, x, ex, onep;
    int64_t cs, coef2, u1, u0, ds1, ds0, bmax = 0;
    uint64_t sdd = 0, bl_b = 0, bl_s = 0, t;
    if (y == 0 || z == 0 || q == 0 || r == 0) {
        return HGE_ERR_NULL;
    }
    if (n < 2u || n > HGE_CORRSIG_MAX_POINTS) {
        return HGE_ERR_SIZE;
    }
    if (scale < 4096) {
        return HGE_ERR_RANGE;
    }
    for (k = 0; k < n; ++k) {
        if (y[k] < HGE_SAMPLE_MIN || y[k] > HGE_SAMPLE_MAX || z[k] > 1u) {
            return HGE_ERR_RANGE;
        }
        s += y[k];
        n1 += z[k];
    }
    if (n1 == 0u || n1 == n) {
        return HGE_ERR_RANGE;
    }
    m = hge_div_round(s, (int64_t)n);
    for (k = 0; k < n; ++k) {
        int64_t d = y[k] - m;
        uint32_t ad = (uint32_t)(d < 0 ? -d : d);
        maxd = ad > maxd ? ad : maxd;
        sd += d;
        sdd += (uint64_t)(d * d);
        if (z[k]) {
            d1 += d;
        } else {
            d0 += d;
        }
    }
    if (maxd == 0u) {
        return HGE_ERR_RANGE;
    }
    while (L < HGE_CORRSIG_MAX_SHIFT && ((uint64_t)maxd << (uint32_t)L) < ((uint64_t)1 << 24)) {
        ++L;
    }
    {
        uint32_t n0 = n - n1;
        int64_t nn = (int64_t)n;
        syy = (int64_t)(sdd << (uint32_t)(2 * L)) - hge_div_round((sd * sd) * ((int64_t)1 << (uint32_t)(2 * L)), nn);
        if (syy <= 0) {
            return HGE_ERR_RANGE;
        }
        p = ((int64_t)n0 * d1 - (int64_t)n1 * d0) * ((int64_t)1 << (uint32_t)L);
        sy_m = hge_sqrt_norm((uint64_t)syy, &e_y);
        sk_m = hge_sqrt_norm((uint64_t)n * n1 * n0, &e_k);
        /* rho = P / (sy sK): sy = sy_m 2^-e_y, sK = sk_m 2^-e_k. Divide by the
         * 31-bit mantissas one at a time (each keeps >= 30 bits). */
        rho = hge_ratio(hge_ratio(p, sy_m, 30 + e_y), sk_m, e_k);
        rho = hge_clamp64(rho, -((int64_t)1 << 30), (int64_t)1 << 30);
        omr = ((int64_t)1 << 30) - rho;
        /* x = P / (n1 n0 scale 2^L), Q24 */
        x = hge_ratio(hge_ratio(p, (int64_t)n1 * n0, 24 - L), scale, 0);
        x = hge_clamp64(x, -HGE_CORRSIG_X_CAP, HGE_CORRSIG_X_CAP);
        ex = hge_exp_q24((int32_t)-x);
        onep = ((int64_t)1 << 24) + ex;
        r->loss = hge_mul_shift(omr, onep, 30u);
        r->rho = (int32_t)rho;
        r->x = (int32_t)x;
        /* sy / scale in Q24: sy' / scale' = sy_m 2^-e_y / (scale 2^L). */
        cs = hge_ratio(sy_m, scale, 24 - L - e_y);
        coef2 = hge_mul_shift(hge_mul_shift(omr, ex, 30u), cs, 24u);
        /* u_k = n0 / sK (z = 1) or -n1 / sK (z = 0); dsep_k = 1/n1 or -1/n0. */
        u1 = hge_ratio((int64_t)n0, sk_m, 24 + e_k);
        u0 = -hge_ratio((int64_t)n1, sk_m, 24 + e_k);
        ds1 = hge_div_round((int64_t)1 << 24, (int64_t)n1);
        ds0 = -hge_div_round((int64_t)1 << 24, (int64_t)n0);
        /* First pass: B_k into q as int64 would need n words; compute max |B| first. */
        for (k = 0; k < 2u * n; ++k) {
            uint32_t j = k < n ? k : k - n;
            int64_t dk = (y[j] - m) * ((int64_t)1 << (uint32_t)L);
            /* v_k = (n d'_k - sum d') / (n sy), Q24 */
            int64_t v = hge_ratio(hge_ratio(nn * dk - sd * ((int64_t)1 << (uint32_t)L), sy_m, 24 + e_y), nn, 0);
            int64_t a = (z[j] ? u1 : u0) - hge_mul_shift(rho, v, 30u);
            int64_t b = hge_mul_shift(onep, a, 24u) + hge_mul_shift(coef2, z[j] ? ds1 : ds0, 24u);
            if (k < n) {
                int64_t ab = b < 0 ? -b : b;
                bmax = ab > bmax ? ab : bmax;
            } else {
                q[j] = (int32_t)hge_ratio(-b, sy_m, F);
            }
            if (k == n - 1u) {
                /* F: max |B| 2^F / sy_m in [2^28, 2^30]. */
                for (t = (uint64_t)bmax, bl_b = 0; t != 0u; t >>= 1) {
                    ++bl_b;
                }
                for (t = (uint64_t)sy_m, bl_s = 0; t != 0u; t >>= 1) {
                    ++bl_s;
                }
                F = bmax == 0 ? 0 : 29 + (int32_t)bl_s - (int32_t)bl_b;
                r->exponent = 24 + F - L - e_y;
            }
        }
    }
    return HGE_OK;
}

/*
 * hge_host_psdlaw.c - the stderr's noise power laws at the lock-in's bins (hge_host_psdlaw.h).
 */
#include "hge_host_psdlaw.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define HGE_PSDLAW_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define HGE_PSDLAW_CLONES
#endif

typedef double hge_v4d __attribute__((vector_size(32)));
typedef uint64_t hge_v4u __attribute__((vector_size(32)));   /* unsigned: the bit arithmetic wraps (NaN lanes) */

#define PSD_LOG2E 1.4426950408889634          /* log2(e) rounded */
#define PSD_SHIFT 6755399441055744.0          /* 1.5 2^52: t + SHIFT - SHIFT rounds t to an integer */
#define PSD_LN2_HI 6.93147180369123816490e-01 /* ln 2 to 32 bits (its low 21 bits zero) */
#define PSD_LN2_LO 1.90821492927058770002e-10 /* ln 2 - PSD_LN2_HI */
#define PSD_MAX_ARG 708.0                     /* beyond: libm (see the header) */

/* 1/k!, k = 2..13, rounded to double */
#define C2 0.5
#define C3 0.16666666666666666
#define C4 0.041666666666666664
#define C5 0.008333333333333333
#define C6 0.001388888888888889
#define C7 0.0001984126984126984
#define C8 2.48015873015873e-05
#define C9 2.7557319223985893e-06
#define C10 2.755731922398589e-07
#define C11 2.505210838544172e-08
#define C12 2.08767569878681e-09
#define C13 1.6059043836821613e-10

/* The polynomial and reduction of one value or four (the same expression text for both types). */
#define PSD_POLY(r) \
    (1.0 + (r) * (1.0 + (r) * (C2 + (r) * (C3 + (r) * (C4 + (r) * (C5 + (r) * (C6 + (r) * (C7 + (r) * \
    (C8 + (r) * (C9 + (r) * (C10 + (r) * (C11 + (r) * (C12 + (r) * C13)))))))))))))

static double exp_one(double x)
{
    if (!(fabs(x) <= PSD_MAX_ARG)) {
        return exp(x);
    }
    const double t = x * PSD_LOG2E + PSD_SHIFT;
    const double kd = t - PSD_SHIFT;
    const double r = (x - kd * PSD_LN2_HI) - kd * PSD_LN2_LO;
    const double p = PSD_POLY(r);
    uint64_t tb, sb;
    const double shift = PSD_SHIFT;
    memcpy(&tb, &t, sizeof tb);
    memcpy(&sb, &shift, sizeof sb);
    const uint64_t bits = (tb - sb + 1023u) << 52;   /* k + 1023 in [2, 2044]: a normal 2^k */
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

typedef int64_t hge_v4m __attribute__((vector_size(32)));    /* lane masks of vector compares */

/* exp of x[0..3] into out[0..3]; lanes beyond +-708 (or NaN) are redone by libm. Always inlined, so
 * that each clone has its own copy at its own ISA (also at -O0); x may be a local copy of the argument. */
static inline __attribute__((always_inline)) void exp_four(const double *x, double *out)
{
    hge_v4d xv, t, kd, r, p, scale;
    memcpy(&xv, x, sizeof xv);
    hge_v4u tb, sb, bits;
    const hge_v4d log2e = {PSD_LOG2E, PSD_LOG2E, PSD_LOG2E, PSD_LOG2E};
    const hge_v4d shift = {PSD_SHIFT, PSD_SHIFT, PSD_SHIFT, PSD_SHIFT};
    const hge_v4d hi = {PSD_LN2_HI, PSD_LN2_HI, PSD_LN2_HI, PSD_LN2_HI};
    const hge_v4d lo = {PSD_LN2_LO, PSD_LN2_LO, PSD_LN2_LO, PSD_LN2_LO};
    const hge_v4d top = {PSD_MAX_ARG, PSD_MAX_ARG, PSD_MAX_ARG, PSD_MAX_ARG};
    t = xv * log2e + shift;
    kd = t - shift;
    r = (xv - kd * hi) - kd * lo;
    p = PSD_POLY(r);
    memcpy(&tb, &t, sizeof tb);
    memcpy(&sb, &shift, sizeof sb);
    bits = (tb - sb + 1023u) << 52;
    memcpy(&scale, &bits, sizeof scale);
    p = p * scale;
    memcpy(out, &p, sizeof p);
    const hge_v4m in = (xv <= top) & (xv >= -top);   /* false for NaN */
    if (!(in[0] & in[1] & in[2] & in[3])) {
        for (int i = 0; i < 4; i++) {
            if (!in[i]) {
                out[i] = exp(x[i]);
            }
        }
    }
}

HGE_PSDLAW_CLONES
hge_status hge_psdlaw_exp(const double *x, uint64_t n, double *out)
{
    if (n == 0u) {
        return HGE_OK;
    }
    if (x == NULL || out == NULL) {
        return HGE_ERR_NULL;
    }
    uint64_t j = 0;
    for (; j + 4u <= n; j += 4u) {
        exp_four(x + j, out + j);
    }
    for (; j < n; j++) {
        out[j] = exp_one(x[j]);
    }
    return HGE_OK;
}

HGE_PSDLAW_CLONES
hge_status hge_psdlaw(const double *lf, const double *lf2, uint64_t n, double icpt, double slope, double c00,
                      double c01, double c11, double *out)
{
    if (n == 0u) {
        return HGE_OK;
    }
    if (lf == NULL || out == NULL) {
        return HGE_ERR_NULL;
    }
    const double two_c01 = 2.0 * c01;
    const hge_v4d iv = {icpt, icpt, icpt, icpt}, sv = {slope, slope, slope, slope};
    const hge_v4d c0v = {c00, c00, c00, c00}, c1v = {two_c01, two_c01, two_c01, two_c01};
    const hge_v4d c2v = {c11, c11, c11, c11}, half = {2.0, 2.0, 2.0, 2.0};
    uint64_t j = 0;
    /* numpy's: icpt + slope * lf - (c00 * lf2 + 2 * c01 * lf + c11) / 2, lane by lane */
    if (lf2 != NULL) {
        for (; j + 4u <= n; j += 4u) {
            hge_v4d l, l2, a;
            memcpy(&l, lf + j, sizeof l);
            memcpy(&l2, lf2 + j, sizeof l2);
            a = (iv + sv * l) - ((c0v * l2 + c1v * l) + c2v) / half;
            exp_four((const double *)&a, out + j);
        }
    } else {
        for (; j + 4u <= n; j += 4u) {
            hge_v4d l, a;
            memcpy(&l, lf + j, sizeof l);
            a = iv + sv * l;
            exp_four((const double *)&a, out + j);
        }
    }
    for (; j < n; j++) {
        const double a = icpt + slope * lf[j];
        out[j] = exp_one(lf2 ? a - ((c00 * lf2[j] + two_c01 * lf[j]) + c11) / 2.0 : a);
    }
    return HGE_OK;
}

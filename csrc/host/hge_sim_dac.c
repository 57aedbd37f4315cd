/*
 * hge_sim_dac.c - gate and quantisation of a simulated DAC record (hge_sim_dac.h).
 */
#include "hge_sim_dac.h"

#include <math.h>
#include <stddef.h>

#define HGE_SIM_TWO52 4503599627370496.0 /* 2^52 */

/* x rounded to the nearest integer, ties to even, sign kept (np.round for |x| < 2^52; larger
 * doubles are integers). */
static double round_even(double x)
{
    const double a = fabs(x);
    if (!(a < HGE_SIM_TWO52)) {
        return x;
    }
    return copysign((a + HGE_SIM_TWO52) - HGE_SIM_TWO52, x);
}

/* One row: returns nonzero when a sample is outside [lo, hi] (or NaN). */
static int dac_row_scalar(const double *x, double *y, uint64_t i0, uint64_t n, double lo, double hi, double lsb,
                          double clo, double chi)
{
    int bad = 0;
    for (uint64_t i = i0; i < n; i++) {
        const double xi = x[i];
        bad |= !(xi >= lo && xi <= hi);
        double c = round_even(xi / lsb);
        c = c > chi ? chi : c;
        c = c < clo ? clo : c;
        y[i] = c * lsb;
    }
    return bad;
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HGE_SIM_DAC_X86 1

/* dac_row_scalar four samples at a time: the same IEEE operations lane by lane (divide, add,
 * subtract, sign copy, compare-select, multiply; no reduction, no fused multiply-add), so the
 * same bits. The clamps: max(clo, min(chi, c)) with the scalar's operand order (minpd/maxpd
 * return the second operand when the first comparison is false, as `c > chi ? chi : c` does,
 * NaN and signed zeros included). */
__attribute__((target("avx2"))) static int dac_row_avx2(const double *x, double *y, uint64_t n, double lo,
                                                         double hi, double lsb, double clo, double chi)
{
    const __m256d vlo = _mm256_set1_pd(lo), vhi = _mm256_set1_pd(hi), vlsb = _mm256_set1_pd(lsb);
    const __m256d vclo = _mm256_set1_pd(clo), vchi = _mm256_set1_pd(chi);
    const __m256d two52 = _mm256_set1_pd(HGE_SIM_TWO52), sign = _mm256_set1_pd(-0.0);
    __m256d bad = _mm256_setzero_pd();
    uint64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const __m256d xi = _mm256_loadu_pd(x + i);
        const __m256d ok = _mm256_and_pd(_mm256_cmp_pd(xi, vlo, _CMP_GE_OQ), _mm256_cmp_pd(xi, vhi, _CMP_LE_OQ));
        bad = _mm256_or_pd(bad, _mm256_andnot_pd(ok, _mm256_castsi256_pd(_mm256_set1_epi64x(-1))));
        const __m256d q = _mm256_div_pd(xi, vlsb);
        const __m256d a = _mm256_andnot_pd(sign, q);                              /* fabs */
        const __m256d r = _mm256_or_pd(_mm256_sub_pd(_mm256_add_pd(a, two52), two52),
                                       _mm256_and_pd(sign, q));                   /* copysign */
        const __m256d small = _mm256_cmp_pd(a, two52, _CMP_LT_OQ);               /* false for NaN */
        __m256d c = _mm256_blendv_pd(q, r, small);
        c = _mm256_min_pd(vchi, c);                                               /* c > chi ? chi : c */
        c = _mm256_max_pd(vclo, c);                                               /* c < clo ? clo : c */
        _mm256_storeu_pd(y + i, _mm256_mul_pd(c, vlsb));
    }
    return (_mm256_movemask_pd(bad) != 0) | dac_row_scalar(x, y, i, n, lo, hi, lsb, clo, chi);
}
#endif

hge_status hge_sim_dac(const double *v, uint32_t n_dim, uint64_t n, uint64_t stride, const double *lim_lo,
                       const double *lim_hi, double lsb, const double *code_lo, const double *code_hi, double *out,
                       uint64_t out_stride)
{
    if (v == NULL || lim_lo == NULL || lim_hi == NULL || code_lo == NULL || code_hi == NULL || out == NULL) {
        return HGE_ERR_NULL;
    }
    if (n_dim == 0u || stride < n || out_stride < n) {
        return HGE_ERR_SIZE;
    }
    if (!(lsb > 0.0) || !(lsb <= 1e300)) {
        return HGE_ERR_COEF;
    }
    for (uint32_t j = 0; j < n_dim; j++) {
        if (!(code_lo[j] <= code_hi[j])) {
            return HGE_ERR_COEF;
        }
    }
#ifdef HGE_SIM_DAC_X86
    __builtin_cpu_init();
    const int avx2 = __builtin_cpu_supports("avx2") ? 1 : 0;
#endif
    for (uint32_t j = 0; j < n_dim; j++) {
        const double *x = v + (size_t)j * stride;
        double *y = out + (size_t)j * out_stride;
        const double lo = lim_lo[j], hi = lim_hi[j], clo = code_lo[j], chi = code_hi[j];
        int bad;
#ifdef HGE_SIM_DAC_X86
        if (avx2) {
            bad = dac_row_avx2(x, y, n, lo, hi, lsb, clo, chi);
        } else
#endif
        {
            bad = dac_row_scalar(x, y, 0, n, lo, hi, lsb, clo, chi);
        }
        if (bad) {
            return HGE_ERR_RANGE;
        }
    }
    return HGE_OK;
}

/*
 * hge_sim_taylor.c - third-order Taylor expansion of many windows (hge_sim_taylor.h).
 *
 * Samples go in blocks (8 or 16): the offsets d of a block sit in a small local
 * array and every coefficient is applied to the whole block at once, in vectors of
 * 2 or 4 samples (each sample's operations and their order stay the same, so the
 * numbers do not depend on the block, the vectors or the isa: tested bit for bit).
 * A window's last partial block is padded with d = 0 and only its own samples are
 * written.
 */
#include "hge_sim_taylor.h"

#include <stddef.h>
#include <string.h>

uint32_t hge_sim_taylor_coefs(uint32_t n_dim)
{
    if (n_dim == 0u || n_dim > HGE_SIM_MAX_DIM) {
        return 0u;
    }
    return 1u + n_dim + n_dim * (n_dim + 1u) / 2u + n_dim * (n_dim + 1u) * (n_dim + 2u) / 6u;
}

hge_status hge_sim_taylor_init(hge_sim_taylor_t *s, uint32_t n_dim)
{
    if (s == NULL) {
        return HGE_ERR_NULL;
    }
    if (n_dim == 0u || n_dim > HGE_SIM_MAX_DIM) {
        return HGE_ERR_SIZE;
    }
    s->n_dim = n_dim;
    s->n_coef = hge_sim_taylor_coefs(n_dim);
    s->isa = HGE_SIM_ISA_AUTO;
    return HGE_OK;
}

/* Plain C: one block of HGE_SIM_BLOCK offsets d[j][b] -> y[b] (the nested form of the
 * header), every loop over the block's samples of fixed length. */
#define HGE_SIM_BLOCK 8
static void taylor_block_plain(uint32_t n_dim, const double *coef, double d[][HGE_SIM_BLOCK],
                               double y[HGE_SIM_BLOCK])
{
    double acc[HGE_SIM_BLOCK], sj[HGE_SIM_BLOCK], rk[HGE_SIM_BLOCK];
    const double *c = coef + 1;
    int b;
    for (b = 0; b < HGE_SIM_BLOCK; b++) {
        acc[b] = coef[0];
    }
    for (uint32_t j = 0; j < n_dim; j++) {
        const double gj = *c++;
        for (b = 0; b < HGE_SIM_BLOCK; b++) {
            sj[b] = gj;
        }
        for (uint32_t k = j; k < n_dim; k++) {
            const double q = *c++;
            for (b = 0; b < HGE_SIM_BLOCK; b++) {
                rk[b] = q;
            }
            for (uint32_t l = k; l < n_dim; l++) {
                const double cl = *c++;
                for (b = 0; b < HGE_SIM_BLOCK; b++) {
                    rk[b] += cl * d[l][b];
                }
            }
            for (b = 0; b < HGE_SIM_BLOCK; b++) {
                sj[b] += d[k][b] * rk[b];
            }
        }
        for (b = 0; b < HGE_SIM_BLOCK; b++) {
            acc[b] += d[j][b] * sj[b];
        }
    }
    for (b = 0; b < HGE_SIM_BLOCK; b++) {
        y[b] = acc[b];
    }
}

/* The windows' loop: offsets of a block of BLK samples into d (padded with 0), the block, the
 * block's own samples written. */
#define HGE_SIM_WINDOWS_LOOP(BLK, ...)                                                               \
    do {                                                                                            \
        double d[HGE_SIM_MAX_DIM][BLK];                                                             \
        double y[BLK];                                                                              \
        for (uint32_t w = 0; w < n_win; w++) {                                                      \
            const uint64_t a = (uint64_t)bounds[2u * w], e = (uint64_t)bounds[2u * w + 1u];         \
            const double *cen = centres + (size_t)w * n_dim;                                        \
            const double *coef = coefs + (size_t)w * n_coef;                                        \
            for (uint64_t i = a; i < e; i += (BLK)) {                                               \
                const uint64_t left = e - i;                                                        \
                const int nb = left < (BLK) ? (int)left : (BLK);                                    \
                for (uint32_t j = 0; j < n_dim; j++) {                                              \
                    const double *row = v + (size_t)j * stride + i;                                 \
                    int b;                                                                          \
                    for (b = 0; b < nb; b++) {                                                      \
                        d[j][b] = row[b] - cen[j];                                                  \
                    }                                                                               \
                    for (; b < (BLK); b++) {                                                        \
                        d[j][b] = 0.0;                                                              \
                    }                                                                               \
                }                                                                                   \
                __VA_ARGS__;                                                                        \
                for (int b = 0; b < nb; b++) {                                                      \
                    out[i + (uint64_t)b] = y[b];                                                    \
                }                                                                                   \
            }                                                                                       \
        }                                                                                           \
    } while (0)

static void windows_plain(uint32_t n_dim, uint32_t n_coef, const double *v, uint64_t stride, const int64_t *bounds,
                          uint32_t n_win, const double *centres, const double *coefs, double *out)
{
    HGE_SIM_WINDOWS_LOOP(HGE_SIM_BLOCK, taylor_block_plain(n_dim, coef, d, y));
}

#if defined(__GNUC__)
/* GCC/clang vector extension: a block is NV independent vectors of VW samples, so the
 * accumulators live in registers and NV dependency chains run side by side (with plain
 * arrays each step of a sum goes through memory and waits on the store). Lane b of vector
 * q does exactly what taylor_block_plain does for sample VW q + b: the same operations in
 * the same order, no FMA (none is enabled, and -std=c99 does not contract): the same bits.
 * Measured on the 2-core VM, 7 electrodes: plain 50 ns/sample, SSE2 (VW 2, NV 4) 24,
 * AVX2 (VW 4, NV 4) 15. */
#define HGE_SIM_DEFINE_VEC(NAME, ATTR, VW, NV)                                                     \
    ATTR static void NAME(uint32_t n_dim, uint32_t n_coef, const double *v, uint64_t stride,        \
                          const int64_t *bounds, uint32_t n_win, const double *centres,             \
                          const double *coefs, double *out)                                         \
    {                                                                                               \
        typedef double vec __attribute__((vector_size(sizeof(double) * (VW))));                    \
        HGE_SIM_WINDOWS_LOOP((VW) * (NV), {                                                         \
            vec dv[HGE_SIM_MAX_DIM][NV], acc[NV], sj[NV], rk[NV], one;                              \
            const double *c = coef + 1;                                                             \
            for (uint32_t j = 0; j < n_dim; j++) {                                                  \
                memcpy(dv[j], d[j], sizeof dv[j]);                                                  \
            }                                                                                       \
            for (int b = 0; b < (VW); b++) {                                                        \
                one[b] = coef[0];                                                                   \
            }                                                                                       \
            _Pragma("GCC unroll 8") for (int q = 0; q < (NV); q++) { acc[q] = one; }                \
            for (uint32_t j = 0; j < n_dim; j++) {                                                  \
                for (int b = 0; b < (VW); b++) {                                                    \
                    one[b] = c[0];                                                                  \
                }                                                                                   \
                c++;                                                                                \
                _Pragma("GCC unroll 8") for (int q = 0; q < (NV); q++) { sj[q] = one; }             \
                for (uint32_t k = j; k < n_dim; k++) {                                              \
                    for (int b = 0; b < (VW); b++) {                                                \
                        one[b] = c[0];                                                              \
                    }                                                                               \
                    c++;                                                                            \
                    _Pragma("GCC unroll 8") for (int q = 0; q < (NV); q++) { rk[q] = one; }         \
                    for (uint32_t l = k; l < n_dim; l++) {                                          \
                        const double cl = *c++;                                                     \
                        _Pragma("GCC unroll 8") for (int q = 0; q < (NV); q++) {                    \
                            rk[q] += cl * dv[l][q];                                                 \
                        }                                                                           \
                    }                                                                               \
                    _Pragma("GCC unroll 8") for (int q = 0; q < (NV); q++) { sj[q] += dv[k][q] * rk[q]; } \
                }                                                                                   \
                _Pragma("GCC unroll 8") for (int q = 0; q < (NV); q++) { acc[q] += dv[j][q] * sj[q]; } \
            }                                                                                       \
            memcpy(y, acc, sizeof acc);                                                             \
        });                                                                                         \
    }

HGE_SIM_DEFINE_VEC(windows_sse2, , 2, 4)
#if defined(__x86_64__) || defined(__i386__)
#define HGE_SIM_HAVE_AVX2 1
HGE_SIM_DEFINE_VEC(windows_avx2, __attribute__((target("avx2"))), 4, 4)
#endif
#endif

int hge_sim_taylor_isa_available(uint32_t isa)
{
    if (isa == HGE_SIM_ISA_AUTO || isa == HGE_SIM_ISA_PLAIN) {
        return 1;
    }
#if defined(__GNUC__)
    if (isa == HGE_SIM_ISA_SSE2) {
        return 1; /* the vector extension: the baseline of any target (2 doubles per vector) */
    }
#endif
#if defined(HGE_SIM_HAVE_AVX2)
    if (isa == HGE_SIM_ISA_AVX2) {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") ? 1 : 0;
    }
#endif
    return 0;
}

hge_status hge_sim_taylor_process(const hge_sim_taylor_t *s, const double *v, uint64_t n, uint64_t stride,
                                  const int64_t *bounds, uint32_t n_win, const double *centres,
                                  const double *coefs, double *out)
{
    if (s == NULL) {
        return HGE_ERR_NULL;
    }
    if (s->n_dim == 0u || s->n_dim > HGE_SIM_MAX_DIM || s->n_coef != hge_sim_taylor_coefs(s->n_dim) ||
        stride < n) {
        return HGE_ERR_SIZE;
    }
    if (!hge_sim_taylor_isa_available(s->isa)) {
        return HGE_ERR_RANGE;
    }
    if (n_win == 0u) {
        return HGE_OK;
    }
    if (v == NULL || bounds == NULL || centres == NULL || coefs == NULL || out == NULL) {
        return HGE_ERR_NULL;
    }
    /* Every window first: nothing is written unless all are inside [0, n]. */
    for (uint32_t w = 0; w < n_win; w++) {
        const int64_t a = bounds[2u * w], e = bounds[2u * w + 1u];
        if (a < 0 || e < a || (uint64_t)e > n) {
            return HGE_ERR_RANGE;
        }
    }
    const uint32_t n_dim = s->n_dim, n_coef = s->n_coef;
    uint32_t isa = s->isa;
    if (isa == HGE_SIM_ISA_AUTO) {
        isa = hge_sim_taylor_isa_available(HGE_SIM_ISA_AVX2)   ? HGE_SIM_ISA_AVX2
              : hge_sim_taylor_isa_available(HGE_SIM_ISA_SSE2) ? HGE_SIM_ISA_SSE2
                                                               : HGE_SIM_ISA_PLAIN;
    }
#if defined(HGE_SIM_HAVE_AVX2)
    if (isa == HGE_SIM_ISA_AVX2) {
        windows_avx2(n_dim, n_coef, v, stride, bounds, n_win, centres, coefs, out);
        return HGE_OK;
    }
#endif
#if defined(__GNUC__)
    if (isa == HGE_SIM_ISA_SSE2) {
        windows_sse2(n_dim, n_coef, v, stride, bounds, n_win, centres, coefs, out);
        return HGE_OK;
    }
#endif
    windows_plain(n_dim, n_coef, v, stride, bounds, n_win, centres, coefs, out);
    return HGE_OK;
}

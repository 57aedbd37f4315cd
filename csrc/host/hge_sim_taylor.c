/*
 * hge_sim_taylor.c - third-order Taylor expansion of many windows (hge_sim_taylor.h).
 *
 * Samples go in blocks of HGE_SIM_BLOCK: the offsets d of a block sit in a small
 * local array and every coefficient is applied to the whole block in one loop of
 * fixed length, which the compiler may vectorise across samples (each sample's
 * operations and their order stay the same, so the numbers do not depend on it).
 * A window's last partial block is padded with d = 0 and only its own samples are
 * written.
 */
#include "hge_sim_taylor.h"

#include <stddef.h>
#include <string.h>

#define HGE_SIM_BLOCK 8

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
    return HGE_OK;
}

#if defined(__GNUC__) && !defined(HGE_SIM_PLAIN)
/* GCC/clang vector extension: a block is HGE_SIM_NV independent vectors of 2
 * samples (one SSE2 register each: the x86-64 baseline), so the accumulators live
 * in registers and NV dependency chains run side by side (measured on the 2-core
 * VM: 1 vector 75 ns/sample, 4 vectors 24; plain arrays, whose every step went
 * through memory, 45). Lane b of vector q does exactly what the plain loop below
 * does for sample 2 q + b: the same operations in the same order. */
#define HGE_SIM_VW 2
#define HGE_SIM_NV (HGE_SIM_BLOCK / HGE_SIM_VW)
typedef double hge_sim_vec __attribute__((vector_size(sizeof(double) * HGE_SIM_VW)));

/* x in every lane (exactly: also -0.0). */
static inline hge_sim_vec splat(double x)
{
    hge_sim_vec r;
    for (int b = 0; b < HGE_SIM_VW; b++) {
        r[b] = x;
    }
    return r;
}

static void taylor_block(uint32_t n_dim, const double *coef, double d[][HGE_SIM_BLOCK],
                         double y[HGE_SIM_BLOCK])
{
    hge_sim_vec dv[HGE_SIM_MAX_DIM][HGE_SIM_NV];
    hge_sim_vec acc[HGE_SIM_NV], sj[HGE_SIM_NV], rk[HGE_SIM_NV];
    const double *c = coef + 1;
    for (uint32_t j = 0; j < n_dim; j++) {
        memcpy(dv[j], d[j], sizeof dv[j]);
    }
#pragma GCC unroll 8
    for (int q = 0; q < HGE_SIM_NV; q++) {
        acc[q] = splat(coef[0]);
    }
    for (uint32_t j = 0; j < n_dim; j++) {
        const double gj = *c++;
#pragma GCC unroll 8
        for (int q = 0; q < HGE_SIM_NV; q++) {
            sj[q] = splat(gj);
        }
        for (uint32_t k = j; k < n_dim; k++) {
            const double qjk = *c++;
#pragma GCC unroll 8
            for (int q = 0; q < HGE_SIM_NV; q++) {
                rk[q] = splat(qjk);
            }
            for (uint32_t l = k; l < n_dim; l++) {
                const double cl = *c++;
#pragma GCC unroll 8
                for (int q = 0; q < HGE_SIM_NV; q++) {
                    rk[q] += cl * dv[l][q];
                }
            }
#pragma GCC unroll 8
            for (int q = 0; q < HGE_SIM_NV; q++) {
                sj[q] += dv[k][q] * rk[q];
            }
        }
#pragma GCC unroll 8
        for (int q = 0; q < HGE_SIM_NV; q++) {
            acc[q] += dv[j][q] * sj[q];
        }
    }
    memcpy(y, acc, sizeof acc);
}
#else
/* One block of HGE_SIM_BLOCK offsets d[j][b] -> y[b] (the nested form of the header). */
static void taylor_block(uint32_t n_dim, const double *coef, double d[][HGE_SIM_BLOCK],
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
#endif

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
    const uint32_t n_dim = s->n_dim;
    double d[HGE_SIM_MAX_DIM][HGE_SIM_BLOCK];
    double y[HGE_SIM_BLOCK];
    for (uint32_t w = 0; w < n_win; w++) {
        const uint64_t a = (uint64_t)bounds[2u * w], e = (uint64_t)bounds[2u * w + 1u];
        const double *cen = centres + (size_t)w * n_dim;
        const double *coef = coefs + (size_t)w * s->n_coef;
        for (uint64_t i = a; i < e; i += HGE_SIM_BLOCK) {
            const uint64_t left = e - i;
            const int nb = left < HGE_SIM_BLOCK ? (int)left : HGE_SIM_BLOCK;
            for (uint32_t j = 0; j < n_dim; j++) {
                const double *row = v + (size_t)j * stride + i;
                int b;
                for (b = 0; b < nb; b++) {
                    d[j][b] = row[b] - cen[j];
                }
                for (; b < HGE_SIM_BLOCK; b++) {
                    d[j][b] = 0.0;
                }
            }
            taylor_block(n_dim, coef, d, y);
            for (int b = 0; b < nb; b++) {
                out[i + (uint64_t)b] = y[b];
            }
        }
    }
    return HGE_OK;
}

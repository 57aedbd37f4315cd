/*
 * hge_sim_tensors.c - the surrogate's derivatives at one centre (hge_sim_tensors.h).
 */
#include "hge_sim_tensors.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

/* An AVX2 clone next to the baseline one, picked at load time by the CPU (GCC's target_clones, an
 * ifunc): the four partial sums of dot() and the site-wise loops become 4-lane vector operations,
 * each lane doing the same operations in the same order as the scalar code (no FMA is enabled,
 * nothing is reassociated): the same bits on either clone (tests/test_centre_tensors.py). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define HGE_SIM_TENSORS_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define HGE_SIM_TENSORS_CLONES
#endif

/* work layout (doubles): W1T, G1W, B (n_e, n_s) each; g1, g2, g3, w, wg1, wg2, wg3, gv, Pjl, Zjl (n_s each);
 * JT, cJ2T, cJ3T (n_e, n_p) each; p, cf1, cf2, cf3, Y (n_p each). */
uint64_t hge_sim_tensors_work(uint32_t n_s, uint32_t n_p, uint32_t n_e)
{
    return 3u * (uint64_t)n_e * n_s + 10u * (uint64_t)n_s + 3u * (uint64_t)n_e * n_p + 5u * (uint64_t)n_p;
}

typedef double hge_v4d __attribute__((vector_size(32)));   /* GCC/clang vector extension */

/* unaligned load of 4 doubles (a macro: a function returning a vector has an ABI that differs by target) */
#define LOAD4(dst, p) memcpy(&(dst), (p), sizeof(hge_v4d))

/* sum_i a_i b_i with four partial sums (lane i mod 4, one vector), added as (s0 + s1) + (s2 + s3),
 * then the tail: independent chains the CPU overlaps, the same bits for any vector width. */
static inline double dot(const double *a, const double *b, size_t n)
{
    hge_v4d acc = {0.0, 0.0, 0.0, 0.0};
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        hge_v4d x, y;
        LOAD4(x, a + i);
        LOAD4(y, b + i);
        acc += x * y;
    }
    double s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (; i < n; i++) {
        s += a[i] * b[i];
    }
    return s;
}

/* y_i += k x_i */
static inline void axpy(double *y, double k, const double *x, size_t n)
{
    const hge_v4d kv = {k, k, k, k};
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        hge_v4d t, u;
        LOAD4(t, y + i);
        LOAD4(u, x + i);
        t += kv * u;
        memcpy(y + i, &t, sizeof t);
    }
    for (; i < n; i++) {
        y[i] += k * x[i];
    }
}

HGE_SIM_TENSORS_CLONES
hge_status hge_sim_tensors(const double *W1, const double *b1, const double *W2, const double *b2,
                           const double *c, double scale, uint32_t n_s, uint32_t n_p, uint32_t n_e,
                           const double *centre, double *work, uint64_t n_work, double *I, double *g,
                           double *H, double *T)
{
    if (W1 == NULL || b1 == NULL || W2 == NULL || b2 == NULL || c == NULL || centre == NULL || work == NULL ||
        I == NULL || g == NULL || H == NULL || T == NULL) {
        return HGE_ERR_NULL;
    }
    if (n_s == 0u || n_p == 0u || n_e == 0u || n_e > HGE_SIM_TENSORS_MAX_DIM ||
        n_work < hge_sim_tensors_work(n_s, n_p, n_e)) {
        return HGE_ERR_SIZE;
    }
    for (uint32_t j = 0; j < n_e; j++) {
        if (!isfinite(centre[j])) {
            return HGE_ERR_RANGE;
        }
    }
    const size_t S = n_s, P = n_p, E = n_e;
    double *W1T = work, *G1W = W1T + E * S, *B = G1W + E * S;
    double *g1 = B + E * S, *g2 = g1 + S, *g3 = g2 + S, *w = g3 + S, *wg1 = w + S, *wg2 = wg1 + S;
    double *wg3 = wg2 + S, *gv = wg3 + S, *Pjl = gv + S, *Zjl = Pjl + S;
    double *JT = Zjl + S, *cJ2T = JT + E * P, *cJ3T = cJ2T + E * P;
    double *p = cJ3T + E * P, *cf1 = p + P, *cf2 = cf1 + P, *cf3 = cf2 + P, *Y = cf3 + P;

    /* Sites: u = W1 V + b1, e = exp(-u^2), g', g'', g''', g = 2 e - 1; W1 transposed (rows of sites). */
    for (size_t s = 0; s < S; s++) {
        const double *row = W1 + s * E;
        double u = 0.0;
        for (size_t j = 0; j < E; j++) {
            u += row[j] * centre[j];
            W1T[j * S + s] = row[j];
        }
        u += b1[s];
        const double e = exp(-(u * u));
        g1[s] = -4.0 * u * e;
        g2[s] = (8.0 * u * u - 4.0) * e;
        g3[s] = (24.0 * u - 16.0 * (u * u * u)) * e;
        gv[s] = 2.0 * e - 1.0;
    }
    /* Paths: p = tanh(W2 g + b2), the f-derivative weights cf_k = c f^(k). */
    double acc_i = 0.0;
    for (size_t q = 0; q < P; q++) {
        const double pq = tanh(dot(W2 + q * S, gv, S) + b2[q]);
        const double qq = 1.0 - pq * pq;
        p[q] = pq;
        cf1[q] = c[q] * qq;
        cf2[q] = c[q] * (-2.0 * pq * qq);
        cf3[q] = c[q] * (qq * (6.0 * pq * pq - 2.0));
        acc_i += c[q] * pq;
    }
    *I = scale * acc_i;
    /* w = W2^T cf1, path by path (each site's sum in path order). */
    for (size_t s = 0; s < S; s++) {
        w[s] = 0.0;
    }
    for (size_t q = 0; q < P; q++) {
        axpy(w, cf1[q], W2 + q * S, S);
    }
    for (size_t s = 0; s < S; s++) {
        wg1[s] = w[s] * g1[s];
        wg2[s] = w[s] * g2[s];
        wg3[s] = w[s] * g3[s];
    }
    for (size_t j = 0; j < E; j++) {
        g[j] = scale * dot(W1T + j * S, wg1, S);
        for (size_t s = 0; s < S; s++) {
            G1W[j * S + s] = g1[s] * W1T[j * S + s];
        }
    }
    /* z_j,P = W2_P . (g' W1_j), and the paths' weighted copies. */
    for (size_t j = 0; j < E; j++) {
        for (size_t q = 0; q < P; q++) {
            const double z = dot(W2 + q * S, G1W + j * S, S);
            JT[j * P + q] = z;
            cJ2T[j * P + q] = cf2[q] * z;
            cJ3T[j * P + q] = cf3[q] * z;
        }
    }
    /* B_aS = (sum_P cf2_P z_a,P W2_PS) g''_S */
    for (size_t a = 0; a < E; a++) {
        double *Ba = B + a * S;
        for (size_t s = 0; s < S; s++) {
            Ba[s] = 0.0;
        }
        for (size_t q = 0; q < P; q++) {
            axpy(Ba, cJ2T[a * P + q], W2 + q * S, S);
        }
        for (size_t s = 0; s < S; s++) {
            Ba[s] *= g2[s];
        }
    }
    /* Per pair j <= l: H_jl, then T_jlm for m >= l (every ordering written). */
    for (size_t j = 0; j < E; j++) {
        const double *xj = W1T + j * S, *Bj = B + j * S;
        for (size_t l = j; l < E; l++) {
            const double *xl = W1T + l * S, *Bl = B + l * S;
            for (size_t s = 0; s < S; s++) {
                const double pjl = xj[s] * xl[s];
                Pjl[s] = pjl;
                /* times W1_Sm and summed: the w g''' term of T_jlm, M_jlm and M_ljm */
                Zjl[s] = (wg3[s] * pjl + Bj[s] * xl[s]) + Bl[s] * xj[s];
            }
            for (size_t q = 0; q < P; q++) {
                Y[q] = cJ3T[j * P + q] * JT[l * P + q];
            }
            const double h = scale * dot(wg2, Pjl, S) + scale * dot(cJ2T + j * P, JT + l * P, P);
            H[j * E + l] = h;
            H[l * E + j] = h;
            for (size_t m = l; m < E; m++) {
                /* + M_mjl = B_m . (W1_j W1_l), + the paths' sum_P cf3 z_j z_l z_m */
                const double t = scale * ((dot(Zjl, W1T + m * S, S) + dot(B + m * S, Pjl, S)) +
                                          dot(Y, JT + m * P, P));
                T[(j * E + l) * E + m] = t;
                T[(j * E + m) * E + l] = t;
                T[(l * E + j) * E + m] = t;
                T[(l * E + m) * E + j] = t;
                T[(m * E + j) * E + l] = t;
                T[(m * E + l) * E + j] = t;
            }
        }
    }
    return HGE_OK;
}

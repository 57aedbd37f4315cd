/*
 * sim_tensors_check.c - hge_sim_tensors under AddressSanitizer/UndefinedBehaviorSanitizer
 * (tests/test_centre_tensors.py builds and runs it): every buffer malloc'd to its exact size,
 * sizes whose sums have tails (not multiples of 4) and the largest dimension, exact symmetry of
 * H and T, and the refusals writing nothing.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hge_sim_tensors.h"

static double *filled(size_t n, unsigned *seed)
{
    double *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) {
        *seed = *seed * 1103515245u + 12345u;
        p[i] = ((double)((*seed >> 8) & 0xffff) / 65535.0 - 0.5) * 2.0;
    }
    return p;
}

static int run(uint32_t S, uint32_t P, uint32_t E, unsigned seed)
{
    double *W1 = filled((size_t)S * E, &seed), *b1 = filled(S, &seed), *W2 = filled((size_t)P * S, &seed);
    double *b2 = filled(P, &seed), *c = filled(P, &seed), *cen = filled(E, &seed);
    uint64_t nw = hge_sim_tensors_work(S, P, E);
    double *work = malloc(nw * sizeof *work), *I = malloc(sizeof *I), *g = malloc(E * sizeof *g);
    double *H = malloc((size_t)E * E * sizeof *H), *T = malloc((size_t)E * E * E * sizeof *T);
    int bad = 0;
    if (hge_sim_tensors(W1, b1, W2, b2, c, 30.0, S, P, E, cen, work, nw, I, g, H, T) != HGE_OK) {
        bad = 1;
    }
    for (uint32_t j = 0; j < E && !bad; j++) {
        for (uint32_t l = 0; l < E; l++) {
            bad |= H[j * E + l] != H[l * E + j] || !isfinite(H[j * E + l]);
            for (uint32_t m = 0; m < E; m++) {
                const double t = T[((size_t)j * E + l) * E + m];
                bad |= !isfinite(t) || t != T[((size_t)l * E + j) * E + m] || t != T[((size_t)m * E + l) * E + j];
            }
        }
    }
    /* refusals: nothing written */
    double keep = 123.0;
    *I = keep;
    bad |= hge_sim_tensors(W1, b1, W2, b2, c, 30.0, S, P, E, cen, work, nw - 1, I, g, H, T) != HGE_ERR_SIZE;
    cen[0] = NAN;
    bad |= hge_sim_tensors(W1, b1, W2, b2, c, 30.0, S, P, E, cen, work, nw, I, g, H, T) != HGE_ERR_RANGE;
    bad |= hge_sim_tensors(NULL, b1, W2, b2, c, 30.0, S, P, E, cen, work, nw, I, g, H, T) != HGE_ERR_NULL;
    bad |= *I != keep;
    free(W1); free(b1); free(W2); free(b2); free(c); free(cen); free(work); free(I); free(g); free(H); free(T);
    if (bad) {
        printf("FAIL S=%u P=%u E=%u\n", S, P, E);
    }
    return bad;
}

int main(void)
{
    int bad = 0;
    bad |= run(96, 32, 7, 1u);
    bad |= run(5, 3, 7, 2u);
    bad |= run(21, 7, 1, 3u);
    bad |= run(1, 1, 16, 4u);
    bad |= run(33, 9, 16, 5u);
    if (hge_sim_tensors_work(96, 32, 7) == 0) {
        bad = 1;
    }
    if (!bad) {
        printf("PASS sim tensors: 5 shapes\n");
    }
    return bad;
}

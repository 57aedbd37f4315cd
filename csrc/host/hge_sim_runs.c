/*
 * hge_sim_runs.c - window classification of the simulator (hge_sim_runs.h).
 *
 * One pass over the chunks builds the runs of steps 1-2 (a stretch's greedy split
 * needs only the running union), a second pass over the runs grows them (step 3:
 * run k's right bound is run k+1's start, not yet grown when run k is).
 */
#include "hge_sim_runs.h"

#include <stddef.h>

/* The box of samples [a, b) of every electrode. */
static void box_of(const double *v, uint32_t n_dim, uint64_t stride, uint64_t a, uint64_t b, double *lo,
                   double *hi)
{
    for (uint32_t j = 0; j < n_dim; j++) {
        const double *row = v + (size_t)j * stride;
        double l = row[a], h = row[a];
        for (uint64_t i = a + 1u; i < b; i++) {
            const double x = row[i];
            l = x < l ? x : l;
            h = x > h ? x : h;
        }
        lo[j] = l;
        hi[j] = h;
    }
}

/* Every electrode's (hi - lo) <= lim. */
static int narrow(const double *lo, const double *hi, uint32_t n_dim, double lim)
{
    for (uint32_t j = 0; j < n_dim; j++) {
        if (!(hi[j] - lo[j] <= lim)) {
            return 0;
        }
    }
    return 1;
}

/* Moves an edge by up to `chunk` samples toward `bound` (dir -1: samples edge-1, edge-2, ...
 * down to bound; +1: edge, edge+1, ... below bound) while the box, widened by each sample
 * taken, stays narrow; widens lo/hi by the samples taken and returns the new edge. */
static uint64_t grow(const double *v, uint32_t n_dim, uint64_t stride, uint64_t edge, int dir, uint64_t bound,
                     uint32_t chunk, double lim, double *lo, double *hi)
{
    double l[HGE_SIM_RUNS_MAX_DIM], h[HGE_SIM_RUNS_MAX_DIM];
    for (uint32_t step = 0; step < chunk; step++) {
        uint64_t i;
        if (dir < 0) {
            if (edge <= bound) {
                break;
            }
            i = edge - 1u;
        } else {
            if (edge >= bound) {
                break;
            }
            i = edge;
        }
        for (uint32_t j = 0; j < n_dim; j++) {
            const double x = v[(size_t)j * stride + i];
            l[j] = x < lo[j] ? x : lo[j];
            h[j] = x > hi[j] ? x : hi[j];
        }
        if (!narrow(l, h, n_dim, lim)) {
            break;
        }
        for (uint32_t j = 0; j < n_dim; j++) {
            lo[j] = l[j];
            hi[j] = h[j];
        }
        edge = dir < 0 ? edge - 1u : edge + 1u;
    }
    return edge;
}

hge_status hge_sim_runs(const double *v, uint32_t n_dim, uint64_t n, uint64_t stride, uint32_t chunk,
                        double lim, int64_t *bounds, double *lo, double *hi, uint64_t cap, uint64_t *n_runs)
{
    if (n_runs == NULL) {
        return HGE_ERR_NULL;
    }
    *n_runs = 0u;
    if (n_dim == 0u || n_dim > HGE_SIM_RUNS_MAX_DIM || stride < n || chunk == 0u) {
        return HGE_ERR_SIZE;
    }
    if (!(lim >= 0.0)) {
        return HGE_ERR_RANGE;
    }
    const uint64_t n_chunks = n / chunk + (n % chunk ? 1u : 0u);
    if (cap < n_chunks) {
        return HGE_ERR_SIZE;
    }
    if (n == 0u) {
        return HGE_OK;
    }
    if (v == NULL || bounds == NULL || lo == NULL || hi == NULL) {
        return HGE_ERR_NULL;
    }
    double cl[HGE_SIM_RUNS_MAX_DIM], ch[HGE_SIM_RUNS_MAX_DIM], ul[HGE_SIM_RUNS_MAX_DIM], uh[HGE_SIM_RUNS_MAX_DIM];
    uint64_t runs = 0u;
    int open = 0; /* a run is open: the previous chunk was small and is its last */
    for (uint64_t c = 0; c < n_chunks; c++) {
        const uint64_t a = c * chunk, b = a + chunk < n ? a + chunk : n;
        box_of(v, n_dim, stride, a, b, cl, ch);
        if (!narrow(cl, ch, n_dim, lim)) {
            open = 0;
            continue;
        }
        if (open) {
            double *rl = lo + (size_t)(runs - 1u) * n_dim, *rh = hi + (size_t)(runs - 1u) * n_dim;
            for (uint32_t j = 0; j < n_dim; j++) {
                ul[j] = cl[j] < rl[j] ? cl[j] : rl[j];
                uh[j] = ch[j] > rh[j] ? ch[j] : rh[j];
            }
            if (narrow(ul, uh, n_dim, lim)) { /* the run takes this chunk */
                for (uint32_t j = 0; j < n_dim; j++) {
                    rl[j] = ul[j];
                    rh[j] = uh[j];
                }
                bounds[2u * (runs - 1u) + 1u] = (int64_t)b;
                continue;
            }
        }
        /* A new run starts with this chunk. */
        for (uint32_t j = 0; j < n_dim; j++) {
            lo[(size_t)runs * n_dim + j] = cl[j];
            hi[(size_t)runs * n_dim + j] = ch[j];
        }
        bounds[2u * runs] = (int64_t)a;
        bounds[2u * runs + 1u] = (int64_t)b;
        runs++;
        open = 1;
    }
    uint64_t grown_end = 0u;
    for (uint64_t k = 0; k < runs; k++) {
        double *rl = lo + (size_t)k * n_dim, *rh = hi + (size_t)k * n_dim;
        const uint64_t next = k + 1u < runs ? (uint64_t)bounds[2u * (k + 1u)] : n;
        const uint64_t s = grow(v, n_dim, stride, (uint64_t)bounds[2u * k], -1, grown_end, chunk, lim, rl, rh);
        const uint64_t e = grow(v, n_dim, stride, (uint64_t)bounds[2u * k + 1u], +1, next, chunk, lim, rl, rh);
        bounds[2u * k] = (int64_t)s;
        bounds[2u * k + 1u] = (int64_t)e;
        grown_end = e;
    }
    *n_runs = runs;
    return HGE_OK;
}

hge_status hge_sim_lines(const double *v, uint32_t n_dim, uint64_t n, uint64_t stride, const int64_t *segs,
                         uint64_t n_segs, double tol, uint8_t *is_line)
{
    if (n_dim == 0u || stride < n) {
        return HGE_ERR_SIZE;
    }
    if (n_segs == 0u) {
        return HGE_OK;
    }
    if (v == NULL || segs == NULL || is_line == NULL) {
        return HGE_ERR_NULL;
    }
    for (uint64_t k = 0; k < n_segs; k++) {
        if (segs[2u * k] < 0 || segs[2u * k + 1u] < segs[2u * k] || (uint64_t)segs[2u * k + 1u] > n) {
            return HGE_ERR_RANGE;
        }
    }
    for (uint64_t k = 0; k < n_segs; k++) {
        const uint64_t s = (uint64_t)segs[2u * k], e = (uint64_t)segs[2u * k + 1u];
        int line = e - s >= 3u;
        for (uint32_t j = 0; line && j < n_dim; j++) {
            const double *x = v + (size_t)j * stride;
            for (uint64_t i = s; i + 2u < e; i++) {
                const double d2 = (x[i + 2u] - x[i + 1u]) - (x[i + 1u] - x[i]);
                if (!(d2 <= tol && d2 >= -tol)) {
                    line = 0;
                    break;
                }
            }
        }
        is_line[k] = (uint8_t)line;
    }
    return HGE_OK;
}

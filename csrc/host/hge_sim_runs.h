/*
 * hge_sim_runs.h - the simulator's window classification in C (host only:
 * devices/simulated.py, FastEvaluator._runs).
 *
 * Finds the runs of samples that one Taylor expansion may cover: runs whose box
 * (per electrode: max - min over the run) is at most lim wide on every electrode.
 * The same runs and boxes as FastEvaluator._runs (numpy, the reference; tested):
 *
 *  1. the record is cut into chunks of `chunk` samples (the last one shorter); a
 *     chunk is small when its own box is at most lim wide (hi - lo <= lim, the
 *     rounded difference, on every electrode);
 *  2. every maximal stretch of consecutive small chunks is split greedily: a run
 *     takes chunks while the union of their boxes stays at most lim wide (its
 *     first chunk always);
 *  3. each run then grows into the neighbouring samples, one at a time, while its
 *     box stays at most lim wide: in order of the runs, the left edge first (down
 *     to the previous run's grown end, at most `chunk` samples), then the right
 *     edge (up to the next run's start, at most `chunk` samples) within the box
 *     the left side has widened.
 *
 * min and max are exact, so the boxes are the same floats as numpy's.
 *
 * Formats (IEEE double):
 *   v       (n_dim, stride) row-major: electrode j, sample i at v[j stride + i].
 *   bounds  out, 2 int64 per run: [start, end).
 *   lo, hi  out, (cap, n_dim) row-major: each run's box.
 *   cap     room for runs: at least ceil(n / chunk) (no more runs than chunks).
 *   n_runs  out: the runs found.
 *
 * Status: HGE_ERR_NULL, HGE_ERR_SIZE (n_dim 0 or > HGE_SIM_RUNS_MAX_DIM, stride
 * < n, chunk 0, cap < ceil(n / chunk)), HGE_ERR_RANGE (lim negative or NaN).
 */
#ifndef HGE_SIM_RUNS_H
#define HGE_SIM_RUNS_H

#include <stdint.h>

#include "hge_types.h"

#define HGE_SIM_RUNS_MAX_DIM 8u

hge_status hge_sim_runs(const double *v, uint32_t n_dim, uint64_t n, uint64_t stride, uint32_t chunk,
                        double lim, int64_t *bounds, double *lo, double *hi, uint64_t cap, uint64_t *n_runs);

/*
 * The straight-line test of FastEvaluator._line_segments: segment k = [segs[2k],
 * segs[2k+1]) is a line (is_line[k] = 1) when it has at least 3 samples and every
 * second difference (x[i+2] - x[i+1]) - (x[i+1] - x[i]) (numpy's diff(x, 2), the
 * same rounded subtractions) is at most tol in magnitude on every electrode; else 0.
 * Status: HGE_ERR_NULL, HGE_ERR_SIZE (n_dim 0, stride < n), HGE_ERR_RANGE (a
 * segment outside [0, n] or ending before it starts; checked before writing).
 */
hge_status hge_sim_lines(const double *v, uint32_t n_dim, uint64_t n, uint64_t stride, const int64_t *segs,
                         uint64_t n_segs, double tol, uint8_t *is_line);

#endif /* HGE_SIM_RUNS_H */

/*
 * hge_sim_ramp.h - the simulator's ramps in C (host only: devices/simulated.py).
 *
 * Between HGE windows a record moves along straight lines (ramps). The simulator
 * evaluates the device there by cubic Hermite interpolation between exact knots
 * on the line, plus a first-order correction for each sample's (DAC-step) offset
 * from the line. Per ramp [s, e) with first sample f = v[:, s] and direction
 * D = v[:, e-1] - f, dd = max(sum_j D_j^2, 1e-300), and per sample x = v[:, i]:
 *
 *   t   = (sum_j D_j (x_j - f_j)) / dd                  position along the line
 *   k   = the knot interval: k0 + clip(#{knots <= t} - 1, 0, n_knots - 2)
 *   h   = knot[k+1] - knot[k],  u = (t - knot[k]) / h
 *   m0  = (sum_j D_j G_j[k]) h,  m1 = (sum_j D_j G_j[k+1]) h
 *   y   = (2u^3 - 3u^2 + 1) I[k] + (u^3 - 2u^2 + u) m0 + (-2u^3 + 3u^2) I[k+1] + (u^3 - u^2) m1
 *   out = y + sum_j ((1 - u) G_j[k] + u G_j[k+1]) (x_j - (f_j + t D_j))
 *
 * every sum over j in increasing order starting from the j = 0 term, u^3 as
 * (u u) u, each polynomial left to right as written, no FMA contraction: the
 * operations, in the same order, of FastEvaluator._fill_ramp_block's numpy
 * expressions (numpy reduces a (7, n) array over axis 0 row after row), so the
 * two give the same bits (tested).
 *
 * Formats (IEEE double):
 *   v       (n_dim, stride) row-major, electrode j, sample i at v[j stride + i].
 *   ramps   4 int64 per ramp: start, end (0 <= start < end <= n), k0 (its first
 *           knot's index in knots/I/G), n_knots (>= 2, k0 + n_knots <= n_pts).
 *   knots   (n_pts,): each ramp's knot positions t (0 = f, 1 = the last sample),
 *           increasing.
 *   I       (n_pts,) the exact currents at the knots.
 *   G       (n_dim, g_stride) row-major: the exact gradients at the knots.
 *   out     (n,): out[i] for i in each ramp; other samples are not written.
 *
 * Status: HGE_ERR_NULL, HGE_ERR_SIZE (n_dim 0 or > HGE_SIM_RAMP_MAX_DIM, stride
 * < n, g_stride < n_pts), HGE_ERR_RANGE (a ramp outside its bounds). Every ramp is
 * checked before anything is written.
 */
#ifndef HGE_SIM_RAMP_H
#define HGE_SIM_RAMP_H

#include <stdint.h>

#include "hge_types.h"

#define HGE_SIM_RAMP_MAX_DIM 8u

hge_status hge_sim_ramp_process(const double *v, uint32_t n_dim, uint64_t n, uint64_t stride,
                                const int64_t *ramps, uint32_t n_ramps, const double *knots,
                                const double *I, const double *G, uint64_t g_stride, uint64_t n_pts,
                                double *out);

#endif /* HGE_SIM_RAMP_H */

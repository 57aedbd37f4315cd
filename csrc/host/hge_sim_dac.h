/*
 * hge_sim_dac.h - the simulated DAC in C (host only: devices/simulated.py): the
 * voltage gate and the quantisation of a record in one pass.
 *
 * Per electrode j and sample i (x = v[j stride + i]):
 *   gate:  lim_lo[j] <= x <= lim_hi[j], else HGE_ERR_RANGE (NaN fails too; the
 *          caller then finds the first offender for its message);
 *   code:  c = x / lsb rounded to the nearest integer, ties to even (numpy's round),
 *          then clamped to [code_lo[j], code_hi[j]]: the codes whose voltage
 *          c lsb lies inside the limits (the caller derives them), so a sample at a
 *          limit is never applied half a step beyond it;
 *   out:   c lsb.
 * The same operations as the numpy path (v / lsb, np.round, np.clip, * lsb), so the
 * same bits (tested). Rounding: for |q| < 2^52, (|q| + 2^52) - 2^52 is |q| rounded
 * to nearest-even in IEEE double (the default rounding mode), the sign restored by
 * copysign (-0.3 -> -0.0, as numpy); larger |q| are integers already.
 *
 * Formats: v (n_dim, stride) and out (n_dim, out_stride) row-major doubles.
 * Status: HGE_ERR_NULL, HGE_ERR_SIZE (n_dim 0, stride or out_stride < n),
 * HGE_ERR_RANGE (a sample outside its limits; out is then partly written: discard
 * it), HGE_ERR_COEF (lsb not finite and > 0, or code_lo > code_hi).
 */
#ifndef HGE_SIM_DAC_H
#define HGE_SIM_DAC_H

#include <stdint.h>

#include "hge_types.h"

hge_status hge_sim_dac(const double *v, uint32_t n_dim, uint64_t n, uint64_t stride, const double *lim_lo,
                       const double *lim_hi, double lsb, const double *code_lo, const double *code_hi, double *out,
                       uint64_t out_stride);

#endif /* HGE_SIM_DAC_H */

/*
 * hge_sim_sos.h - the simulator's noise-shaping filter in C (host only: devices/noise.py,
 * NoiseSource.take): a cascade of second-order sections, direct form II transposed, state
 * carried in and out.
 *
 * Per section s (coefficients sos[6 s + 0..5] = b0 b1 b2 a0 a1 a2, a0 taken as 1 and not
 * read; state z0 = zi[2 s], z1 = zi[2 s + 1]) and sample n, x the section's input:
 *   y       = b0 x + z0
 *   z0      = (b1 x - a1 y) + z1
 *   z1      = b2 x - a2 y
 * and y is the next section's input. scipy.signal.sosfilt's kernel (_sosfilt) does these
 * operations in this order, sample by sample through the sections; here each section runs
 * over the whole record before the next one, two at a time (coefficients and state in registers).
 * Every value is the same operation on the same operands either way (a section's outputs
 * depend only on its inputs and its state), so the output and the final state are the same
 * bits (tested against scipy). No FMA: the build is ISO C99 (contraction off).
 *
 * Formats: sos (n_sections, 6) and zi (n_sections, 2) row-major doubles; x and y n doubles
 * (y may be x: in place). zi is updated to the state after the last sample.
 * Status: HGE_ERR_NULL (a pointer NULL with n > 0 and n_sections > 0); n == 0 or
 * n_sections == 0 copies x to y (the empty cascade) and leaves zi.
 */
#ifndef HGE_SIM_SOS_H
#define HGE_SIM_SOS_H

#include <stdint.h>

#include "hge_types.h"

hge_status hge_sim_sos(const double *sos, uint32_t n_sections, double *zi, const double *x, uint64_t n, double *y);

#endif /* HGE_SIM_SOS_H */

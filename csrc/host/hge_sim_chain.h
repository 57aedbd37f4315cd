/*
 * hge_sim_chain.h - the simulated measurement chain in C (host only:
 * devices/simulated.py, SimulatedDNPU._chain): IV converter and anti-alias filter,
 * fractional delay, IV range clip and ADC quantisation in one pass.
 *
 * Per sample n (x the device current plus noise, nA):
 *   filter (if filter):  y1[n] = z + b0 x[n],  z = alpha y1[n]   (z before sample 0: z0),
 *                        scipy.signal.lfilter([b0], [1, -alpha], x, zi=[z0])'s direct
 *                        form II transposed, whose state update b1 x - a1 y with b1 = 0
 *                        is exactly alpha y (0 x - (-alpha y));
 *   delay (if frac != 0): y2[n] = (1 - frac) y1[n] + frac y1[n - 1]  (y1[-1] = y1[0]),
 *                        c1 = 1 - frac passed in as computed by the caller;
 *   clip:                y3 = min(max(y2, -range), range)  (NaN passes, as np.clip);
 *   ADC (if lsb > 0):    out = round(y3 / lsb) lsb, ties to even (np.round).
 * The operations of the numpy path in its order: the same bits (tested).
 *
 * Status: HGE_ERR_NULL, HGE_ERR_RANGE (range NaN or negative, lsb negative or NaN).
 */
#ifndef HGE_SIM_CHAIN_H
#define HGE_SIM_CHAIN_H

#include <stdint.h>

#include "hge_types.h"

hge_status hge_sim_chain(const double *x, uint64_t n, int filter, double b0, double alpha, double z0, int delay,
                         double c1, double frac, double range, double lsb, double *out);

#endif /* HGE_SIM_CHAIN_H */

/*
 * hge_synth.h - perturbation synthesis: the DAC code of one electrode at one
 * sample, from its bias (or a ramp between biases) plus its perturbation
 *
 *   code = clamp(base + pert, lo, hi)
 *   pert = floor((amp * sin_q22(phase) + 2^21) / 2^22)        (round half-up)
 *   base = bias                    (settle, window, hold)
 *        = from + floor((j * step + 2^15) / 2^16), j = 1..n_ramp (ramps)
 *   step = sign(to - from) * floor(|to - from| * 2^16 / (n_ramp + 1))   (Q16)
 *
 * phase is the electrode's phase accumulator (uint32, 2^32 per turn), the same
 * one the demodulator is reset from (hge_trainer.c): phase(n) = n * step_m mod
 * 2^32, so perturbation and reference are coherent forever.
 * Formats: codes Q0 int32 with |code| < 2^24; amp in [0, 511] codes, so
 * |amp * sin| < 2^31; the ramp accumulator j * step is int64 (< 2^42).
 * The ramp ends one step short of `to` (the host trainer's linear ramp, j /
 * (n_ramp + 1)); the next sample is the bias itself.
 */
#ifndef HGE_SYNTH_H
#define HGE_SYNTH_H

#include "hge_nco.h"

#define HGE_SYNTH_MAX_AMP 511
#define HGE_SYNTH_MAX_CODE 8388607L /* |codes| < 2^23: ramp steps stay < 2^40 */

/* Perturbation of amplitude amp (codes) at phase, rounded half-up. */
static inline int32_t hge_synth_perturb(int32_t amp, uint32_t phase)
{
    return (amp * hge_sin_q22(phase) + (1 << 21)) >> 22;
}

/* Q16 ramp increment from `from` to `to` over n_ramp samples. */
int64_t hge_synth_ramp_step(int32_t from, int32_t to, uint32_t n_ramp);

/* Ramp base code from the Q16 accumulator j * step. */
static inline int32_t hge_synth_ramp_code(int32_t from, int64_t acc)
{
    return from + (int32_t)((acc + 32768) >> 16);
}

static inline int32_t hge_synth_clamp(int32_t v, int32_t lo, int32_t hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

#endif /* HGE_SYNTH_H */

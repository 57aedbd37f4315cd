/*
 * hge_host_psdlaw.h - the HGE read's noise power laws at the lock-in's noise bins (host only:
 * analysis.WindowPsdPlan.at_bins, the stderr of every extract_gradient window).
 *
 *   out[j] = exp(icpt + slope lf[j] - (c00 lf2[j] + (2 c01) lf[j] + c11) / 2)   (lf2 given)
 *   out[j] = exp(icpt + slope lf[j])                                              (lf2 NULL)
 *
 * The argument is computed with numpy's operations in numpy's order (no FMA, nothing
 * reassociated): the same argument bits as at_bins_exact. Only exp() differs: hge_psdlaw_exp.
 *
 * hge_psdlaw_exp(x), for |x| <= 708 (else, and for NaN, libm's exp(x)):
 *   k = nearest integer to x log2(e) (the 1.5 2^52 shifter), r = (x - k ln2_hi) - k ln2_lo
 *   (Cody-Waite: ln2_hi has 32 significant bits, so k ln2_hi and x - k ln2_hi are exact for
 *   |k| <= 1022), exp(r) by the Taylor polynomial of degree 13 in Horner form, times 2^k built
 *   in the exponent bits (exact: |x| <= 708 keeps k in [-1021, 1021], the result normal).
 *   Relative error against the exact exp (u = 2^-53; |r| <= ln2/2 + 2e-13, the excess from the
 *   rounding of x log2(e) near |x| = 708, which moves e^(2|r|) below by far less than 1e-4):
 *     truncation            |r|^14 / 14!                       <= 4.3e-18
 *     coefficients          rounded 1/k!: u (e^|r| - 1 - |r|) / e^-|r|   <= 2.2e-17
 *     reduction             absolute error of r <= u |r| + |k| 2^-86  -> relative <= 4.0e-17
 *     Horner (13 steps of a product and a sum; Higham 5.3): gamma_26 sum |c_i| |r|^i / exp(r)
 *                           <= gamma_26 e^(2|r|) <= 26 u / (1 - 26 u) * 2.0001  <= 5.78e-15
 *     final product by 2^k  exact (normal result)
 *   total                   HGE_PSDLAW_EXP_REL = 5.9e-15 (tests: against libm's exp, whose own
 *                           error is under 1 ulp, within HGE_PSDLAW_EXP_REL + 2.3e-16).
 *   Lanes are computed four at a time (AVX2 clone where the CPU has it, GCC's target_clones);
 *   every lane does the same operations as the scalar tail: the same bits on either clone.
 *
 * Formats: lf, lf2, out: n doubles each (out may not overlap lf or lf2).
 * Status: HGE_ERR_NULL (lf or out NULL with n > 0).
 */
#ifndef HGE_HOST_PSDLAW_H
#define HGE_HOST_PSDLAW_H

#include <stdint.h>

#include "hge_types.h"

#define HGE_PSDLAW_EXP_REL 5.9e-15

hge_status hge_psdlaw(const double *lf, const double *lf2, uint64_t n, double icpt, double slope, double c00,
                      double c01, double c11, double *out);

/* The exp of hge_psdlaw on n values (the tests' entry point; the same function, the same bits). */
hge_status hge_psdlaw_exp(const double *x, uint64_t n, double *out);

#endif /* HGE_HOST_PSDLAW_H */

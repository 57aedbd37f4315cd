/*
 * hge_host_stderr.h - the HGE read's standard errors from a fitted noise density, in one pass
 * (host only: analysis.WindowPsdPlan.stderr, gradient.HGEWindow.read_windows).
 *
 * The noise density at the plan's bins (WindowPsdPlan.at_bins, the same operations in the same
 * order, so the same S where exp is the same C library function):
 *   S_j = exp(icpt_n + slope_n L_j)                                          (every bin j),
 *   S_j = exp((icpt + slope l_j) - (((c00 l2_j) + (2 c01) l_j) + c11) / 2)   (j < n_below, when
 *         low is given: the bins below the plan's band, l = their logs, l2 = l^2),
 * then each row r of the weights (rows, n_bins) row-major:
 *   out_r = scale_r sqrt(max(sum_j W_rj S_j, 0))
 * with the sum in four interleaved partial sums (lane j mod 4), where numpy calls BLAS: the two
 * differ by round-off only (tests/test_grad_fast_paths.py derives and checks the bound).
 * A NaN sum stays NaN (as np.maximum).
 *
 * Memory (caller-owned): S_work of n_bins doubles (S on return), out of rows doubles.
 * low: NULL, or {slope, icpt, c00, c01, c11}.
 * Status: HGE_ERR_NULL, HGE_ERR_SIZE (rows or n_bins zero, n_below > n_bins).
 */
#ifndef HGE_HOST_STDERR_H
#define HGE_HOST_STDERR_H

#include <stdint.h>

#include "hge_types.h"

hge_status hge_host_psd_stderr(const double *W, uint32_t rows, uint32_t n_bins, const double *log_bins,
                               double icpt_n, double slope_n, uint32_t n_below, const double *lf_below,
                               const double *lf2_below, const double *low, const double *scale,
                               double *S_work, double *out);

#endif /* HGE_HOST_STDERR_H */

/*
 * hge_sim_tensors.h - the surrogate model's exact derivatives at ONE centre, in C (host only:
 * devices/surrogate.py, SurrogateModel.centre_tensors; the simulator's single-window measure).
 *
 * The model (devices/surrogate.py): u = W1 V + b1 (S sites), g(u) = 2 exp(-u^2) - 1,
 * z = W2 g + b2 (P paths), I = s c . tanh(z). With g' = -4 u e, g'' = (8 u^2 - 4) e,
 * g''' = (24 u - 16 u^3) e (e = exp(-u^2)), f = tanh, f' = 1 - p^2 = q, f'' = -2 p q,
 * f''' = q (6 p^2 - 2), and z_j = W2 (g' W1_j):
 *   I      = s sum_P c_P p_P
 *   g_j    = s sum_S W1_Sj w_S g'_S,             w_S = sum_P W2_PS c_P f'_P
 *   H_jl   = s sum_S w_S g''_S W1_Sj W1_Sl + s sum_P c_P f''_P z_j,P z_l,P
 *   T_jlm  = s [ sum_S w_S g'''_S W1_Sj W1_Sl W1_Sm
 *               + M_jlm + M_ljm + M_mjl            (M_abc = sum_S B_aS g''_S W1_Sb W1_Sc,
 *                                                   B_aS = sum_P c_P f''_P z_a,P W2_PS)
 *               + sum_P c_P f'''_P z_j,P z_l,P z_m,P ]
 * SurrogateModel.taylor_tensors' formula (the reference, numpy and BLAS) term for term; the
 * sums run in index order here and in BLAS's order there, so the two differ by round-off only
 * (tests/test_centre_tensors.py derives and checks the bound). H and T are computed for
 * j <= l (<= m) and copied to the other orderings: exactly symmetric.
 * exp and tanh: the C library's.
 *
 * Memory (caller-owned): W1 (n_s, n_e), W2 (n_p, n_s) row-major; b1 (n_s), b2, c (n_p);
 * work of hge_sim_tensors_work(n_s, n_p, n_e) doubles; out: I (1), g (n_e), H (n_e^2),
 * T (n_e^3), row-major. Nothing is written before every check passes.
 * Status: HGE_ERR_NULL, HGE_ERR_SIZE (n_s, n_p zero, n_e outside 1..HGE_SIM_TENSORS_MAX_DIM,
 * work too small), HGE_ERR_RANGE (a non-finite centre).
 */
#ifndef HGE_SIM_TENSORS_H
#define HGE_SIM_TENSORS_H

#include <stdint.h>

#include "hge_types.h"

#define HGE_SIM_TENSORS_MAX_DIM 16

uint64_t hge_sim_tensors_work(uint32_t n_s, uint32_t n_p, uint32_t n_e);

hge_status hge_sim_tensors(const double *W1, const double *b1, const double *W2, const double *b2,
                           const double *c, double scale, uint32_t n_s, uint32_t n_p, uint32_t n_e,
                           const double *centre, double *work, uint64_t n_work, double *I, double *g,
                           double *H, double *T);

#endif /* HGE_SIM_TENSORS_H */

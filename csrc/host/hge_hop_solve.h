/*
 * hge_hop_solve.h - the hopping network's Kirchhoff solve and exact gradient in C (host only:
 * devices/dnpu_physics.py, HoppingNetwork with kernel="c").
 *
 * The network (equations and references: devices/dnpu_physics.py, docs/design.md section 6):
 * n sites (nodes 0..n-1) and 8 terminals (nodes n..n+7: 7 electrodes at V_0..V_6, the output
 * n+7 at 0 V). A branch b joins every pair of sites (b0 = i < b1 = j) and every site to every
 * terminal (b0 = i, b1 = n + t), with g_b = g_ss[i n + j] or g_st[8 i + t]. Per point
 * (electrode voltages V, 7 values):
 *
 *   e_i   = E_i - sum_k c_ik V_k (sites; 0 at a terminal),  |x|_d = sqrt(x^2 + d2), d2 = (delta V_T)^2
 *   P_b   = exp(-(|e_b0|_d + |e_b1|_d + |e_b0 - e_b1|_d - 3 delta V_T) / (2 V_T))
 *   f_b   = floor + (1 - floor) P_b,   K_b = g_b f_b                 (g_b = G0 G_b, nA/V)
 *   x_b   = (u_b1 - u_b0) / V0  (u: site potentials phi, electrode voltages, 0 at the output)
 *   F_i   = -V0 sum_b K_b sinh(x_b) D_ib = 0 at every site  (D_ib = +1 at b1, -1 at b0)
 *   I     = -V0 sum_{b1 = output} K_b sinh(x_b)
 *
 * Newton on F with the Jacobian J = -A, A = sum_b K_b cosh(x_b) d_b d_b^T over the sites (a
 * weighted graph Laplacian grounded through the terminals: symmetric positive definite, solved
 * by Cholesky). Start: phi0 when given, else the linear network's solution (sinh x ~ x: one
 * solve of sum_b K_b d_b d_b^T). Each step is damped so that no site moves more than V0; the
 * iteration stops after the first step whose largest component (before damping) is below tol
 * (that step is applied): the same criterion, damping and start as HoppingNetwork.solve's
 * numpy reference, per point instead of per batch.
 *
 * Gradient (adjoint): lambda = J^-1 dI/dphi, dI/dV_k = sum_b u_b (t0_b c_b0k + t1_b c_b1k)
 * + sum_b K_b cosh(x_b) w_b [b1 = electrode k], w_b = lambda_b1 - lambda_b0 (sites only),
 * u_b = -V0 K_b sinh(x_b) ([b1 = output] - w_b), t = d ln K_b / d(c . V) at each end.
 *
 * Formats (IEEE double, no FMA contraction requested; the results equal the numpy reference
 * to round-off and the Newton tolerance, not bit for bit: tests/test_hop_kernel.py derives
 * and tests the bound):
 *   V     (7, v_stride) row-major: electrode k of point p at V[k v_stride + p], volts.
 *   phi0  (n_pts, n) row-major start potentials, or NULL (the linear network's solution).
 *   I     (n_pts,) nA.
 *   G     (7, g_stride) row-major dI/dV_k of point p at G[k g_stride + p], nA/V; NULL: currents only.
 *   phi   (n_pts, n) row-major converged site potentials, V; may be NULL.
 *   dphi  (n_pts, n, 7) row-major d phi_i / d V_k at the solution, = A^-1 dF/dV (the
 *         Jacobian's factorisation reused), or NULL; needs G (HGE_ERR_NULL without it).
 *   work  hge_hop_work_doubles(n) doubles owned by the caller (one per thread).
 *
 * Status: HGE_ERR_NULL (a required pointer), HGE_ERR_SIZE (n_pts > v_stride or > g_stride,
 * work too short), HGE_ERR_RANGE (a point whose voltages or start are not finite, a
 * Jacobian that is not positive definite, or Newton not converged in max_iter steps:
 * *n_done is that point's index; points before it are written, it and later ones are not).
 * On HGE_OK *n_done = n_pts. hge_hop_init: HGE_ERR_NULL, HGE_ERR_SIZE (n_sites outside
 * 2..HGE_HOP_MAX_SITES), HGE_ERR_COEF (a parameter not finite or outside its range: g >= 0,
 * V0, V_T, delta, tol > 0, 0 <= floor < 1, max_iter >= 1).
 */
#ifndef HGE_HOP_SOLVE_H
#define HGE_HOP_SOLVE_H

#include <stdint.h>

#include "hge_types.h"

#define HGE_HOP_N_ELECTRODES 7u
#define HGE_HOP_N_TERMINALS 8u
#define HGE_HOP_MAX_SITES 64u

typedef struct {
    uint32_t n_sites;
    const double *g_ss;  /* (n, n) row-major G0 G_ij between sites, nA/V (read for i < j only) */
    const double *g_st;  /* (n, 8) row-major G0 G_it between site i and terminal t, nA/V */
    const double *c;     /* (n, 7) row-major: the electrodes' capacitive shares of each site */
    const double *E;     /* (n) site levels, V */
    double V0;
    double V_T;
    double floor;
    double delta;
    double tol;          /* V: Newton stops after a step below this */
    uint32_t max_iter;
} hge_hop_t;

uint64_t hge_hop_work_doubles(uint32_t n_sites);

/* The arrays are the caller's and must outlive the instance (it keeps the pointers). */
hge_status hge_hop_init(hge_hop_t *s, uint32_t n_sites, const double *g_ss, const double *g_st, const double *c,
                        const double *E, double V0, double V_T, double floor, double delta, double tol,
                        uint32_t max_iter);

hge_status hge_hop_process(const hge_hop_t *s, const double *V, uint64_t n_pts, uint64_t v_stride,
                           const double *phi0, double *I, double *G, uint64_t g_stride, double *phi,
                           double *dphi, double *work, uint64_t work_len, uint64_t *n_done);

/*
 * The simulator's window derivatives at n_cen centres C ((7, c_stride) row-major, centre q in
 * column q): I (n_cen,), G (7, g_stride) exact (hge_hop_process); H (n_cen, 7, 7) and T (n_cen,
 * 7, 7, 7) row-major by differences of exact gradients with step h at the 35 displaced points
 * +h e_j, -h e_j, +h (e_a + e_b) (a < b in order), each solved by Newton from the centre's
 * first-order prediction phi + (dphi/dV) D:
 *   Hr_ij = (g_i(+h e_j) - g_i(-h e_j)) / (2 h),  H = (Hr + Hr^T) / 2 (0.5 (Hr_ij + Hr_ji)),
 *   T_ijj = (g_i(+h e_j) - 2 g0_i + g_i(-h e_j)) / (h h),
 *   T_iab = T_iba = (g_i(+h (e_a + e_b)) - g_i(+h e_a) - g_i(+h e_b) + g0_i) / (h h),
 * left to right as written: FastEvaluator._difference_tensors' numpy operations in the same
 * order (the same bits for the same gradients; tested). Status as hge_hop_process (per centre:
 * *n_done is the centre that failed), HGE_ERR_RANGE also for h not finite or not > 0.
 */
#define HGE_HOP_DISPLACED 35u
hge_status hge_hop_tensors(const hge_hop_t *s, const double *C, uint64_t n_cen, uint64_t c_stride, double h,
                           double *I, double *G, uint64_t g_stride, double *H, double *T, double *work,
                           uint64_t work_len, uint64_t *n_done);

/* The instance holds no state between calls; _reset exists for the project's lifecycle and does nothing. */
hge_status hge_hop_reset(hge_hop_t *s);

#endif /* HGE_HOP_SOLVE_H */

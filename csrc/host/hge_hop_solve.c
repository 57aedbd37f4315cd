/*
 * hge_hop_solve.c - the hopping network's Newton solve and adjoint gradient (hge_hop_solve.h).
 */
#include "hge_hop_solve.h"

#include <math.h>
#include <stddef.h>

#define NE HGE_HOP_N_ELECTRODES
#define NT HGE_HOP_N_TERMINALS

uint64_t hge_hop_work_doubles(uint32_t n_sites, uint32_t n_branches)
{
    /* per branch: K, t0, t1, xt, S, C; per node (n + 8): e, a, u, eu, ei; A, M (n x n);
     * F, step, lam, and a site's terminal-branch factors f, r, t (n); R (7 n). */
    const uint64_t n = n_sites, B = n_branches;
    return 6u * B + 5u * (n + NT) + 2u * n * n + 6u * n + (uint64_t)NE * n;
}

hge_status hge_hop_init(hge_hop_t *s, uint32_t n_sites, uint32_t n_branches, const int32_t *b0,
                        const int32_t *b1, const double *g, const double *c, const double *E, double V0,
                        double V_T, double floor, double delta, double tol, uint32_t max_iter)
{
    if (s == NULL || b0 == NULL || b1 == NULL || g == NULL || c == NULL || E == NULL) {
        return HGE_ERR_NULL;
    }
    if (n_sites < 2u || n_sites > HGE_HOP_MAX_SITES || n_branches == 0u || n_branches > HGE_HOP_MAX_BRANCHES) {
        return HGE_ERR_SIZE;
    }
    /* !(x > 0) also refuses NaN. */
    if (!(V0 > 0.0) || !isfinite(V0) || !(V_T > 0.0) || !isfinite(V_T) || !(delta > 0.0) || !isfinite(delta) ||
        !(tol > 0.0) || !isfinite(tol) || !(floor >= 0.0) || !(floor < 1.0) || max_iter == 0u) {
        return HGE_ERR_COEF;
    }
    for (uint32_t b = 0; b < n_branches; b++) {
        if (b0[b] < 0 || (uint32_t)b0[b] >= n_sites || b1[b] <= b0[b] || (uint32_t)b1[b] >= n_sites + NT) {
            return HGE_ERR_RANGE;
        }
        if (!(g[b] >= 0.0) || !isfinite(g[b])) {
            return HGE_ERR_COEF;
        }
    }
    for (uint32_t i = 0; i < n_sites; i++) {
        if (!isfinite(E[i])) {
            return HGE_ERR_COEF;
        }
        for (uint32_t k = 0; k < NE; k++) {
            if (!isfinite(c[(size_t)i * NE + k])) {
                return HGE_ERR_COEF;
            }
        }
    }
    s->n_sites = n_sites;
    s->n_branches = n_branches;
    s->b0 = b0;
    s->b1 = b1;
    s->g = g;
    s->c = c;
    s->E = E;
    s->V0 = V0;
    s->V_T = V_T;
    s->floor = floor;
    s->delta = delta;
    s->tol = tol;
    s->max_iter = max_iter;
    return HGE_OK;
}

hge_status hge_hop_reset(hge_hop_t *s)
{
    return s == NULL ? HGE_ERR_NULL : HGE_OK;
}

/* In-place Cholesky A = L L^T (lower triangle of A, n x n row-major); 0 unless a pivot is not > 0. */
static int cholesky(double *A, uint32_t n)
{
    for (uint32_t j = 0; j < n; j++) {
        double d = A[(size_t)j * n + j];
        for (uint32_t k = 0; k < j; k++) {
            d -= A[(size_t)j * n + k] * A[(size_t)j * n + k];
        }
        if (!(d > 0.0) || !isfinite(d)) {
            return -1;
        }
        d = sqrt(d);
        A[(size_t)j * n + j] = d;
        for (uint32_t i = j + 1u; i < n; i++) {
            double x = A[(size_t)i * n + j];
            for (uint32_t k = 0; k < j; k++) {
                x -= A[(size_t)i * n + k] * A[(size_t)j * n + k];
            }
            A[(size_t)i * n + j] = x / d;
        }
    }
    return 0;
}

/* x = (L L^T)^-1 b in place (x holds b on entry). */
static void chol_solve(const double *L, uint32_t n, double *x)
{
    for (uint32_t i = 0; i < n; i++) {
        double v = x[i];
        for (uint32_t k = 0; k < i; k++) {
            v -= L[(size_t)i * n + k] * x[k];
        }
        x[i] = v / L[(size_t)i * n + i];
    }
    for (uint32_t i = n; i-- > 0u;) {
        double v = x[i];
        for (uint32_t k = i + 1u; k < n; k++) {
            v -= L[(size_t)k * n + i] * x[k];
        }
        x[i] = v / L[(size_t)i * n + i];
    }
}

typedef struct {
    double *K, *t0, *t1, *xt, *S, *C; /* per branch */
    double *e, *a, *u, *eu, *ei;      /* per node: level, |level|_d, potential, exp(+-u / V0) */
    double *A, *F, *step, *lam;       /* per site */
    double *tf, *tr, *tt;             /* per site: f, r and t of its branches to the terminals */
    double *M, *R;                    /* dphi/dV: (n x n) and (7 x n) */
} work_t;

/* The point's conductances K, their log-derivatives t0, t1 and the terminal part of x (xt).
 * A branch to a terminal (e = 0 there) has |e0 - e1|_d = |e0|_d bit for bit (the same operations
 * on the same values), so its factors depend on its site alone: made once per site. */
static void state(const hge_hop_t *s, const double *Vp, const work_t *w)
{
    const uint32_t n = s->n_sites;
    const double dvt = s->delta * s->V_T, d2 = dvt * dvt, k = 0.5 / s->V_T;
    const double at = sqrt(0.0 * 0.0 + d2); /* a terminal's |e|_d */
    for (uint32_t i = 0; i < n; i++) {
        double cv = 0.0;
        for (uint32_t j = 0; j < NE; j++) {
            cv += s->c[(size_t)i * NE + j] * Vp[j];
        }
        const double e0 = s->E[i] - cv;
        const double a0 = sqrt(e0 * e0 + d2);
        w->e[i] = e0;
        w->a[i] = a0;
        const double de = e0 - 0.0, a01 = sqrt(de * de + d2);
        const double P = exp(-k * (a0 + at + a01 - 3.0 * dvt));
        const double f = s->floor + (1.0 - s->floor) * P;
        w->tf[i] = f;
        w->tr[i] = (1.0 - s->floor) * P / f;
        w->tt[i] = k * w->tr[i] * (e0 / a0 + de / a01);
    }
    for (uint32_t t = 0; t < NT; t++) {
        w->e[n + t] = 0.0;
        w->a[n + t] = at;
    }
    for (uint32_t b = 0; b < s->n_branches; b++) {
        const uint32_t i0 = (uint32_t)s->b0[b], i1 = (uint32_t)s->b1[b];
        if (i1 >= n) {
            w->K[b] = s->g[b] * w->tf[i0];
            w->t0[b] = w->tt[i0];
            w->t1[b] = 0.0;
            w->xt[b] = i1 < n + NE ? Vp[i1 - n] : 0.0;
            continue;
        }
        const double e0 = w->e[i0], e1 = w->e[i1], a0 = w->a[i0], a1 = w->a[i1];
        const double de = e0 - e1, a01 = sqrt(de * de + d2);
        const double P = exp(-k * (a0 + a1 + a01 - 3.0 * dvt));
        const double f = s->floor + (1.0 - s->floor) * P;
        const double r = (1.0 - s->floor) * P / f;
        w->K[b] = s->g[b] * f;
        /* d ln K / d(c . V) at each end: d e / d(c . V) = -1 at a site. */
        w->t0[b] = k * r * (e0 / a0 + de / a01);
        w->t1[b] = k * r * (e1 / a1 - de / a01);
        w->xt[b] = 0.0;
    }
}

/* sinh and cosh of every branch's x at the node potentials u (a site's phi, an electrode's
 * voltage, 0 at the output), the residual F and A = -J = sum K C d d^T. exp(x_b) is
 * exp(u_b1 / V0) exp(-u_b0 / V0): one exp per node instead of one per branch (within a few
 * ulps of exp(x_b); at equal potentials both factors are the same, so x = 0 gives sinh = 0
 * exactly and the network stays passive). */
static void residual(const hge_hop_t *s, const work_t *w, int jac)
{
    const uint32_t n = s->n_sites;
    const double V0 = s->V0;
    for (uint32_t i = 0; i < n + NT; i++) {
        w->eu[i] = exp(w->u[i] / V0);
        w->ei[i] = 1.0 / w->eu[i];
    }
    for (uint32_t i = 0; i < n; i++) {
        w->F[i] = 0.0;
    }
    if (jac) {
        for (uint32_t i = 0; i < n * n; i++) {
            w->A[i] = 0.0;
        }
    }
    for (uint32_t b = 0; b < s->n_branches; b++) {
        const uint32_t i0 = (uint32_t)s->b0[b], i1 = (uint32_t)s->b1[b];
        const double ex = w->eu[i1] * w->ei[i0], ei = w->ei[i1] * w->eu[i0];
        const double S = 0.5 * (ex - ei), C = 0.5 * (ex + ei);
        w->S[b] = S;
        w->C[b] = C;
        const double cur = V0 * w->K[b] * S;
        w->F[i0] += cur;
        if (i1 < n) {
            w->F[i1] -= cur;
        }
        if (jac) {
            const double kc = w->K[b] * C;
            w->A[(size_t)i0 * n + i0] += kc;
            if (i1 < n) {
                w->A[(size_t)i1 * n + i1] += kc;
                w->A[(size_t)i1 * n + i0] -= kc; /* the lower triangle is what Cholesky reads */
                w->A[(size_t)i0 * n + i1] -= kc;
            }
        }
    }
}

/* One point: Newton, then the current and (G_out != NULL) the gradient. 0, or -1 when it fails. */
static int solve_point(const hge_hop_t *s, const double *Vp, const double *phi0, const work_t *w,
                       double *I_out, double *G_out, uint64_t g_stride, double *phi_out, double *dphi_out)
{
    const uint32_t n = s->n_sites;
    const double V0 = s->V0;
    state(s, Vp, w);
    for (uint32_t k = 0; k < NE; k++) {
        w->u[n + k] = Vp[k];
    }
    w->u[n + NE] = 0.0;
    if (phi0 != NULL) {
        for (uint32_t i = 0; i < n; i++) {
            w->u[i] = phi0[i];
        }
    } else {
        /* The linear network (sinh x ~ x): A_lin phi = F_lin, A_lin = sum K d d^T, F_lin = sum K xt at b0. */
        for (uint32_t i = 0; i < n * n; i++) {
            w->A[i] = 0.0;
        }
        for (uint32_t i = 0; i < n; i++) {
            w->step[i] = 0.0;
        }
        for (uint32_t b = 0; b < s->n_branches; b++) {
            const uint32_t i0 = (uint32_t)s->b0[b], i1 = (uint32_t)s->b1[b];
            const double K = w->K[b];
            w->A[(size_t)i0 * n + i0] += K;
            if (i1 < n) {
                w->A[(size_t)i1 * n + i1] += K;
                w->A[(size_t)i1 * n + i0] -= K;
                w->A[(size_t)i0 * n + i1] -= K;
            }
            w->step[i0] += K * w->xt[b];
        }
        if (cholesky(w->A, n)) {
            return -1;
        }
        chol_solve(w->A, n, w->step);
        for (uint32_t i = 0; i < n; i++) {
            w->u[i] = w->step[i];
        }
    }
    uint32_t it = 0;
    for (; it < s->max_iter; it++) {
        residual(s, w, 1);
        if (cholesky(w->A, n)) {
            return -1;
        }
        /* J step = -F with J = -A: A step = F. */
        for (uint32_t i = 0; i < n; i++) {
            w->step[i] = w->F[i];
        }
        chol_solve(w->A, n, w->step);
        double big = 0.0;
        for (uint32_t i = 0; i < n; i++) {
            const double m = fabs(w->step[i]);
            big = m > big ? m : big;
        }
        if (!isfinite(big)) {
            return -1;
        }
        /* Damping: no site moves more than V0 per step (sinh grows fast beyond it). */
        const double scale = big > V0 ? V0 / big : 1.0;
        for (uint32_t i = 0; i < n; i++) {
            w->u[i] += w->step[i] * scale;
        }
        if (big < s->tol) {
            break;
        }
    }
    if (it == s->max_iter) {
        return -1;
    }
    /* The current (and the Jacobian for the adjoint) at the final potentials. */
    residual(s, w, G_out != NULL);
    double I = 0.0;
    for (uint32_t b = 0; b < s->n_branches; b++) {
        if ((uint32_t)s->b1[b] == n + NE) {
            I += w->K[b] * w->S[b];
        }
    }
    *I_out = -V0 * I;
    if (phi_out != NULL) {
        for (uint32_t i = 0; i < n; i++) {
            phi_out[i] = w->u[i];
        }
    }
    if (G_out == NULL) {
        return 0;
    }
    if (cholesky(w->A, n)) {
        return -1;
    }
    /* lambda = J^-1 dI/dphi = -A^-1 dI/dphi; dI/dphi_i = sum over output branches at i of K C. */
    for (uint32_t i = 0; i < n; i++) {
        w->lam[i] = 0.0;
    }
    for (uint32_t b = 0; b < s->n_branches; b++) {
        if ((uint32_t)s->b1[b] == n + NE) {
            w->lam[s->b0[b]] += w->K[b] * w->C[b];
        }
    }
    chol_solve(w->A, n, w->lam);
    /* Through K: sum_b u_b (t0_b c_b0k + t1_b c_b1k) = sum_i c_ik z_i with the node weights
     * z_i = sum_{b0 = i} u_b t0_b + sum_{b1 = i} u_b t1_b (n x 7 products instead of B x 14). */
    double g[NE];
    for (uint32_t k = 0; k < NE; k++) {
        g[k] = 0.0;
    }
    double *z = w->step; /* the Newton step is no longer needed */
    for (uint32_t i = 0; i < n; i++) {
        z[i] = 0.0;
    }
    for (uint32_t b = 0; b < s->n_branches; b++) {
        const uint32_t i0 = (uint32_t)s->b0[b], i1 = (uint32_t)s->b1[b];
        /* w_b = lam . d_b with lam = -A^-1 dI/dphi (the sign folded in here). */
        const double wb = -((i1 < n ? w->lam[i1] : 0.0) - w->lam[i0]);
        const double out = i1 == n + NE ? 1.0 : 0.0;
        const double ub = -V0 * w->K[b] * w->S[b] * (out - wb);
        z[i0] += ub * w->t0[b];
        if (i1 < n) {
            z[i1] += ub * w->t1[b];
        } else if (i1 < n + NE) { /* through x: the electrode end of the branch */
            g[i1 - n] += w->K[b] * w->C[b] * wb;
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        for (uint32_t k = 0; k < NE; k++) {
            g[k] += z[i] * s->c[(size_t)i * NE + k];
        }
    }
    for (uint32_t k = 0; k < NE; k++) {
        G_out[(size_t)k * g_stride] = g[k];
    }
    if (dphi_out == NULL) {
        return 0;
    }
    /* dphi/dV = -J^-1 dF/dV = A^-1 dF/dV, column by column. dF/dV_k = M c_k + the electrode ends:
     * a branch current cur_b = V0 K_b S_b adds to F at b0 and subtracts at b1, d cur_b / dV_k =
     * q_b (t0_b c_b0k + t1_b c_b1k) + [b1 = electrode k] K_b C_b with q_b = V0 K_b S_b, so
     * M_ij = sum_b (D'_ib q_b (t0_b [b0 = j] + t1_b [b1 = j])), D' = +1 at b0, -1 at b1. */
    double *M = w->M, *R = w->R;
    for (uint32_t i = 0; i < n * n; i++) {
        M[i] = 0.0;
    }
    for (uint32_t i = 0; i < n * NE; i++) {
        R[i] = 0.0;
    }
    for (uint32_t b = 0; b < s->n_branches; b++) {
        const uint32_t i0 = (uint32_t)s->b0[b], i1 = (uint32_t)s->b1[b];
        const double q = V0 * w->K[b] * w->S[b];
        M[(size_t)i0 * n + i0] += q * w->t0[b];
        if (i1 < n) {
            M[(size_t)i0 * n + i1] += q * w->t1[b];
            M[(size_t)i1 * n + i0] -= q * w->t0[b];
            M[(size_t)i1 * n + i1] -= q * w->t1[b];
        } else if (i1 < n + NE) {
            R[(size_t)(i1 - n) * n + i0] += w->K[b] * w->C[b];
        }
    }
    for (uint32_t k = 0; k < NE; k++) {
        double *col = R + (size_t)k * n;
        for (uint32_t i = 0; i < n; i++) {
            double v = col[i];
            for (uint32_t j = 0; j < n; j++) {
                v += M[(size_t)i * n + j] * s->c[(size_t)j * NE + k];
            }
            col[i] = v;
        }
        chol_solve(w->A, n, col);
        for (uint32_t i = 0; i < n; i++) {
            dphi_out[(size_t)i * NE + k] = col[i];
        }
    }
    return 0;
}

hge_status hge_hop_process(const hge_hop_t *s, const double *V, uint64_t n_pts, uint64_t v_stride,
                           const double *phi0, double *I, double *G, uint64_t g_stride, double *phi,
                           double *dphi, double *work, uint64_t work_len, uint64_t *n_done)
{
    if (s == NULL || n_done == NULL) {
        return HGE_ERR_NULL;
    }
    *n_done = 0;
    if (n_pts == 0u) {
        return HGE_OK;
    }
    if (V == NULL || I == NULL || work == NULL) {
        return HGE_ERR_NULL;
    }
    const uint32_t n = s->n_sites, B = s->n_branches;
    if (n_pts > v_stride || (G != NULL && n_pts > g_stride) || work_len < hge_hop_work_doubles(n, B)) {
        return HGE_ERR_SIZE;
    }
    if (dphi != NULL && G == NULL) {
        return HGE_ERR_NULL; /* dphi/dV is made with the gradient's factorisation */
    }
    work_t w;
    double *p = work;
    w.K = p; p += B;
    w.t0 = p; p += B;
    w.t1 = p; p += B;
    w.xt = p; p += B;
    w.S = p; p += B;
    w.C = p; p += B;
    w.e = p; p += n + NT;
    w.a = p; p += n + NT;
    w.u = p; p += n + NT;
    w.eu = p; p += n + NT;
    w.ei = p; p += n + NT;
    w.A = p; p += (size_t)n * n;
    w.F = p; p += n;
    w.step = p; p += n;
    w.lam = p; p += n;
    w.tf = p; p += n;
    w.tr = p; p += n;
    w.tt = p; p += n;
    w.M = p; p += (size_t)n * n;
    w.R = p;
    for (uint64_t q = 0; q < n_pts; q++) {
        double Vp[NE];
        int ok = 1;
        for (uint32_t k = 0; k < NE; k++) {
            Vp[k] = V[(size_t)k * v_stride + q];
            ok &= isfinite(Vp[k]) != 0;
        }
        const double *start = phi0 != NULL ? phi0 + (size_t)q * n : NULL;
        for (uint32_t i = 0; start != NULL && i < n; i++) {
            ok &= isfinite(start[i]) != 0;
        }
        if (!ok || solve_point(s, Vp, start, &w, I + q, G != NULL ? G + q : NULL, g_stride,
                               phi != NULL ? phi + (size_t)q * n : NULL,
                               dphi != NULL ? dphi + (size_t)q * n * NE : NULL)) {
            *n_done = q;
            return HGE_ERR_RANGE;
        }
    }
    *n_done = n_pts;
    return HGE_OK;
}

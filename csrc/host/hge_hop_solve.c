/*
 * hge_hop_solve.c - the hopping network's Newton solve and adjoint gradient (hge_hop_solve.h).
 *
 * The branches are dense: every site pair (i < j) and every site-terminal pair (i, t), so the
 * loops run over them directly (no branch lists, no per-branch node lookups).
 */
#include "hge_hop_solve.h"

#include <math.h>
#include <stddef.h>

#define NE HGE_HOP_N_ELECTRODES
#define NT HGE_HOP_N_TERMINALS

uint64_t hge_hop_work_doubles(uint32_t n_sites)
{
    /* n x n: Kss, tss, Sss, Css, A, M; n x 8: Kst, Sst, Cst; 7 n: R;
     * n: e, a, tf, tt, u, eu, ei, F, step, lam, z; 8: et, eti. */
    const uint64_t n = n_sites;
    return 6u * n * n + 3u * NT * n + (uint64_t)NE * n + 11u * n + 2u * NT;
}

static int finite_nonneg(double x)
{
    return x >= 0.0 && isfinite(x);
}

hge_status hge_hop_init(hge_hop_t *s, uint32_t n_sites, const double *g_ss, const double *g_st, const double *c,
                        const double *E, double V0, double V_T, double floor, double delta, double tol,
                        uint32_t max_iter)
{
    if (s == NULL || g_ss == NULL || g_st == NULL || c == NULL || E == NULL) {
        return HGE_ERR_NULL;
    }
    if (n_sites < 2u || n_sites > HGE_HOP_MAX_SITES) {
        return HGE_ERR_SIZE;
    }
    /* !(x > 0) also refuses NaN. */
    if (!(V0 > 0.0) || !isfinite(V0) || !(V_T > 0.0) || !isfinite(V_T) || !(delta > 0.0) || !isfinite(delta) ||
        !(tol > 0.0) || !isfinite(tol) || !(floor >= 0.0) || !(floor < 1.0) || max_iter == 0u) {
        return HGE_ERR_COEF;
    }
    for (uint32_t i = 0; i < n_sites; i++) {
        if (!isfinite(E[i])) {
            return HGE_ERR_COEF;
        }
        for (uint32_t j = i + 1u; j < n_sites; j++) {
            if (!finite_nonneg(g_ss[(size_t)i * n_sites + j])) {
                return HGE_ERR_COEF;
            }
        }
        for (uint32_t t = 0; t < NT; t++) {
            if (!finite_nonneg(g_st[(size_t)i * NT + t])) {
                return HGE_ERR_COEF;
            }
        }
        for (uint32_t k = 0; k < NE; k++) {
            if (!isfinite(c[(size_t)i * NE + k])) {
                return HGE_ERR_COEF;
            }
        }
    }
    s->n_sites = n_sites;
    s->g_ss = g_ss;
    s->g_st = g_st;
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

/* In-place Cholesky A = L L^T of the lower triangle of A (n x n row-major); 0 unless a pivot is not > 0. */
static int cholesky(double *A, uint32_t n)
{
    for (uint32_t j = 0; j < n; j++) {
        double *Aj = A + (size_t)j * n;
        double d = Aj[j];
        for (uint32_t k = 0; k < j; k++) {
            d -= Aj[k] * Aj[k];
        }
        if (!(d > 0.0) || !isfinite(d)) {
            return -1;
        }
        d = sqrt(d);
        Aj[j] = d;
        const double inv = 1.0 / d;
        for (uint32_t i = j + 1u; i < n; i++) {
            double *Ai = A + (size_t)i * n;
            double x = Ai[j];
            for (uint32_t k = 0; k < j; k++) {
                x -= Ai[k] * Aj[k];
            }
            Ai[j] = x * inv;
        }
    }
    return 0;
}

/* x = (L L^T)^-1 b in place (x holds b on entry). */
static void chol_solve(const double *L, uint32_t n, double *x)
{
    for (uint32_t i = 0; i < n; i++) {
        const double *Li = L + (size_t)i * n;
        double v = x[i];
        for (uint32_t k = 0; k < i; k++) {
            v -= Li[k] * x[k];
        }
        x[i] = v / Li[i];
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
    double *Kss, *tss, *Sss, *Css;  /* (n, n): pair (i < j) at [i n + j]; tss[i n + j] = t at end i */
    double *Kst, *Sst, *Cst;        /* (n, 8) */
    double *A, *M, *R;              /* (n, n), (n, n), (7, n) */
    double *e, *a, *tf, *tt;        /* per site: level, |level|_d, terminal-branch factor f and t */
    double *u, *eu, *ei;            /* per site: potential, exp(+-u / V0) */
    double *F, *step, *lam, *z;     /* per site */
    double *et, *eti;               /* per terminal: exp(+-V / V0) */
} work_t;

/* The point's conductances K and their log-derivatives t (d ln K / d(c . V) at a branch end;
 * d e / d(c . V) = -1 at a site). A branch to a terminal (e = 0 there) has
 * |e_i - 0|_d = |e_i|_d bit for bit, so its factors depend on its site alone. */
static void state(const hge_hop_t *s, const double *Vp, const work_t *w)
{
    const uint32_t n = s->n_sites;
    const double dvt = s->delta * s->V_T, d2 = dvt * dvt, k = 0.5 / s->V_T;
    const double three = 3.0 * s->delta * s->V_T;
    const double at = sqrt(0.0 * 0.0 + d2); /* a terminal's |e|_d */
    const double fl = s->floor, one_fl = 1.0 - s->floor;
    for (uint32_t i = 0; i < n; i++) {
        double cv = 0.0;
        for (uint32_t j = 0; j < NE; j++) {
            cv += s->c[(size_t)i * NE + j] * Vp[j];
        }
        const double e0 = s->E[i] - cv;
        const double a0 = sqrt(e0 * e0 + d2);
        w->e[i] = e0;
        w->a[i] = a0;
        const double P = exp(-k * (a0 + at + a0 - three));
        const double f = fl + one_fl * P;
        const double r = one_fl * P / f;
        w->tf[i] = f;
        w->tt[i] = k * r * (e0 / a0 + e0 / a0);
        for (uint32_t t = 0; t < NT; t++) {
            w->Kst[(size_t)i * NT + t] = s->g_st[(size_t)i * NT + t] * f;
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        const double ei = w->e[i], ai = w->a[i];
        for (uint32_t j = i + 1u; j < n; j++) {
            const double ej = w->e[j], aj = w->a[j];
            const double de = ei - ej, aij = sqrt(de * de + d2);
            const double P = exp(-k * (ai + aj + aij - three));
            const double f = fl + one_fl * P;
            const double r = one_fl * P / f;
            w->Kss[(size_t)i * n + j] = s->g_ss[(size_t)i * n + j] * f;
            w->tss[(size_t)i * n + j] = k * r * (ei / ai + de / aij);
            w->tss[(size_t)j * n + i] = k * r * (ej / aj - de / aij);
        }
    }
    for (uint32_t t = 0; t < NT; t++) {
        const double v = t < NE ? Vp[t] : 0.0;
        w->et[t] = exp(v / s->V0);
        w->eti[t] = 1.0 / w->et[t];
    }
}

/* sinh and cosh of every branch's x = (u_b1 - u_b0) / V0, the residual F and the lower
 * triangle of A = -J = sum K C d d^T. exp(x) is exp(u_b1 / V0) exp(-u_b0 / V0): one exp per
 * node (within a few ulps of exp(x); at equal potentials both factors are the same, so sinh is
 * exactly 0 and the network stays passive). */
static void residual(const hge_hop_t *s, const work_t *w)
{
    const uint32_t n = s->n_sites;
    const double V0 = s->V0;
    for (uint32_t i = 0; i < n; i++) {
        w->eu[i] = exp(w->u[i] / V0);
        w->ei[i] = 1.0 / w->eu[i];
        w->F[i] = 0.0;
        w->A[(size_t)i * n + i] = 0.0;
    }
    for (uint32_t i = 0; i < n; i++) {
        const double eui = w->eu[i], eii = w->ei[i];
        double Fi = w->F[i], Aii = w->A[(size_t)i * n + i];
        for (uint32_t j = i + 1u; j < n; j++) {
            const size_t ij = (size_t)i * n + j;
            const double ex = w->eu[j] * eii, em = w->ei[j] * eui;
            const double S = 0.5 * (ex - em), C = 0.5 * (ex + em);
            const double K = w->Kss[ij];
            w->Sss[ij] = S;
            w->Css[ij] = C;
            const double cur = V0 * K * S, kc = K * C;
            Fi += cur;
            w->F[j] -= cur;
            Aii += kc;
            w->A[(size_t)j * n + j] += kc;
            w->A[(size_t)j * n + i] = -kc; /* the lower triangle is what Cholesky reads */
        }
        const double *K = w->Kst + (size_t)i * NT;
        double *Sst = w->Sst + (size_t)i * NT, *Cst = w->Cst + (size_t)i * NT;
        for (uint32_t t = 0; t < NT; t++) {
            const double ex = w->et[t] * eii, em = w->eti[t] * eui;
            const double S = 0.5 * (ex - em), C = 0.5 * (ex + em);
            Sst[t] = S;
            Cst[t] = C;
            Fi += V0 * K[t] * S;
            Aii += K[t] * C;
        }
        w->F[i] = Fi;
        w->A[(size_t)i * n + i] = Aii;
    }
}

/* One point: Newton, then the current and (G_out != NULL) the gradient and (dphi_out) dphi/dV.
 * 0, or -1 when it fails. */
static int solve_point(const hge_hop_t *s, const double *Vp, const double *phi0, const work_t *w,
                       double *I_out, double *G_out, uint64_t g_stride, double *phi_out, double *dphi_out)
{
    const uint32_t n = s->n_sites;
    const double V0 = s->V0;
    state(s, Vp, w);
    if (phi0 != NULL) {
        for (uint32_t i = 0; i < n; i++) {
            w->u[i] = phi0[i];
        }
    } else {
        /* The linear network (sinh x ~ x): A_lin phi = sum_t K_it V_t, A_lin = sum K d d^T. */
        for (uint32_t i = 0; i < n; i++) {
            double Aii = 0.0, b = 0.0;
            for (uint32_t j = 0; j < n; j++) {
                if (j != i) {
                    const double K = j > i ? w->Kss[(size_t)i * n + j] : w->Kss[(size_t)j * n + i];
                    Aii += K;
                    if (j < i) {
                        w->A[(size_t)i * n + j] = -K;
                    }
                }
            }
            for (uint32_t t = 0; t < NT; t++) {
                Aii += w->Kst[(size_t)i * NT + t];
                if (t < NE) {
                    b += w->Kst[(size_t)i * NT + t] * Vp[t];
                }
            }
            w->A[(size_t)i * n + i] = Aii;
            w->u[i] = b;
        }
        if (cholesky(w->A, n)) {
            return -1;
        }
        chol_solve(w->A, n, w->u);
    }
    uint32_t it = 0;
    for (; it < s->max_iter; it++) {
        residual(s, w);
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
    residual(s, w);
    double I = 0.0;
    for (uint32_t i = 0; i < n; i++) {
        I += w->Kst[(size_t)i * NT + NE] * w->Sst[(size_t)i * NT + NE];
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
    /* lam = A^-1 dI/dphi (the adjoint lambda = J^-1 dI/dphi = -lam); dI/dphi_i = K C of i's
     * branch to the output. */
    for (uint32_t i = 0; i < n; i++) {
        w->lam[i] = w->Kst[(size_t)i * NT + NE] * w->Cst[(size_t)i * NT + NE];
    }
    chol_solve(w->A, n, w->lam);
    /* grad_k = sum_b u_b (t0_b c_b0k + t1_b c_b1k) + sum_{b1 = electrode k} K_b C_b w_b with
     * w_b = lambda . d_b = lam_b0 - lam_b1 (lam = 0 at a terminal) and
     * u_b = -V0 K_b S_b ([b1 = output] - w_b); the first sum as sum_i c_ik z_i with the node
     * weights z_i = sum_{b0 = i} u_b t0_b + sum_{b1 = i} u_b t1_b. */
    double g[NE];
    for (uint32_t k = 0; k < NE; k++) {
        g[k] = 0.0;
    }
    for (uint32_t i = 0; i < n; i++) {
        w->z[i] = 0.0;
    }
    for (uint32_t i = 0; i < n; i++) {
        const double li = w->lam[i];
        double zi = w->z[i];
        for (uint32_t j = i + 1u; j < n; j++) {
            const size_t ij = (size_t)i * n + j;
            const double ub = V0 * w->Kss[ij] * w->Sss[ij] * (li - w->lam[j]);
            zi += ub * w->tss[ij];
            w->z[j] += ub * w->tss[(size_t)j * n + i];
        }
        double zt = 0.0;
        for (uint32_t t = 0; t < NT; t++) {
            const size_t it_ = (size_t)i * NT + t;
            const double out = t == NE ? 1.0 : 0.0;
            zt += -V0 * w->Kst[it_] * w->Sst[it_] * (out - li);
            if (t < NE) {
                g[t] += w->Kst[it_] * w->Cst[it_] * li;
            }
        }
        w->z[i] = zi + zt * w->tt[i];
    }
    for (uint32_t i = 0; i < n; i++) {
        for (uint32_t k = 0; k < NE; k++) {
            g[k] += w->z[i] * s->c[(size_t)i * NE + k];
        }
    }
    for (uint32_t k = 0; k < NE; k++) {
        G_out[(size_t)k * g_stride] = g[k];
    }
    if (dphi_out == NULL) {
        return 0;
    }
    /* dphi/dV = -J^-1 dF/dV = A^-1 dF/dV, column by column. A branch current cur_b = V0 K_b S_b
     * adds to F at b0 and subtracts at b1; d cur_b / dV_k = q_b (t0_b c_b0k + t1_b c_b1k)
     * + [b1 = electrode k] K_b C_b with q_b = cur_b. So dF/dV_k = M c_k + R_k with
     * M_ij = sum_b D'_ib q_b (t0_b [b0 = j] + t1_b [b1 = j]) (D' = +1 at b0, -1 at b1) and
     * R_k the electrode ends. */
    double *M = w->M, *R = w->R;
    for (uint32_t i = 0; i < n * n; i++) {
        M[i] = 0.0;
    }
    for (uint32_t i = 0; i < n * NE; i++) {
        R[i] = 0.0;
    }
    for (uint32_t i = 0; i < n; i++) {
        for (uint32_t j = i + 1u; j < n; j++) {
            const size_t ij = (size_t)i * n + j, ji = (size_t)j * n + i;
            const double q = V0 * w->Kss[ij] * w->Sss[ij];
            M[(size_t)i * n + i] += q * w->tss[ij];
            M[ij] += q * w->tss[ji];
            M[ji] -= q * w->tss[ij];
            M[(size_t)j * n + j] -= q * w->tss[ji];
        }
        for (uint32_t t = 0; t < NT; t++) {
            const size_t it_ = (size_t)i * NT + t;
            M[(size_t)i * n + i] += V0 * w->Kst[it_] * w->Sst[it_] * w->tt[i];
            if (t < NE) {
                R[(size_t)t * n + i] += w->Kst[it_] * w->Cst[it_];
            }
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
    const uint32_t n = s->n_sites;
    if (n_pts > v_stride || (G != NULL && n_pts > g_stride) || work_len < hge_hop_work_doubles(n)) {
        return HGE_ERR_SIZE;
    }
    if (dphi != NULL && G == NULL) {
        return HGE_ERR_NULL; /* dphi/dV is made with the gradient's factorisation */
    }
    const size_t nn = (size_t)n * n;
    work_t w;
    double *p = work;
    w.Kss = p; p += nn;
    w.tss = p; p += nn;
    w.Sss = p; p += nn;
    w.Css = p; p += nn;
    w.A = p; p += nn;
    w.M = p; p += nn;
    w.Kst = p; p += (size_t)NT * n;
    w.Sst = p; p += (size_t)NT * n;
    w.Cst = p; p += (size_t)NT * n;
    w.R = p; p += (size_t)NE * n;
    w.e = p; p += n;
    w.a = p; p += n;
    w.tf = p; p += n;
    w.tt = p; p += n;
    w.u = p; p += n;
    w.eu = p; p += n;
    w.ei = p; p += n;
    w.F = p; p += n;
    w.step = p; p += n;
    w.lam = p; p += n;
    w.z = p; p += n;
    w.et = p; p += NT;
    w.eti = p;
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

hge_status hge_hop_tensors(const hge_hop_t *s, const double *C, uint64_t n_cen, uint64_t c_stride, double h,
                           double *I, double *G, uint64_t g_stride, double *H, double *T, double *work,
                           uint64_t work_len, uint64_t *n_done)
{
    if (s == NULL || n_done == NULL) {
        return HGE_ERR_NULL;
    }
    *n_done = 0;
    if (n_cen == 0u) {
        return HGE_OK;
    }
    if (C == NULL || I == NULL || G == NULL || H == NULL || T == NULL || work == NULL) {
        return HGE_ERR_NULL;
    }
    if (n_cen > c_stride || n_cen > g_stride) {
        return HGE_ERR_SIZE;
    }
    if (!(h > 0.0) || !isfinite(h)) {
        return HGE_ERR_RANGE;
    }
    const uint32_t n = s->n_sites;
    const double h2 = h * h, two_h = 2.0 * h;
    double phi[HGE_HOP_MAX_SITES], dphi[HGE_HOP_MAX_SITES * NE], start[HGE_HOP_MAX_SITES];
    double g0[NE], gd[NE * HGE_HOP_DISPLACED]; /* gd[i * 35 + d]: component i at displaced point d */
    uint64_t one;
    for (uint64_t q = 0; q < n_cen; q++) {
        double Vc[NE], Vd[NE];
        for (uint32_t k = 0; k < NE; k++) {
            Vc[k] = C[(size_t)k * c_stride + q];
        }
        hge_status st = hge_hop_process(s, Vc, 1u, 1u, NULL, I + q, g0, 1u, phi, dphi, work, work_len, &one);
        if (st != HGE_OK) {
            *n_done = q;
            return st;
        }
        for (uint32_t d = 0; d < HGE_HOP_DISPLACED; d++) {
            /* +h e_j (d = j), -h e_j (d = 7 + j), +h (e_a + e_b) for a < b in order (d >= 14). */
            double D[NE];
            for (uint32_t k = 0; k < NE; k++) {
                D[k] = 0.0;
            }
            if (d < NE) {
                D[d] = h;
            } else if (d < 2u * NE) {
                D[d - NE] = -h;
            } else {
                uint32_t r = 2u * NE;
                for (uint32_t a = 0; a < NE; a++) {
                    for (uint32_t b = a + 1u; b < NE; b++, r++) {
                        if (r == d) {
                            D[a] = h;
                            D[b] = h;
                        }
                    }
                }
            }
            /* The centre's first-order prediction phi + (dphi/dV) D: Newton from O(h^2) off. */
            for (uint32_t k = 0; k < NE; k++) {
                Vd[k] = Vc[k] + D[k];
            }
            for (uint32_t i = 0; i < n; i++) {
                double v = 0.0;
                for (uint32_t k = 0; k < NE; k++) {
                    v += dphi[(size_t)i * NE + k] * D[k];
                }
                start[i] = phi[i] + v;
            }
            double Id, gk[NE];
            st = hge_hop_process(s, Vd, 1u, 1u, start, &Id, gk, 1u, NULL, NULL, work, work_len, &one);
            if (st != HGE_OK) {
                *n_done = q;
                return st;
            }
            for (uint32_t i = 0; i < NE; i++) {
                gd[(size_t)i * HGE_HOP_DISPLACED + d] = gk[i];
            }
        }
        for (uint32_t k = 0; k < NE; k++) {
            G[(size_t)k * g_stride + q] = g0[k];
        }
        /* FastEvaluator._difference_tensors' formulas, in its operation order. */
        double *Hq = H + (size_t)q * NE * NE, *Tq = T + (size_t)q * NE * NE * NE;
        double Hr[NE * NE];
        for (uint32_t i = 0; i < NE; i++) {
            for (uint32_t j = 0; j < NE; j++) {
                Hr[i * NE + j] = (gd[i * HGE_HOP_DISPLACED + j] - gd[i * HGE_HOP_DISPLACED + NE + j]) / two_h;
            }
        }
        for (uint32_t i = 0; i < NE; i++) {
            for (uint32_t j = 0; j < NE; j++) {
                Hq[i * NE + j] = 0.5 * (Hr[i * NE + j] + Hr[j * NE + i]);
            }
        }
        for (uint32_t i = 0; i < NE; i++) {
            const double *gi = gd + (size_t)i * HGE_HOP_DISPLACED;
            double *Ti = Tq + (size_t)i * NE * NE;
            for (uint32_t j = 0; j < NE; j++) {
                Ti[j * NE + j] = (gi[j] - 2.0 * g0[i] + gi[NE + j]) / h2;
            }
            uint32_t r = 2u * NE;
            for (uint32_t a = 0; a < NE; a++) {
                for (uint32_t b = a + 1u; b < NE; b++, r++) {
                    const double v = (gi[r] - gi[a] - gi[b] + g0[i]) / h2;
                    Ti[a * NE + b] = v;
                    Ti[b * NE + a] = v;
                }
            }
        }
    }
    *n_done = n_cen;
    return HGE_OK;
}

"""cffi out-of-line build of the C core in csrc/ into ``hge_embedded._hge_core``."""
import pathlib

from cffi import FFI

ROOT = pathlib.Path(__file__).resolve().parents[1]
CSRC = ROOT / "csrc"

CDEF = """
typedef int... int32_t;
typedef int... int64_t;
typedef int... uint32_t;
typedef int... uint64_t;
typedef int... int16_t;
typedef int... uint8_t;  /* also used by CDEF_TRAINER below */
typedef enum { HGE_OK = 0, HGE_ERR_NULL = -1, HGE_ERR_SIZE = -2, HGE_ERR_FREQ = -3,
               HGE_ERR_TERMINALS = -4, HGE_ERR_RANGE = -5, HGE_ERR_COEF = -6 } hge_status;
#define HGE_MAX_TERMINALS ...
#define HGE_BOXCAR_MAX_SAMPLES ...
#define HGE_MEAN_MAX_SAMPLES ...
#define HGE_SINE_TABLE_SIZE ...
#define HGE_SINE_AMPLITUDE ...
#define HGE_MIXER_SHIFT ...
#define HGE_CHUNK ...
extern const int32_t hge_sine_table[...];

typedef struct { uint32_t phase; uint32_t step; } hge_nco_t;
hge_status hge_nco_init(hge_nco_t *nco, uint32_t step, uint32_t phase);
int32_t hge_sin_q22_exported(uint32_t phase);
int32_t hge_q30_sat_exported(int64_t acc);
int32_t hge_presum_term_exported(int32_t xv, int32_t ref, int pieces);
int64_t hge_dot3_pieces_exported(int32_t a0, int32_t b0, int32_t a1, int32_t b1, int32_t a2, int32_t b2);
uint64_t hge_chunk_walk_exported(uint32_t n, uint32_t *chunks, uint32_t *last);
int hge_wrapv_probe(int x);

typedef struct { int32_t b[3]; int32_t a[2]; int32_t c[2]; int32_t d; uint32_t b_shift; } hge_bw3_coeffs_t;
typedef struct { ...; } hge_lockin_bw3_term_t;
typedef struct { ...; } hge_lockin_bw3_t;
typedef struct { ...; } hge_lockin_boxcar_term_t;
typedef struct { ...; } hge_lockin_boxcar_t;
typedef struct { ...; } hge_update_t;

uint32_t hge_lockin_bw3_state_bytes(void);
uint32_t hge_lockin_boxcar_state_bytes(void);
hge_status hge_mean_q0(const int32_t *x, uint32_t n, int32_t *mean);

hge_status hge_lockin_bw3_init(hge_lockin_bw3_t *s, const hge_bw3_coeffs_t *coeffs,
                               hge_lockin_bw3_term_t *terms, uint32_t n_terms,
                               const uint32_t *steps, const uint32_t *phases);
hge_status hge_lockin_bw3_set_dc(hge_lockin_bw3_t *s, int32_t dc);
hge_status hge_lockin_bw3_process(hge_lockin_bw3_t *s, const int32_t *x, uint32_t n);
hge_status hge_lockin_bw3_output(const hge_lockin_bw3_t *s, int32_t *out_i, int32_t *out_q);
hge_status hge_lockin_bw3_reset(hge_lockin_bw3_t *s, const uint32_t *phases);

hge_status hge_lockin_boxcar_init(hge_lockin_boxcar_t *s, hge_lockin_boxcar_term_t *terms,
                                  uint32_t n_terms, const uint32_t *steps,
                                  const uint32_t *phases);
hge_status hge_lockin_boxcar_set_dc(hge_lockin_boxcar_t *s, int32_t dc);
hge_status hge_lockin_boxcar_process(hge_lockin_boxcar_t *s, const int32_t *x, uint32_t n);
hge_status hge_lockin_boxcar_output(const hge_lockin_boxcar_t *s, int64_t *out_i,
                                    int64_t *out_q, uint32_t *count);
hge_status hge_lockin_boxcar_reset(hge_lockin_boxcar_t *s, const uint32_t *phases);

#define HGE_ISA_AUTO ...
#define HGE_ISA_GENERIC ...
#define HGE_ISA_AVX2 ...
#define HGE_HOST_MAX_THREADS ...
#define HGE_POOL_WORKERS ...
#define HGE_POOL_SPAWN ...
typedef struct { uint32_t isa; uint32_t threads; uint32_t pool; } hge_host_opts_t;
int hge_host_isa_available(uint32_t isa);
hge_status hge_refs_fill(int32_t *refs, uint32_t stride, uint32_t n_terms, const uint32_t *steps,
                         const uint32_t *phases, uint32_t n);
hge_status hge_host_bw3_process(hge_lockin_bw3_t *s, const int32_t *x, uint32_t n, const int32_t *refs,
                                uint32_t stride, const hge_host_opts_t *opts);
hge_status hge_host_boxcar_process(hge_lockin_boxcar_t *s, const int32_t *x, uint32_t n,
                                   const int32_t *refs, uint32_t stride, const hge_host_opts_t *opts);
#define HGE_HOST_LANES ...
#define HGE_LANE_ROW ...
hge_status hge_refs_fill_lanes(int32_t *refs, uint32_t stride, uint32_t n_terms, const uint32_t *steps,
                               const uint32_t *phases, uint32_t n);
hge_status hge_host_bw3_process_lanes(hge_lockin_bw3_t *s, const int32_t *x, uint32_t n, const int32_t *refs,
                                      uint32_t stride, const hge_host_opts_t *opts);
hge_status hge_host_boxcar_process_lanes(hge_lockin_boxcar_t *s, const int32_t *x, uint32_t n,
                                         const int32_t *refs, uint32_t stride, const hge_host_opts_t *opts);
#define HGE_PACKED_ROW ...
hge_status hge_refs_fill_packed(uint8_t *refs, uint32_t stride, uint32_t n_terms, const uint32_t *steps,
                                const uint32_t *phases, uint32_t n);
hge_status hge_host_bw3_process_packed(hge_lockin_bw3_t *s, const int32_t *x, uint32_t n, const uint8_t *refs,
                                       uint32_t stride, const hge_host_opts_t *opts);
hge_status hge_host_boxcar_process_packed(hge_lockin_boxcar_t *s, const int32_t *x, uint32_t n,
                                          const uint8_t *refs, uint32_t stride, const hge_host_opts_t *opts);
hge_status hge_refs_fill_scaled(int32_t *refs, uint32_t stride, uint32_t n_terms, const uint32_t *steps,
                                const uint32_t *phases, uint32_t n);
hge_status hge_host_bw3_process_scaled(hge_lockin_bw3_t *s, const int32_t *x, uint32_t n, const int32_t *refs,
                                       uint32_t stride, const hge_host_opts_t *opts);
hge_status hge_host_mean_q0(const int32_t *x, uint32_t n, int32_t *mean, uint32_t isa);

hge_status hge_update_init(hge_update_t *u, const int32_t *w_min, const int32_t *w_max,
                           uint32_t n_electrodes, int32_t eta, uint32_t shift);
hge_status hge_update_accumulate(const hge_update_t *u, int64_t *g, const int32_t *dEdI,
                                 const int32_t *dIdV, uint32_t n_points);
hge_status hge_update_process(const hge_update_t *u, int32_t *w, const int64_t *g);
"""

SOURCE = """
#include "hge.h"
#include "hge_lockin_kernels.h"
#include "hge_lockin_host.h"
/* Static inline helpers get real symbols here so the tests reach them. */
static int32_t hge_sin_q22_exported(uint32_t phase) { return hge_sin_q22(phase); }
static int32_t hge_q30_sat_exported(int64_t acc) { return hge_q30_sat(acc); }
/* The mixer term ((x' ref + 2^18) >> 19) as the host computes it, or from 32-bit
 * pieces as the ARMv6-M build does. */
static int32_t hge_presum_term_exported(int32_t xv, int32_t ref, int pieces)
{
    return pieces ? hge_presum_mac_pieces(0, xv * 16, ref) : hge_presum_mac(0, xv * 16, ref);
}
static int64_t hge_dot3_pieces_exported(int32_t a0, int32_t b0, int32_t a1, int32_t b1, int32_t a2, int32_t b2)
{
    return hge_dot3_pieces(a0, b0, a1, b1, a2, b2);
}
/* Walks a block of n samples with the process loops' chunk iterator; returns the
 * samples covered, and the number of chunks and the last chunk's length. */
static uint64_t hge_chunk_walk_exported(uint32_t n, uint32_t *chunks, uint32_t *last)
{
    uint64_t covered = 0;
    uint32_t remaining = n;
    *chunks = 0;
    *last = 0;
    while (remaining > 0u) {
        *last = hge_next_chunk(&remaining);
        covered += *last;
        *chunks += 1u;
    }
    return covered;
}
/* -fno-wrapv probe: with signed overflow undefined (the microcontroller's C),
 * GCC and clang fold x + 1 > x to 1 at -O2; under -fwrapv INT_MAX gives 0.
 * tests/test_build_flags.py calls it with INT_MAX to check the flag took effect. */
static int hge_wrapv_probe(int x) { return x + 1 > x; }
"""


# ---- the on-device trainer (csrc/hge_fixmath, hge_corrsig, hge_synth, hge_trainer) ----
# Kept apart from the lock-in declarations above so the two can change independently.
CDEF_TRAINER = """
#define HGE_TRAINER_MAX_DAC ...
#define HGE_TRAINER_MAX_CTL ...
#define HGE_CORRSIG_MAX_POINTS ...
#define HGE_DIDV_FRAC ...
#define HGE_GRAD_FRAC ...
#define HGE_LOSS_FRAC ...
typedef struct {
    uint32_t n_dac; uint32_t n_ctl; uint32_t n_in; uint32_t n_points;
    uint8_t ctl[8]; uint8_t in[8];
    int32_t dac_lo[8]; int32_t dac_hi[8];
    int32_t w_min[8]; int32_t w_max[8]; int32_t w0[8];
    uint32_t steps[8]; int32_t amp[8]; int32_t cal_i[8]; int32_t cal_q[8];
    uint32_t n_ramp; uint32_t n_settle; uint32_t n_window;
    int32_t scale; int64_t stop_loss; uint32_t max_iter; int32_t eta; uint32_t shift;
    uint32_t filter; hge_bw3_coeffs_t coeffs;
} hge_trainer_config_t;
typedef struct {
    int32_t *y; int32_t *didv; int32_t *q;
    int32_t w[8];
    uint32_t dac_pos; uint32_t adc_pos;
    uint32_t iteration; uint32_t measurements;
    int64_t loss; int32_t exponent; int error;
    ...;
} hge_trainer_t;
typedef struct { int64_t loss; int32_t rho; int32_t x; int32_t exponent; } hge_corrsig_result_t;
uint32_t hge_trainer_workspace_words(uint32_t n_points, uint32_t n_ctl);
hge_status hge_trainer_init(hge_trainer_t *tr, const hge_trainer_config_t *cfg, const int32_t *inputs,
                            const uint8_t *targets, int32_t *workspace, uint32_t workspace_words);
hge_status hge_trainer_dac_block(hge_trainer_t *tr, int32_t *codes, uint32_t n);
hge_status hge_trainer_adc_block(hge_trainer_t *tr, const int32_t *x, uint32_t n);
hge_status hge_trainer_block(hge_trainer_t *tr, const int32_t *adc_in, int32_t *dac_out, uint32_t n);
int hge_trainer_poll(hge_trainer_t *tr);
int hge_trainer_done(const hge_trainer_t *tr);
hge_status hge_corrsig(const int32_t *y, const uint8_t *z, uint32_t n, int32_t scale, int32_t *q,
                       hge_corrsig_result_t *r);
int64_t hge_exp_q24(int32_t t);
int64_t hge_div_round(int64_t num, int64_t den);
int64_t hge_shift_round(int64_t v, int32_t s);
int64_t hge_mul_shift(int64_t a, int64_t b, uint32_t s);
int64_t hge_ratio(int64_t num, int64_t den, int32_t shift);
uint64_t hge_isqrt64(uint64_t v);
"""
SOURCE_TRAINER = """
#include "hge_trainer.h"
"""
# ---- end of the on-device trainer block ----

# ---- simspeed (session 5): the simulator's window expansion (csrc/host/hge_sim_taylor) ----
CDEF_SIM = """
#define HGE_SIM_MAX_DIM ...
#define HGE_SIM_ISA_AUTO ...
#define HGE_SIM_ISA_PLAIN ...
#define HGE_SIM_ISA_SSE2 ...
#define HGE_SIM_ISA_AVX2 ...
typedef struct { uint32_t n_dim; uint32_t n_coef; uint32_t isa; } hge_sim_taylor_t;
int hge_sim_taylor_isa_available(uint32_t isa);
uint32_t hge_sim_taylor_coefs(uint32_t n_dim);
hge_status hge_sim_taylor_init(hge_sim_taylor_t *s, uint32_t n_dim);
hge_status hge_sim_taylor_process(const hge_sim_taylor_t *s, const double *v, uint64_t n, uint64_t stride,
                                  const int64_t *bounds, uint32_t n_win, const double *centres,
                                  const double *coefs, double *out);
#define HGE_SIM_RAMP_MAX_DIM ...
hge_status hge_sim_ramp_process(const double *v, uint32_t n_dim, uint64_t n, uint64_t stride,
                                const int64_t *ramps, uint32_t n_ramps, const double *knots,
                                const double *I, const double *G, uint64_t g_stride, uint64_t n_pts,
                                double *out);
#define HGE_SIM_RUNS_MAX_DIM ...
hge_status hge_sim_runs(const double *v, uint32_t n_dim, uint64_t n, uint64_t stride, uint32_t chunk,
                        double lim, int64_t *bounds, double *lo, double *hi, uint64_t cap, uint64_t *n_runs);
hge_status hge_sim_lines(const double *v, uint32_t n_dim, uint64_t n, uint64_t stride, const int64_t *segs,
                         uint64_t n_segs, double tol, uint8_t *is_line);
hge_status hge_sim_dac(const double *v, uint32_t n_dim, uint64_t n, uint64_t stride, const double *lim_lo,
                       const double *lim_hi, double lsb, const double *code_lo, const double *code_hi, double *out,
                       uint64_t out_stride);
hge_status hge_sim_chain(const double *x, uint64_t n, int filter, double b0, double alpha, double z0, int delay,
                         double c1, double frac, double range, double lsb, double *out);
"""
SOURCE_SIM = """
#include "hge_sim_taylor.h"
#include "hge_sim_ramp.h"
#include "hge_sim_runs.h"
#include "hge_sim_dac.h"
#include "hge_sim_chain.h"
"""
# ---- end of the simspeed block ----


# ---- gradspeed (session 5): K windows of one plan in one call (csrc/host/hge_lockin_host.h) ----
CDEF_WINDOWS = """
#define HGE_REFS_NONE ...
#define HGE_REFS_ROWS ...
#define HGE_REFS_LANES ...
#define HGE_REFS_PACKED ...
#define HGE_REFS_SCALED ...
hge_status hge_host_bw3_windows(const hge_bw3_coeffs_t *coeffs, hge_lockin_bw3_term_t *terms, uint32_t n_terms,
                                const uint32_t *steps, const uint32_t *phases, const int32_t *x, uint32_t n,
                                uint32_t n_windows, const int32_t *dcs, const void *refs, uint32_t layout,
                                uint32_t stride, const hge_host_opts_t *opts, int32_t *out_i, int32_t *out_q);
hge_status hge_host_boxcar_windows(hge_lockin_boxcar_term_t *terms, uint32_t n_terms, const uint32_t *steps,
                                   const uint32_t *phases, const int32_t *x, uint32_t n, uint32_t n_windows,
                                   const int32_t *dcs, const void *refs, uint32_t layout, uint32_t stride,
                                   const hge_host_opts_t *opts, int64_t *out_i, int64_t *out_q);
hge_status hge_host_codes(const double *x, uint32_t n_windows, uint32_t n, double full_scale, int32_t *codes,
                          double *scale, int32_t *dcs, uint32_t isa);
hge_status hge_host_fundamentals(const double *volts, uint64_t row_stride, const uint32_t *rows, uint32_t m,
                                 const uint64_t *starts, uint32_t n_windows, uint32_t n, double lsb,
                                 const double *ps, const double *pc, double *out_s, double *out_c);
"""
# ---- end of gradspeed block ----


# ---- hopspeed (session 6): the hopping network's Newton solve and gradient (csrc/host/hge_hop_solve.h) ----
CDEF_HOP = """
#define HGE_HOP_MAX_SITES ...
typedef struct { uint32_t n_sites; ...; } hge_hop_t;
uint64_t hge_hop_work_doubles(uint32_t n_sites);
hge_status hge_hop_init(hge_hop_t *s, uint32_t n_sites, const double *g_ss, const double *g_st, const double *c,
                        const double *E, double V0, double V_T, double floor, double delta, double tol,
                        uint32_t max_iter);
hge_status hge_hop_process(const hge_hop_t *s, const double *V, uint64_t n_pts, uint64_t v_stride,
                           const double *phi0, double *I, double *G, uint64_t g_stride, double *phi,
                           double *dphi, double *work, uint64_t work_len, uint64_t *n_done);
hge_status hge_hop_tensors(const hge_hop_t *s, const double *C, uint64_t n_cen, uint64_t c_stride, double h,
                           double *I, double *G, uint64_t g_stride, double *H, double *T, double *work,
                           uint64_t work_len, uint64_t *n_done);
hge_status hge_hop_reset(hge_hop_t *s);
"""
SOURCE_HOP = """
#include "hge_hop_solve.h"
"""
# ---- end of the hopspeed block ----


# ---- gradspeed (session 6): the surrogate's derivatives at one centre (csrc/host/hge_sim_tensors.h) ----
CDEF_TENSORS = """
#define HGE_SIM_TENSORS_MAX_DIM ...
uint64_t hge_sim_tensors_work(uint32_t n_s, uint32_t n_p, uint32_t n_e);
hge_status hge_sim_tensors(const double *W1, const double *b1, const double *W2, const double *b2,
                           const double *c, double scale, uint32_t n_s, uint32_t n_p, uint32_t n_e,
                           const double *centre, double *work, uint64_t n_work, double *I, double *g,
                           double *H, double *T);
"""
SOURCE_TENSORS = """
#include "hge_sim_tensors.h"
"""
# ---- end of gradspeed session-6 block ----


# ---- gradspeed3 (session 7): the stderr's noise power laws at the lock-in's bins (csrc/host/hge_host_psdlaw.h),
# the noise's second-order sections (csrc/host/hge_sim_sos.h) ----
CDEF_PSDLAW = """
hge_status hge_psdlaw(const double *lf, const double *lf2, uint64_t n, double icpt, double slope, double c00,
                      double c01, double c11, double *out);
hge_status hge_psdlaw_exp(const double *x, uint64_t n, double *out);
hge_status hge_sim_sos(const double *sos, uint32_t n_sections, double *zi, const double *x, uint64_t n, double *y);
"""
SOURCE_PSDLAW = """
#include "hge_host_psdlaw.h"
#include "hge_sim_sos.h"
"""
# ---- end of gradspeed3 session-7 block ----


ffibuilder = FFI()
ffibuilder.cdef(CDEF + CDEF_TRAINER + CDEF_SIM + CDEF_WINDOWS + CDEF_HOP + CDEF_TENSORS + CDEF_PSDLAW)
ffibuilder.set_source(
    "hge_embedded._hge_core",
    SOURCE + SOURCE_TRAINER + SOURCE_SIM + SOURCE_HOP + SOURCE_TENSORS + SOURCE_PSDLAW,
    # csrc/*.c is the portable core (also the firmware's); csrc/host/*.c the host-only
    # fast paths (threads, runtime ISA dispatch, reference cache).
    sources=[str(p.relative_to(ROOT)) for p in sorted(CSRC.glob("*.c")) + sorted((CSRC / "host").glob("*.c"))],
    include_dirs=[str(CSRC.relative_to(ROOT)), str((CSRC / "host").relative_to(ROOT))],
    extra_link_args=["-pthread"],
    # Python's own CFLAGS carry -fwrapv (signed overflow defined as wrapping);
    # -fno-wrapv after it restores C's rules, so the host tests run the same C the
    # microcontroller runs (a signed overflow stays undefined, and UBSan in
    # .ci/run can see it). tests/test_build_flags.py checks it took effect.
    extra_compile_args=["-std=c99", "-O2", "-Wall", "-Wextra", "-fno-wrapv", "-pthread"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)

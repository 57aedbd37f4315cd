"""cffi out-of-line build of the C core in csrc/ into ``hge_embedded._hge_core``."""
import pathlib

from cffi import FFI

ROOT = pathlib.Path(__file__).resolve().parents[1]
CSRC = ROOT / "csrc"

CDEF = """
typedef int... int32_t;
typedef int... int64_t;
typedef int... uint32_t;
typedef int... int16_t;
typedef enum { HGE_OK = 0, HGE_ERR_NULL = -1, HGE_ERR_SIZE = -2, HGE_ERR_FREQ = -3,
               HGE_ERR_TERMINALS = -4, HGE_ERR_RANGE = -5, HGE_ERR_COEF = -6 } hge_status;
#define HGE_MAX_TERMINALS ...
#define HGE_BOXCAR_MAX_SAMPLES ...
#define HGE_MEAN_MAX_SAMPLES ...
#define HGE_SINE_TABLE_SIZE ...
#define HGE_SINE_AMPLITUDE ...
#define HGE_MIXER_SHIFT ...
extern const int32_t hge_sine_table[];

typedef struct { uint32_t phase; uint32_t step; } hge_nco_t;
hge_status hge_nco_init(hge_nco_t *nco, uint32_t step, uint32_t phase);
int32_t hge_sin_q22_exported(uint32_t phase);

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

hge_status hge_update_init(hge_update_t *u, const int32_t *w_min, const int32_t *w_max,
                           uint32_t n_electrodes, int32_t eta, uint32_t shift);
hge_status hge_update_accumulate(const hge_update_t *u, int64_t *g, const int32_t *dEdI,
                                 const int32_t *dIdV, uint32_t n_points);
hge_status hge_update_process(const hge_update_t *u, int32_t *w, const int64_t *g);
"""

SOURCE = """
#include "hge.h"
/* hge_sin_q22 is static inline in the header; give the binding a real symbol. */
static int32_t hge_sin_q22_exported(uint32_t phase) { return hge_sin_q22(phase); }
"""


# ---- issue 13: the on-device trainer (csrc/hge_fixmath, hge_corrsig, hge_synth, hge_trainer) ----
# Kept apart from the lock-in declarations above so the two can change independently.
CDEF_TRAINER = """
typedef int... uint8_t;
typedef int... uint64_t;
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
# ---- end of issue 13 block ----

ffibuilder = FFI()
ffibuilder.cdef(CDEF + CDEF_TRAINER)
ffibuilder.set_source(
    "hge_embedded._hge_core",
    SOURCE + SOURCE_TRAINER,
    sources=[str(p.relative_to(ROOT)) for p in sorted(CSRC.glob("*.c"))],
    include_dirs=[str(CSRC.relative_to(ROOT))],
    extra_compile_args=["-std=c99", "-O2", "-Wall", "-Wextra"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)

/*
 * hge_trainer.h - the whole HGE training loop as a state machine on the
 * device: synthesis, streaming DC removal, integrate-and-dump lock-in, dI/dV,
 * corrsig loss derivative, chain rule and update. No malloc, libm or floating
 * point; caller-owned memory.
 *
 * Schedule (sample by sample, identical on the DAC and the ADC side):
 *   per iteration, per data point k: ramp (n_ramp samples, never demodulated)
 *   -> settle (n_settle: their mean is the DC level removed before mixing)
 *   -> window (n_window: integrate-and-dump lock-in and the output level y_k);
 *   after the last window the DAC holds the last point (perturbation running)
 *   until the main loop has made the update, then the next iteration ramps.
 *   When training stops, the DAC ramps every electrode to code 0 (0 V) without
 *   perturbation and stays there.
 * Every control electrode m carries amp[m] codes at phase n * steps[m] (n the
 * sample index since init, mod 2^32); at each window start the lock-in is reset
 * to those same phases, so reference and perturbation never drift apart.
 *
 * Window end (O(M), in the ADC context): with out_i, out_q the lock-in's Q22
 * sums over N = n_window samples,
 *   X8   = round(round(out_i / N) / 2^14)         Q8 codes (x A_r / 2^22), sat int32
 *   dIdV = round((X8 cal_i[m] + Y8 cal_q[m]) / 2^16)   Q16 ADC codes per DAC
 *          code, sat int32; cal = 2 (cos, sin)(arg H) / (|H| a_m) 2^24 / (1 - 2^-22),
 *          H the chain's calibrated gain, a_m the applied amplitude (codes)
 *   y_k  = round(sum x / N), x saturated to 24 bits  (the window's level)
 * Integrate-and-dump has exactly unit gain at the window's end (no settling
 * gain to divide out) and needs every f_m on the 1/T grid (whole periods in the
 * window): then channels do not cross-talk and the DC left after removal,
 * e, moves X by e * sum(ref) / N, bounded in trainer_fixed.dc_leak_bound.
 * With filter = HGE_TRAINER_BW3 the window runs through the Butterworth lock-in
 * instead (n_window a multiple of 8; coefficients copied into the instance):
 *   X8 = sat32(out_i * 4)   (Q6 -> the same Q8 scale, times the filter's gain at T)
 * and the host folds 1 / gain into cal_i, cal_q (the precomputed correction).
 * Restriction: no crosstalk solve on the device; the plan's spacing (>= 4/T,
 * product guards) is what keeps channels apart, as in the paper.
 *
 * Iteration end (main loop, hge_trainer_poll): corrsig (hge_corrsig.h) gives
 * E (Q24) and dE/dy_k = q_k 2^-e; the chain rule g = sum_k q_k dIdV_k
 * (hge_update_accumulate, Q(e + 16) per DAC code) is rescaled to Q32
 * (hge_shift_round, saturating) and hge_update_process steps the controls:
 *   w <- clamp(w - round(eta g / 2^shift), w_min, w_max).
 * Training stops when E < stop_loss (no update) or after max_iter updates
 * (then one more measurement gives the final loss and outputs).
 *
 * Contexts: hge_trainer_dac_block and hge_trainer_adc_block (or the combined
 * hge_trainer_block) may run in a DMA interrupt: O(n * n_dac) integer work per
 * block plus O(M) divisions at a window end. hge_trainer_poll runs in the main
 * loop: O(K * M) plus the loss. They share three flags, each written by one
 * side only (measured: ADC -> main; ready: main -> DAC; iter_start: DAC ->
 * ADC); the ADC side writes y and dIdV only before it sets measured, the main
 * loop writes w only before it sets ready. On a core with caches or a
 * reordering bus, put a barrier before each flag write.
 *
 * Memory: the configuration (limits, steps, amplitudes, calibration, rates)
 * is copied into the instance at init. The task tables (inputs, targets) are
 * read-only caller memory that must outlive the instance and not change (a
 * const table in flash on a board). The workspace (hge_trainer_workspace_words
 * int32 words: y, dIdV and q per data point) is caller-owned and written by
 * the trainer only.
 */
#ifndef HGE_TRAINER_H
#define HGE_TRAINER_H

#include "hge_corrsig.h"
#include "hge_lockin.h"
#include "hge_synth.h"
#include "hge_update.h"

#define HGE_TRAINER_MAX_DAC 8u
#define HGE_TRAINER_MAX_CTL 8u
#define HGE_DIDV_FRAC 16
#define HGE_GRAD_FRAC 32
#define HGE_TRAINER_BOXCAR 0u
#define HGE_TRAINER_BW3 1u

typedef struct {
    uint32_t n_dac;                        /* DAC channels (electrodes), 1..8 */
    uint32_t n_ctl;                        /* perturbed control electrodes M, 1..8 */
    uint32_t n_in;                         /* input electrodes, 0..8 */
    uint32_t n_points;                     /* data points K, 2..HGE_CORRSIG_MAX_POINTS */
    uint8_t ctl[HGE_TRAINER_MAX_CTL];      /* DAC channel of each control */
    uint8_t in[HGE_TRAINER_MAX_DAC];       /* DAC channel of each input */
    int32_t dac_lo[HGE_TRAINER_MAX_DAC];   /* channel limits, codes (nothing leaves them) */
    int32_t dac_hi[HGE_TRAINER_MAX_DAC];
    int32_t w_min[HGE_TRAINER_MAX_CTL];    /* control range, codes */
    int32_t w_max[HGE_TRAINER_MAX_CTL];
    int32_t w0[HGE_TRAINER_MAX_CTL];       /* initial controls, codes, in [w_min, w_max] */
    uint32_t steps[HGE_TRAINER_MAX_CTL];   /* phase steps, (0, 2^31) */
    int32_t amp[HGE_TRAINER_MAX_CTL];      /* perturbation amplitude, codes, 1..511 */
    int32_t cal_i[HGE_TRAINER_MAX_CTL];    /* Q24, see above */
    int32_t cal_q[HGE_TRAINER_MAX_CTL];
    uint32_t n_ramp, n_settle, n_window;   /* samples; n_window 1..2^17 */
    int32_t scale;                         /* corrsig scale, ADC codes, >= 2^12 */
    int64_t stop_loss;                     /* Q24 */
    uint32_t max_iter;                     /* updates at most (0: measure once) */
    int32_t eta;                           /* update rate, with shift: codes per Q32 unit of g */
    uint32_t shift;
    uint32_t filter;                       /* HGE_TRAINER_BOXCAR or HGE_TRAINER_BW3 */
    hge_bw3_coeffs_t coeffs;               /* Butterworth coefficients (bw3 only; copied) */
} hge_trainer_config_t;

typedef struct {
    hge_trainer_config_t cfg;
    const int32_t *inputs;   /* n_points x n_in codes */
    const uint8_t *targets;  /* n_points, 0/1 */
    int32_t *y;              /* workspace: n_points */
    int32_t *didv;           /* workspace: n_points x n_ctl, Q16 */
    int32_t *q;              /* workspace: n_points, dE/dy mantissas */
    int32_t w[HGE_TRAINER_MAX_CTL];
    hge_update_t update;
    hge_lockin_boxcar_t lockin;
    hge_lockin_boxcar_term_t terms[HGE_TRAINER_MAX_CTL];
    hge_lockin_bw3_t bw3;
    hge_lockin_bw3_term_t bw3_terms[HGE_TRAINER_MAX_CTL];
    uint32_t phase[HGE_TRAINER_MAX_CTL]; /* DAC-side phase accumulators (the one phase source) */
    /* DAC side */
    uint32_t dac_pos, s_state, s_point, s_count;
    int32_t s_from[HGE_TRAINER_MAX_DAC], s_bias[HGE_TRAINER_MAX_DAC];
    int64_t s_step[HGE_TRAINER_MAX_DAC], s_acc[HGE_TRAINER_MAX_DAC];
    /* ADC side */
    uint32_t adc_pos, a_state, a_point, a_count, a_seq;
    int64_t a_sum;
    /* shared flags */
    volatile uint32_t iter_start, started, measured, ready, finished; /* started: iteration sequence number */
    /* results */
    uint32_t iteration;       /* updates made */
    uint32_t measurements;    /* iterations measured (losses computed) */
    int64_t loss;             /* last E, Q24 */
    int32_t exponent;         /* last dE/dy exponent */
    hge_status error;         /* first error of poll (corrsig), else HGE_OK */
} hge_trainer_t;

/* int32 words of workspace for K points and M controls: K (2 + M). */
uint32_t hge_trainer_workspace_words(uint32_t n_points, uint32_t n_ctl);

/* Validate and copy cfg; point at the tables and the workspace (words as
 * above). Errors: HGE_ERR_NULL, HGE_ERR_SIZE (counts, n_window), HGE_ERR_TERMINALS,
 * HGE_ERR_FREQ (a step), HGE_ERR_RANGE (a channel index, limits, amp, w0,
 * scale, a target, an input code outside its channel's limits, eta/shift). */
hge_status hge_trainer_init(hge_trainer_t *tr, const hge_trainer_config_t *cfg, const int32_t *inputs,
                            const uint8_t *targets, int32_t *workspace, uint32_t workspace_words);

/* Next n samples of DAC codes, interleaved: codes[i * n_dac + e]. */
hge_status hge_trainer_dac_block(hge_trainer_t *tr, int32_t *codes, uint32_t n);

/* The n ADC codes measured at the next n generated samples (in order).
 * HGE_ERR_SIZE if that is more than have been generated (nothing consumed). */
hge_status hge_trainer_adc_block(hge_trainer_t *tr, const int32_t *x, uint32_t n);

/* DMA double-buffer form: consume adc_in (n samples), then generate dac_out (n). */
hge_status hge_trainer_block(hge_trainer_t *tr, const int32_t *adc_in, int32_t *dac_out, uint32_t n);

/* Main loop: if an iteration has been measured, compute its loss and update.
 * Returns 1 when it did (tr->loss, tr->y are that iteration's), 0 when there
 * was nothing to do, or a negative status (corrsig refused the outputs:
 * training stops, the DAC ramps to 0). */
int hge_trainer_poll(hge_trainer_t *tr);

/* 1 once training has stopped and the DAC has reached code 0. */
int hge_trainer_done(const hge_trainer_t *tr);

#endif /* HGE_TRAINER_H */

/*
 * trainer_main.c - the closed loop on the emulator: the whole trainer (csrc/hge_trainer
 * and what it uses) against an integer device model (toy_device, the same arithmetic as
 * hge_embedded/reference/toy_device.py) behind the board boundary (hge_board.h). Prints
 * the loss of every iteration, checks the trajectory word for word against the Python
 * model's (trainer_config.h), and PASS train-<target>: <task> found in N iterations.
 * TIMING: instructions per sample of the trainer alone (device model excluded), counted
 * with SysTick calibrated against a loop of known length (QEMU -icount shift=0).
 */
#include "hge_board.h"
#include "semihost.h"
#include "trainer_config.h"

#ifndef TARGET_NAME
#define TARGET_NAME "unknown"
#endif

#define N_DAC 7u
#define N_CTL 5u

static uint32_t toy_state;

static uint32_t xorshift32(uint32_t s)
{
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    return s;
}

/* y = (a b D) >> 16 + (a B + b C) >> 4 + (e . w) << 6 + noise, clamped to 24 bits. */
static int32_t toy_sample(const int32_t *codes)
{
    static const uint8_t ctl[N_CTL] = {1, 2, 3, 4, 6};
    int64_t a = codes[0], b = codes[5], D = 0, B = toy_coef[15], C = toy_coef[16], E = 0, y;
    uint32_t m;
    for (m = 0; m < N_CTL; ++m) {
        int64_t w = codes[ctl[m]];
        D += toy_coef[m] * w;
        B += toy_coef[5u + m] * w;
        C += toy_coef[10u + m] * w;
        E += toy_coef[17u + m] * w;
    }
    y = ((a * b * D) >> 16) + ((a * B + b * C) >> 4) + E * 64;
    toy_state = xorshift32(toy_state);
    y += (int64_t)(toy_state >> 20) - 2048;
    return (int32_t)hge_clamp64(y, HGE_SAMPLE_MIN, HGE_SAMPLE_MAX);
}

/* The board port: DAC frames go to the device model, ADC codes come back aligned. */
static int32_t pending[TRAIN_BLOCK];
static hge_status port_dac_write(void *ctx, const int32_t *codes, uint32_t n)
{
    uint32_t i;
    (void)ctx;
    for (i = 0; i < n; ++i) {
        pending[i] = toy_sample(codes + i * N_DAC);
    }
    return HGE_OK;
}

static hge_status port_adc_read(void *ctx, int32_t *x, uint32_t n)
{
    uint32_t i;
    (void)ctx;
    for (i = 0; i < n; ++i) {
        x[i] = pending[i];
    }
    return HGE_OK;
}

static uint32_t mismatches;
static void port_iteration(void *ctx, const hge_trainer_t *tr)
{
    uint32_t k = tr->measurements - 1u;
    (void)ctx;
    sh_puts("LOSS " TARGET_NAME " ");
    sh_put_i64(k);
    sh_puts(" ");
    sh_put_i64(tr->loss);
    sh_puts("\n");
    if (k >= TRAIN_N_EXPECTED || tr->loss != train_expected_loss[k]) {
        mismatches += 1u;
    }
}

/* SysTick, and a calibration loop of known instruction count. */
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
static uint64_t ticks;
static uint32_t t_start;
static void tick_start(void) { t_start = SYST_CVR; }
static void tick_stop(void) { ticks += (t_start - SYST_CVR) & 0x00FFFFFFu; }

/* Two instructions per pass (subs, bne): 16384 passes = 32768 instructions. */
static uint32_t calibrate_ticks_per_64k(void)
{
    uint32_t n = 16384u, t0, t1;
    t0 = SYST_CVR;
    __asm__ volatile(".syntax unified\n1: subs %0, %0, #1\n bne 1b\n" : "+l"(n) : : "cc");
    t1 = SYST_CVR;
    return (t0 - t1) & 0x00FFFFFFu;
}

static hge_trainer_t tr;

/* Bytes of the instance per DAC channel and per control, from the sizes of its arrays
 * (capacity HGE_TRAINER_MAX_DAC / _CTL): config limits and input map, ramp state; and
 * config map, range, start, step, amplitude, calibration, controls, both lock-in terminals, phase. */
#define PER_DAC_BYTES ((sizeof tr.cfg.in + sizeof tr.cfg.dac_lo + sizeof tr.cfg.dac_hi + sizeof tr.s_from + \
                        sizeof tr.s_bias + sizeof tr.s_step + sizeof tr.s_acc) / HGE_TRAINER_MAX_DAC)
#define PER_CTL_BYTES ((sizeof tr.cfg.ctl + sizeof tr.cfg.w_min + sizeof tr.cfg.w_max + sizeof tr.cfg.w0 + \
                        sizeof tr.cfg.steps + sizeof tr.cfg.amp + sizeof tr.cfg.cal_i + sizeof tr.cfg.cal_q + \
                        sizeof tr.w + sizeof tr.terms + sizeof tr.bw3_terms + sizeof tr.phase) / HGE_TRAINER_MAX_CTL)
static int32_t workspace[4u * (2u + N_CTL)];
static int32_t dac_buf[TRAIN_BLOCK * N_DAC];
static int32_t adc_buf[TRAIN_BLOCK];

int main(void)
{
    hge_board_t board = {0, port_dac_write, port_adc_read, port_iteration};
    hge_status st;
    uint32_t k, n1 = 0, cal, found;
    int64_t s1 = 0, s0 = 0;
    SYST_RVR = 0x00FFFFFFu;
    SYST_CVR = 0u;
    SYST_CSR = 5u;
    cal = calibrate_ticks_per_64k();
    toy_state = toy_state0;
    st = hge_trainer_init(&tr, &train_cfg, train_inputs, train_targets, workspace,
                          (uint32_t)(sizeof workspace / sizeof workspace[0]));
    if (st != HGE_OK) {
        sh_puts("FAIL train-" TARGET_NAME ": init\n");
        return 1;
    }
    /* hge_board_run, with the trainer's share timed (the device model is not). */
    while (!hge_trainer_done(&tr)) {
        int r;
        tick_start();
        (void)hge_trainer_dac_block(&tr, dac_buf, TRAIN_BLOCK);
        tick_stop();
        (void)board.dac_write(board.ctx, dac_buf, TRAIN_BLOCK);
        (void)board.adc_read(board.ctx, adc_buf, TRAIN_BLOCK);
        tick_start();
        (void)hge_trainer_adc_block(&tr, adc_buf, TRAIN_BLOCK);
        r = hge_trainer_poll(&tr);
        tick_stop();
        if (r == 1) {
            board.on_iteration(board.ctx, &tr);
        } else if (r < 0) {
            sh_puts("FAIL train-" TARGET_NAME ": corrsig refused the outputs\n");
            return 1;
        }
    }
    for (k = 0; k < 4u; ++k) {
        n1 += train_targets[k];
        if (train_targets[k]) {
            s1 += tr.y[k];
        } else {
            s0 += tr.y[k];
        }
    }
    /* Found: the threshold halfway between the class means separates all four
     * (tasks.gate_found): y_k vs (s1/n1 + s0/n0)/2, scaled by 2 n1 n0. */
    found = 1u;
    for (k = 0; k < 4u; ++k) {
        int64_t lhs = 2 * (int64_t)n1 * (int64_t)(4u - n1) * tr.y[k];
        int64_t thr = s1 * (int64_t)(4u - n1) + s0 * (int64_t)n1;
        int above = lhs > thr;
        int below = lhs < thr;
        if (train_targets[k] ? !above : !below) {
            found = 0u;
        }
    }
    if (!found) { /* either polarity, as tasks.gate_found */
        found = 1u;
        for (k = 0; k < 4u; ++k) {
            int64_t lhs = 2 * (int64_t)n1 * (int64_t)(4u - n1) * tr.y[k];
            int64_t thr = s1 * (int64_t)(4u - n1) + s0 * (int64_t)n1;
            if (train_targets[k] ? !(lhs < thr) : !(lhs > thr)) {
                found = 0u;
            }
        }
    }
    sh_puts("TIMING train-" TARGET_NAME " instructions per sample (whole trainer, 7 DAC, 5 controls): ");
    sh_put_i64((int64_t)(ticks * 32768u / (cal ? cal : 1u) / tr.dac_pos));
    sh_puts("\nSTATE train-" TARGET_NAME " trainer bytes ");
    sh_put_i64((int64_t)sizeof(hge_trainer_t));
    sh_puts(" per DAC channel ");
    sh_put_i64((int64_t)PER_DAC_BYTES);
    sh_puts(" per control ");
    sh_put_i64((int64_t)PER_CTL_BYTES);
    sh_puts(" workspace bytes per point ");
    sh_put_i64((int64_t)(4u * (2u + N_CTL)));
    sh_puts(" samples ");
    sh_put_i64(tr.dac_pos);
    sh_puts("\n");
    if (mismatches != 0u || tr.measurements != TRAIN_N_EXPECTED || tr.iteration != TRAIN_EXPECTED_ITERATIONS) {
        sh_puts("FAIL train-" TARGET_NAME ": trajectory differs from the Python model\n");
        return 1;
    }
    if (!found) {
        sh_puts("FAIL train-" TARGET_NAME ": " TRAIN_TASK " not found\n");
        return 1;
    }
    sh_puts("PASS train-" TARGET_NAME ": " TRAIN_TASK " found in ");
    sh_put_i64(tr.iteration);
    sh_puts(" iterations (loss trajectory identical to the Python model)\n");
    return 0;
}

/* hge_trainer.c - see hge_trainer.h for the schedule, formats and contexts. */
#include "hge_trainer.h"

enum { S_RAMP, S_SETTLE, S_WINDOW, S_HOLD, S_FINAL, S_STOP };
enum { A_WAIT, A_RAMP, A_SETTLE, A_WINDOW };

static int32_t sat24(int32_t x)
{
    return x < HGE_SAMPLE_MIN ? (int32_t)HGE_SAMPLE_MIN : (x > HGE_SAMPLE_MAX ? (int32_t)HGE_SAMPLE_MAX : x);
}

static int32_t sat32(int64_t v)
{
    return (int32_t)hge_clamp64(v, -(int64_t)0x7FFFFFFF - 1, (int64_t)0x7FFFFFFF);
}

uint32_t hge_trainer_workspace_words(uint32_t n_points, uint32_t n_ctl)
{
    return n_points * (2u + n_ctl);
}

static hge_status check_config(const hge_trainer_config_t *c, const int32_t *inputs, const uint8_t *targets)
{
    uint32_t e, m, k, used = 0, n1 = 0;
    if (c->n_dac == 0u || c->n_ctl == 0u || c->n_points < 2u || c->n_window == 0u) {
        return HGE_ERR_SIZE;
    }
    if (c->n_dac > HGE_TRAINER_MAX_DAC || c->n_ctl > HGE_TRAINER_MAX_CTL || c->n_in > HGE_TRAINER_MAX_DAC ||
        c->n_ctl + c->n_in > c->n_dac) {
        return HGE_ERR_TERMINALS;
    }
    if (c->n_points > HGE_CORRSIG_MAX_POINTS || c->n_window > HGE_BOXCAR_MAX_SAMPLES ||
        c->n_settle > HGE_MEAN_MAX_SAMPLES) {
        return HGE_ERR_SIZE;
    }
    for (e = 0; e < c->n_dac; ++e) {
        if (c->dac_lo[e] > c->dac_hi[e] || c->dac_lo[e] < -HGE_SYNTH_MAX_CODE || c->dac_hi[e] > HGE_SYNTH_MAX_CODE) {
            return HGE_ERR_RANGE;
        }
    }
    for (m = 0; m < c->n_ctl + c->n_in; ++m) {
        uint32_t ch = m < c->n_ctl ? c->ctl[m] : c->in[m - c->n_ctl];
        if (ch >= c->n_dac || (used & (1u << ch)) != 0u) {
            return HGE_ERR_RANGE;
        }
        used |= 1u << ch;
    }
    for (m = 0; m < c->n_ctl; ++m) {
        uint32_t ch = c->ctl[m];
        if (c->steps[m] == 0u || c->steps[m] >= 0x80000000u) {
            return HGE_ERR_FREQ;
        }
        if (c->amp[m] < 1 || c->amp[m] > HGE_SYNTH_MAX_AMP || c->w_min[m] > c->w_max[m] ||
            c->w0[m] < c->w_min[m] || c->w0[m] > c->w_max[m] ||
            (int64_t)c->w_min[m] - c->amp[m] < c->dac_lo[ch] || (int64_t)c->w_max[m] + c->amp[m] > c->dac_hi[ch]) {
            return HGE_ERR_RANGE;
        }
    }
    if (c->filter > HGE_TRAINER_BW3 || (c->filter == HGE_TRAINER_BW3 && c->n_window % HGE_BW3_DECIMATION != 0u)) {
        return HGE_ERR_RANGE;
    }
    if (c->scale < 4096 || c->shift > 62u) {
        return HGE_ERR_RANGE;
    }
    for (k = 0; k < c->n_points; ++k) {
        if (targets[k] > 1u) {
            return HGE_ERR_RANGE;
        }
        n1 += targets[k];
        for (m = 0; m < c->n_in; ++m) {
            int32_t v = inputs[k * c->n_in + m];
            if (v < c->dac_lo[c->in[m]] || v > c->dac_hi[c->in[m]]) {
                return HGE_ERR_RANGE;
            }
        }
    }
    if (n1 == 0u || n1 == c->n_points) {
        return HGE_ERR_RANGE; /* a constant target has no correlation to train */
    }
    return HGE_OK;
}

/* Bias codes of point k: inputs from the table, controls w, others 0 (clamped). */
static void point_bias(const hge_trainer_t *tr, uint32_t k, int32_t *bias)
{
    const hge_trainer_config_t *c = &tr->cfg;
    uint32_t e, m;
    for (e = 0; e < c->n_dac; ++e) {
        bias[e] = hge_synth_clamp(0, c->dac_lo[e], c->dac_hi[e]);
    }
    for (m = 0; m < c->n_in; ++m) {
        bias[c->in[m]] = tr->inputs[k * c->n_in + m];
    }
    for (m = 0; m < c->n_ctl; ++m) {
        bias[c->ctl[m]] = tr->w[m];
    }
}

/* DAC side: enter a state, skipping zero-length ones. */
static void s_enter(hge_trainer_t *tr, uint32_t state)
{
    const hge_trainer_config_t *c = &tr->cfg;
    tr->s_count = 0;
    if (state == S_RAMP && c->n_ramp == 0u) {
        state = S_SETTLE;
    }
    if (state == S_SETTLE && c->n_settle == 0u) {
        state = S_WINDOW;
    }
    if (state == S_FINAL && c->n_ramp == 0u) {
        state = S_STOP;
    }
    tr->s_state = state;
}

static void s_start_ramp(hge_trainer_t *tr, const int32_t *to, uint32_t state)
{
    uint32_t e;
    for (e = 0; e < tr->cfg.n_dac; ++e) {
        tr->s_from[e] = tr->s_bias[e];
        tr->s_step[e] = hge_synth_ramp_step(tr->s_bias[e], to[e], tr->cfg.n_ramp);
        tr->s_acc[e] = 0;
        tr->s_bias[e] = to[e];
    }
    s_enter(tr, state);
}

static void s_start_point(hge_trainer_t *tr, uint32_t k)
{
    int32_t bias[HGE_TRAINER_MAX_DAC];
    tr->s_point = k;
    point_bias(tr, k, bias);
    s_start_ramp(tr, bias, S_RAMP);
}

static void s_start_iteration(hge_trainer_t *tr)
{
    tr->iter_start = tr->dac_pos;
    s_start_point(tr, 0u);
    tr->started = tr->started + 1u; /* iteration sequence number (DAC side writes it) */
}

hge_status hge_trainer_init(hge_trainer_t *tr, const hge_trainer_config_t *cfg, const int32_t *inputs,
                            const uint8_t *targets, int32_t *workspace, uint32_t workspace_words)
{
    hge_status st;
    uint32_t e, m, k;
    if (tr == 0 || cfg == 0 || targets == 0 || workspace == 0 || (inputs == 0 && cfg->n_in != 0u)) {
        return HGE_ERR_NULL;
    }
    st = check_config(cfg, inputs, targets);
    if (st != HGE_OK) {
        return st;
    }
    if (workspace_words < hge_trainer_workspace_words(cfg->n_points, cfg->n_ctl)) {
        return HGE_ERR_SIZE;
    }
    tr->cfg = *cfg; /* the sample path reads only this copy */
    tr->inputs = inputs;
    tr->targets = targets;
    tr->y = workspace;
    tr->q = workspace + cfg->n_points;
    tr->didv = workspace + 2u * cfg->n_points;
    for (k = 0; k < hge_trainer_workspace_words(cfg->n_points, cfg->n_ctl); ++k) {
        workspace[k] = 0;
    }
    for (m = 0; m < cfg->n_ctl; ++m) {
        tr->w[m] = cfg->w0[m];
        tr->phase[m] = 0u;
    }
    st = hge_update_init(&tr->update, tr->cfg.w_min, tr->cfg.w_max, cfg->n_ctl, cfg->eta, cfg->shift);
    if (st == HGE_OK) {
        st = hge_lockin_boxcar_init(&tr->lockin, tr->terms, cfg->n_ctl, tr->cfg.steps, 0);
    }
    if (st == HGE_OK && cfg->filter == HGE_TRAINER_BW3) {
        st = hge_lockin_bw3_init(&tr->bw3, &tr->cfg.coeffs, tr->bw3_terms, cfg->n_ctl, tr->cfg.steps, 0);
    }
    if (st != HGE_OK) {
        return st;
    }
    tr->dac_pos = 0u;
    tr->adc_pos = 0u;
    tr->a_state = A_WAIT;
    tr->a_point = 0u;
    tr->a_count = 0u;
    tr->a_sum = 0;
    tr->started = 0u;
    tr->a_seq = 0u;
    tr->measured = 0u;
    tr->ready = 0u;
    tr->finished = 0u;
    tr->iteration = 0u;
    tr->measurements = 0u;
    tr->loss = 0;
    tr->exponent = 0;
    tr->error = HGE_OK;
    for (e = 0; e < cfg->n_dac; ++e) {
        tr->s_bias[e] = hge_synth_clamp(0, cfg->dac_lo[e], cfg->dac_hi[e]); /* start from 0 V */
    }
    s_start_iteration(tr);
    return HGE_OK;
}

hge_status hge_trainer_dac_block(hge_trainer_t *tr, int32_t *codes, uint32_t n)
{
    const hge_trainer_config_t *c;
    uint32_t i, e, m;
    if (tr == 0 || (codes == 0 && n != 0u)) {
        return HGE_ERR_NULL;
    }
    c = &tr->cfg;
    for (i = 0; i < n; ++i) {
        int32_t *out = codes + (uint64_t)i * c->n_dac;
        int perturb;
        if (tr->s_state == S_HOLD && tr->ready) {
            tr->ready = 0u;
            if (tr->finished) {
                int32_t zero[HGE_TRAINER_MAX_DAC];
                for (e = 0; e < c->n_dac; ++e) {
                    zero[e] = hge_synth_clamp(0, c->dac_lo[e], c->dac_hi[e]);
                }
                s_start_ramp(tr, zero, S_FINAL);
            } else {
                s_start_iteration(tr);
            }
        }
        if (tr->s_state == S_RAMP || tr->s_state == S_FINAL) {
            for (e = 0; e < c->n_dac; ++e) {
                tr->s_acc[e] += tr->s_step[e];
                out[e] = hge_synth_ramp_code(tr->s_from[e], tr->s_acc[e]);
            }
        } else {
            for (e = 0; e < c->n_dac; ++e) {
                out[e] = tr->s_bias[e];
            }
        }
        perturb = tr->s_state != S_FINAL && tr->s_state != S_STOP;
        for (m = 0; m < c->n_ctl; ++m) {
            if (perturb) {
                out[c->ctl[m]] += hge_synth_perturb(c->amp[m], tr->phase[m]);
            }
            tr->phase[m] += c->steps[m];
        }
        for (e = 0; e < c->n_dac; ++e) {
            out[e] = hge_synth_clamp(out[e], c->dac_lo[e], c->dac_hi[e]);
        }
        tr->dac_pos += 1u;
        tr->s_count += 1u;
        switch (tr->s_state) {
        case S_RAMP:
            if (tr->s_count == c->n_ramp) {
                s_enter(tr, S_SETTLE);
            }
            break;
        case S_SETTLE:
            if (tr->s_count == c->n_settle) {
                s_enter(tr, S_WINDOW);
            }
            break;
        case S_WINDOW:
            if (tr->s_count == c->n_window) {
                if (tr->s_point + 1u < c->n_points) {
                    s_start_point(tr, tr->s_point + 1u);
                } else {
                    s_enter(tr, S_HOLD);
                }
            }
            break;
        case S_FINAL:
            if (tr->s_count == c->n_ramp) {
                s_enter(tr, S_STOP);
            }
            break;
        default:
            break;
        }
    }
    return HGE_OK;
}

/* ADC side. */
static void a_enter(hge_trainer_t *tr, uint32_t state)
{
    const hge_trainer_config_t *c = &tr->cfg;
    int64_t settle_sum = tr->a_sum;
    uint32_t from = tr->a_state;
    tr->a_count = 0u;
    tr->a_sum = 0;
    if (state == A_RAMP && c->n_ramp == 0u) {
        state = A_SETTLE;
    }
    if (state == A_SETTLE && c->n_settle == 0u) {
        state = A_WINDOW;
    }
    if (state == A_WINDOW) {
        uint32_t phases[HGE_TRAINER_MAX_CTL];
        uint32_t m;
        int32_t dc = 0;
        if (c->n_settle != 0u && from == A_SETTLE) {
            /* Streaming DC removal: the settle samples' mean (|sum| < 2^47). */
            dc = sat24((int32_t)hge_div_round(settle_sum, (int64_t)c->n_settle));
        }
        /* The same phases the DAC side used at this sample: n * step mod 2^32. */
        for (m = 0; m < c->n_ctl; ++m) {
            phases[m] = tr->adc_pos * c->steps[m];
        }
        if (c->filter == HGE_TRAINER_BW3) {
            (void)hge_lockin_bw3_reset(&tr->bw3, phases);
            (void)hge_lockin_bw3_set_dc(&tr->bw3, dc);
        } else {
            (void)hge_lockin_boxcar_reset(&tr->lockin, phases);
            (void)hge_lockin_boxcar_set_dc(&tr->lockin, dc);
        }
    }
    tr->a_state = state;
}

/* Window end: dI/dV of every control and the output level (formats in the header). */
static void window_end(hge_trainer_t *tr)
{
    const hge_trainer_config_t *c = &tr->cfg;
    int64_t oi[HGE_TRAINER_MAX_CTL], oq[HGE_TRAINER_MAX_CTL];
    uint32_t count, m, k = tr->a_point;
    int64_t n = (int64_t)c->n_window;
    int32_t bi[HGE_TRAINER_MAX_CTL], bq[HGE_TRAINER_MAX_CTL];
    if (c->filter == HGE_TRAINER_BW3) {
        (void)hge_lockin_bw3_output(&tr->bw3, bi, bq);
    } else {
        (void)hge_lockin_boxcar_output(&tr->lockin, oi, oq, &count);
    }
    for (m = 0; m < c->n_ctl; ++m) {
        int64_t x8, y8;
        if (c->filter == HGE_TRAINER_BW3) {
            x8 = sat32((int64_t)bi[m] * 4);
            y8 = sat32((int64_t)bq[m] * 4);
        } else {
            x8 = sat32(hge_shift_round(hge_div_round(oi[m], n), -14));
            y8 = sat32(hge_shift_round(hge_div_round(oq[m], n), -14));
        }
        /* each product < 2^62, so the sum < 2^63 */
        tr->didv[k * c->n_ctl + m] = sat32(hge_shift_round(x8 * c->cal_i[m] + y8 * c->cal_q[m], -16));
    }
    tr->y[k] = (int32_t)hge_div_round(tr->a_sum, n);
}

hge_status hge_trainer_adc_block(hge_trainer_t *tr, const int32_t *x, uint32_t n)
{
    const hge_trainer_config_t *c;
    uint32_t i = 0, j, r;
    if (tr == 0 || (x == 0 && n != 0u)) {
        return HGE_ERR_NULL;
    }
    if (n > tr->dac_pos - tr->adc_pos) {
        return HGE_ERR_SIZE;
    }
    c = &tr->cfg;
    while (i < n) {
        switch (tr->a_state) {
        case A_WAIT:
            if (tr->started != tr->a_seq && tr->adc_pos == tr->iter_start) {
                tr->a_seq = tr->started;
                tr->a_point = 0u;
                a_enter(tr, A_RAMP);
                break;
            }
            /* hold or stop samples: discard up to the next iteration's start */
            r = n - i;
            if (tr->started != tr->a_seq && tr->iter_start - tr->adc_pos < r) {
                r = tr->iter_start - tr->adc_pos;
            }
            i += r;
            tr->adc_pos += r;
            break;
        case A_RAMP:
            r = c->n_ramp - tr->a_count;
            r = r < n - i ? r : n - i;
            i += r;
            tr->adc_pos += r;
            tr->a_count += r;
            if (tr->a_count == c->n_ramp) {
                a_enter(tr, A_SETTLE);
            }
            break;
        case A_SETTLE:
            r = c->n_settle - tr->a_count;
            r = r < n - i ? r : n - i;
            for (j = 0; j < r; ++j) {
                tr->a_sum += sat24(x[i + j]);
            }
            i += r;
            tr->adc_pos += r;
            tr->a_count += r;
            if (tr->a_count == c->n_settle) {
                a_enter(tr, A_WINDOW);
            }
            break;
        default: /* A_WINDOW */
            r = c->n_window - tr->a_count;
            r = r < n - i ? r : n - i;
            for (j = 0; j < r; ++j) {
                tr->a_sum += sat24(x[i + j]);
            }
            if (c->filter == HGE_TRAINER_BW3) {
                (void)hge_lockin_bw3_process(&tr->bw3, x + i, r);
            } else {
                (void)hge_lockin_boxcar_process(&tr->lockin, x + i, r);
            }
            i += r;
            tr->adc_pos += r;
            tr->a_count += r;
            if (tr->a_count == c->n_window) {
                window_end(tr);
                if (tr->a_point + 1u < c->n_points) {
                    tr->a_point += 1u;
                    a_enter(tr, A_RAMP);
                } else {
                    tr->a_state = A_WAIT;
                    tr->measured = 1u; /* y and dIdV are complete */
                }
            }
            break;
        }
    }
    return HGE_OK;
}

hge_status hge_trainer_block(hge_trainer_t *tr, const int32_t *adc_in, int32_t *dac_out, uint32_t n)
{
    hge_status st = hge_trainer_adc_block(tr, adc_in, n);
    return st != HGE_OK ? st : hge_trainer_dac_block(tr, dac_out, n);
}

int hge_trainer_poll(hge_trainer_t *tr)
{
    const hge_trainer_config_t *c;
    hge_corrsig_result_t res;
    hge_status st;
    uint32_t m;
    if (tr == 0) {
        return HGE_ERR_NULL;
    }
    if (!tr->measured) {
        return 0;
    }
    c = &tr->cfg;
    tr->measured = 0u;
    tr->measurements += 1u;
    st = hge_corrsig(tr->y, tr->targets, c->n_points, c->scale, tr->q, &res);
    if (st != HGE_OK) {
        tr->error = st;
        tr->finished = 1u;
        tr->ready = 1u;
        return st;
    }
    tr->loss = res.loss;
    tr->exponent = res.exponent;
    if (res.loss < c->stop_loss || tr->iteration >= c->max_iter) {
        tr->finished = 1u;
    } else {
        int64_t g[HGE_TRAINER_MAX_CTL];
        for (m = 0; m < c->n_ctl; ++m) {
            g[m] = 0;
        }
        (void)hge_update_accumulate(&tr->update, g, tr->q, tr->didv, c->n_points);
        /* g is dE/dw in Q(exponent + 16); the update takes Q32. */
        for (m = 0; m < c->n_ctl; ++m) {
            g[m] = hge_shift_round(g[m], HGE_GRAD_FRAC - res.exponent - HGE_DIDV_FRAC);
        }
        (void)hge_update_process(&tr->update, tr->w, g);
        tr->iteration += 1u;
    }
    tr->ready = 1u; /* w is final for the next iteration */
    return 1;
}

int hge_trainer_done(const hge_trainer_t *tr)
{
    return tr != 0 && tr->finished && tr->s_state == S_STOP && tr->adc_pos == tr->dac_pos;
}

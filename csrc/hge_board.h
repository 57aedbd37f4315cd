/*
 * hge_board.h - the hardware boundary of the on-device trainer: what a board
 * port implements, and the loop that drives the trainer through it.
 *
 * A port supplies three things:
 *   dac_write(ctx, codes, n)  queue n sample frames of n_dac interleaved DAC
 *                             codes for output at fs, in order;
 *   adc_read(ctx, x, n)       return the n ADC codes (24-bit, signed) taken at
 *                             the instants of the n oldest frames written and
 *                             not yet read (a chain delay the port knows in
 *                             whole samples is taken out here);
 *   on_iteration(ctx, tr)     optional, main loop: report a finished iteration.
 * On a board with DMA the same split holds without this loop: the DMA
 * half/complete interrupt calls hge_trainer_block(tr, adc_half, dac_half, n)
 * (interrupt context: synthesis, DC, lock-in, window ends), and the main loop
 * calls hge_trainer_poll (loss, chain rule, update) until hge_trainer_done.
 * The QEMU image (tools/firmware/trainer_main.c, a device model behind
 * dac_write/adc_read) and the host binding (hge_embedded/firmware_trainer.py,
 * device.measure behind them) implement the same boundary.
 */
#ifndef HGE_BOARD_H
#define HGE_BOARD_H

#include "hge_trainer.h"

typedef struct {
    void *ctx;
    hge_status (*dac_write)(void *ctx, const int32_t *codes, uint32_t n);
    hge_status (*adc_read)(void *ctx, int32_t *x, uint32_t n);
    void (*on_iteration)(void *ctx, const hge_trainer_t *tr);
} hge_board_t;

/* Blocking loop: per block of `block` samples, generate DAC codes (dac_buf:
 * block * n_dac words), write them, read the ADC codes (adc_buf: block words),
 * feed them back, poll; until hge_trainer_done. Returns HGE_OK, a port's
 * error, or the trainer's (tr->error). */
hge_status hge_board_run(const hge_board_t *b, hge_trainer_t *tr, int32_t *dac_buf, int32_t *adc_buf,
                         uint32_t block);

#endif /* HGE_BOARD_H */

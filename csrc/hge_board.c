/* hge_board.c - see hge_board.h. */
#include "hge_board.h"

hge_status hge_board_run(const hge_board_t *b, hge_trainer_t *tr, int32_t *dac_buf, int32_t *adc_buf,
                         uint32_t block)
{
    hge_status st;
    if (b == 0 || tr == 0 || dac_buf == 0 || adc_buf == 0 || b->dac_write == 0 || b->adc_read == 0) {
        return HGE_ERR_NULL;
    }
    if (block == 0u) {
        return HGE_ERR_SIZE;
    }
    while (!hge_trainer_done(tr)) {
        int r;
        st = hge_trainer_dac_block(tr, dac_buf, block);
        if (st == HGE_OK) {
            st = b->dac_write(b->ctx, dac_buf, block);
        }
        if (st == HGE_OK) {
            st = b->adc_read(b->ctx, adc_buf, block);
        }
        if (st == HGE_OK) {
            st = hge_trainer_adc_block(tr, adc_buf, block);
        }
        if (st != HGE_OK) {
            return st;
        }
        r = hge_trainer_poll(tr);
        if (r == 1 && b->on_iteration != 0) {
            b->on_iteration(b->ctx, tr);
        }
    }
    return tr->error;
}

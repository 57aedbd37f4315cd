#include "hge_nco.h"

hge_status hge_nco_init(hge_nco_t *nco, uint32_t step, uint32_t phase)
{
    if (nco == 0) {
        return HGE_ERR_NULL;
    }
    if (step == 0u || step >= 0x80000000u) {
        return HGE_ERR_FREQ;
    }
    nco->phase = phase;
    nco->step = step;
    return HGE_OK;
}

/* hge_synth.c - see hge_synth.h. */
#include "hge_synth.h"

int64_t hge_synth_ramp_step(int32_t from, int32_t to, uint32_t n_ramp)
{
    int64_t diff = (int64_t)to - from;
    int64_t mag = (diff < 0 ? -diff : diff) * 65536;
    int64_t step = mag / ((int64_t)n_ramp + 1);
    return diff < 0 ? -step : step;
}

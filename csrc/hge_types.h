/*
 * hge_types.h - status codes, limits and compile-time checks shared by the
 * hge-embedded lock-in core.
 *
 * The core is C99, allocation-free and libm-free. Every object follows one
 * lifecycle: hge_<thing>_init validates and returns HGE_OK or a negative
 * hge_status; hge_<thing>_process runs a block; hge_<thing>_reset clears the
 * state. Caller-owned memory throughout.
 */
#ifndef HGE_TYPES_H
#define HGE_TYPES_H

#include <stdint.h>

typedef enum {
    HGE_OK = 0,
    HGE_ERR_NULL = -1,      /* a required pointer is NULL */
    HGE_ERR_SIZE = -2,      /* a length is zero or exceeds its limit */
    HGE_ERR_FREQ = -3,      /* phase step is 0 (DC) or >= 2^31 (>= fs/2) */
    HGE_ERR_TERMINALS = -4, /* terminal count is 0 or > HGE_MAX_TERMINALS */
    HGE_ERR_RANGE = -5,     /* a value is outside its documented range */
    HGE_ERR_COEF = -6       /* filter coefficients are unstable */
} hge_status;

/* Most terminals one lock-in instance serves. */
#define HGE_MAX_TERMINALS 256u

/* ADC sample codes are signed 24-bit (NI 9202): [-2^23, 2^23 - 1]. */
#define HGE_SAMPLE_MIN (-8388608L)
#define HGE_SAMPLE_MAX (8388607L)

/* Integrate-and-dump accumulates at most 2^17 samples per window, so the
 * 64-bit sums |x * ref| * n < 2^23 * 2^22 * 2^17 = 2^62 cannot overflow. */
#define HGE_BOXCAR_MAX_SAMPLES (131072UL)

/* hge_mean_q0 sums at most 2^24 samples: |sum| < 2^47. */
#define HGE_MEAN_MAX_SAMPLES (16777216UL)

/*
 * The core right-shifts negative values and relies on the result being the
 * floor (arithmetic shift). C99 leaves this implementation-defined, so pin it
 * at compile time: a compiler that does otherwise fails here, not silently.
 */
typedef char hge_check_arithmetic_shift[((-1 >> 1) == -1) ? 1 : -1];
typedef char hge_check_arithmetic_shift64[((((int64_t)-5) >> 1) == -3) ? 1 : -1];

/* Saturate a 64-bit value into [lo, hi]. */
static inline int64_t hge_clamp64(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

#endif /* HGE_TYPES_H */

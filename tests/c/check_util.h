/* check_util.h - what the C check programs share: a seeded xorshift64 uniform draw (the same
 * sequence on every run and platform) and CHECK, which prints the failed condition with its
 * place and makes the calling function return 1. Header-only: each program includes it once. */
#ifndef HGE_TESTS_CHECK_UTIL_H
#define HGE_TESTS_CHECK_UTIL_H

#include <stdint.h>
#include <stdio.h>

static uint64_t rng_state = 88172645463325252ull;

/* Uniform in [0, 1) with 53 random bits (xorshift64, Marsaglia 2003). */
static double uniform(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

#define CHECK(cond)                                                      \
    do {                                                                 \
        if (!(cond)) {                                                   \
            printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);       \
            return 1;                                                    \
        }                                                                \
    } while (0)

#endif

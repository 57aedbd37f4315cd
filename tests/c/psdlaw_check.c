/*
 * psdlaw_check.c - hge_psdlaw and hge_psdlaw_exp under AddressSanitizer/UndefinedBehaviorSanitizer
 * (tests/test_psdlaw.py builds and runs it): every buffer malloc'd to its exact size, every length
 * 0..11 (the four-lane blocks and the tails), arguments beyond +-708 and NaN (libm there), the
 * bound against libm's exp, and the refusals.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "check_util.h"
#include "hge_host_psdlaw.h"

static int lengths(void)
{
    for (uint64_t n = 0; n < 12u; n++) {
        double *x = malloc((n ? n : 1u) * sizeof *x), *x2 = malloc((n ? n : 1u) * sizeof *x2);
        double *out = malloc((n ? n : 1u) * sizeof *out);
        CHECK(x && x2 && out);
        for (uint64_t j = 0; j < n; j++) {
            x[j] = -40.0 + 50.0 * uniform();
            x2[j] = x[j] * x[j];
        }
        if (n > 2u) {
            x[n - 1u] = 800.0;      /* libm: inf */
            x[n - 2u] = NAN;
            x[0] = -720.0;          /* libm: subnormal */
        }
        CHECK(hge_psdlaw_exp(x, n, out) == HGE_OK);
        for (uint64_t j = 0; j < n; j++) {
            const double e = exp(x[j]);
            if (!(fabs(x[j]) <= 708.0)) {
                CHECK((isnan(e) && isnan(out[j])) || e == out[j]);
            } else {
                CHECK(fabs(out[j] / e - 1.0) <= HGE_PSDLAW_EXP_REL + 2.3e-16);
            }
        }
        for (uint64_t j = 0; j < n; j++) {
            x[j] = log(0.625 * (double)(j + 1u));
            x2[j] = x[j] * x[j];
        }
        CHECK(hge_psdlaw(x, x2, n, -11.0, -1.0, 0.01, -0.002, 0.03, out) == HGE_OK);
        for (uint64_t j = 0; j < n; j++) {
            const double e = exp(-11.0 + -1.0 * x[j] - ((0.01 * x2[j] + -0.004 * x[j]) + 0.03) / 2.0);
            CHECK(fabs(out[j] / e - 1.0) <= HGE_PSDLAW_EXP_REL + 2.3e-16);
        }
        CHECK(hge_psdlaw(x, NULL, n, -11.0, -1.0, 0.0, 0.0, 0.0, out) == HGE_OK);
        for (uint64_t j = 0; j < n; j++) {
            CHECK(fabs(out[j] / exp(-11.0 + -1.0 * x[j]) - 1.0) <= HGE_PSDLAW_EXP_REL + 2.3e-16);
        }
        free(x);
        free(x2);
        free(out);
    }
    return 0;
}

static int refusals(void)
{
    double v = 1.0, o = 7.0;
    CHECK(hge_psdlaw_exp(NULL, 1u, &o) == HGE_ERR_NULL);
    CHECK(hge_psdlaw_exp(&v, 1u, NULL) == HGE_ERR_NULL);
    CHECK(hge_psdlaw(NULL, NULL, 1u, 0.0, 1.0, 0.0, 0.0, 0.0, &o) == HGE_ERR_NULL);
    CHECK(hge_psdlaw(&v, NULL, 1u, 0.0, 1.0, 0.0, 0.0, 0.0, NULL) == HGE_ERR_NULL);
    CHECK(o == 7.0);
    CHECK(hge_psdlaw_exp(NULL, 0u, NULL) == HGE_OK);   /* nothing to do */
    return 0;
}

int main(void)
{
    if (lengths() || refusals()) {
        return 1;
    }
    printf("PASS psdlaw\n");
    return 0;
}

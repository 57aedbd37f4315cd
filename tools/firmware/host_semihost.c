/* host_semihost.c - semihost.h on the build machine (stdio), so harness.c and the
 * generated vectors run natively for `make host-check` (strict warnings with gcc and
 * clang, AddressSanitizer and UndefinedBehaviorSanitizer). */
#include <stdio.h>
#include <stdlib.h>

#include "semihost.h"

void sh_puts(const char *s)
{
    (void)fputs(s, stdout);
}

void sh_exit(int ok)
{
    (void)fflush(stdout);
    exit(ok ? EXIT_SUCCESS : EXIT_FAILURE);
}

void sh_put_i64(int64_t v)
{
    (void)printf("%lld", (long long)v);
}

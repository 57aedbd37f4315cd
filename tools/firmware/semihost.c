#include "semihost.h"

static int32_t sh_call(int32_t op, const void *arg)
{
    register int32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void sh_puts(const char *s)
{
    (void)sh_call(0x04, s);
}

void sh_exit(int ok)
{
    /* ADP_Stopped_ApplicationExit makes QEMU exit 0; any other reason exits 1. */
    (void)sh_call(0x18, (const void *)(ok ? 0x20026u : 0x20023u));
    for (;;) {
    }
}

void sh_put_i64(int64_t v)
{
    char buf[24];
    int i = 23;
    uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    buf[i] = '\0';
    do {
        buf[--i] = (char)('0' + (int)(mag % 10u));
        mag /= 10u;
    } while (mag != 0u);
    if (v < 0) {
        buf[--i] = '-';
    }
    sh_puts(&buf[i]);
}

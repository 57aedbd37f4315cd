/* semihost.h - the two ARM semihosting calls the harness needs (QEMU: -semihosting). */
#ifndef SEMIHOST_H
#define SEMIHOST_H
#include <stdint.h>

void sh_puts(const char *s);          /* SYS_WRITE0 */
void sh_exit(int ok);                 /* SYS_EXIT: ApplicationExit (0) or RunTimeErrorUnknown (1) */
void sh_put_i64(int64_t v);           /* decimal, via sh_puts */

#endif

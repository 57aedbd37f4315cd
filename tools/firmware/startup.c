/* startup.c - vector table and reset handler for the MPS2 boards under QEMU. */
#include <stdint.h>

extern uint32_t __stack_top, __data_load, __data_start, __data_end, __bss_start, __bss_end;
int main(void);
void sh_exit(int ok);

void Reset_Handler(void);
void Default_Handler(void);

void Reset_Handler(void)
{
    uint32_t *src = &__data_load;
    uint32_t *dst = &__data_start;
    while (dst < &__data_end) {
        *dst++ = *src++;
    }
    for (dst = &__bss_start; dst < &__bss_end; ++dst) {
        *dst = 0u;
    }
    sh_exit(main() == 0);
}

void Default_Handler(void)
{
    sh_exit(0); /* any fault fails the run */
}

/* Initial stack pointer, then the 15 system exception handlers (reset first). */
typedef void (*handler_t)(void);
typedef struct {
    uint32_t *stack;
    handler_t handlers[15];
} vector_table_t;

__attribute__((section(".vectors"), used)) static const vector_table_t vectors = {
    &__stack_top,
    {Reset_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
     0, 0, 0, 0, Default_Handler, Default_Handler, 0, Default_Handler, Default_Handler},
};

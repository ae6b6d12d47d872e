/* The emulator's clock. */
#include <sys/time.h>

#include "clock.h"
#include "emu_internal.h"

double emu_now(dv_emulator *emu)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec / 1e6 + emu->clock_offset;
}

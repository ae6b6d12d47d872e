#include "interrupt.h"

#include <signal.h>
#include <time.h>

static volatile sig_atomic_t pending = 0;

void dv_interrupt_set(void)
{
    pending = 1;
}

void dv_interrupt_clear(void)
{
    pending = 0;
}

int dv_interrupted(void)
{
    return pending != 0;
}

/* Sleeps in short slices: the signal may be delivered to another thread (the built-in
 * emulator's), which would not cut this thread's nanosleep short. */
int dv_interrupt_sleep(double seconds)
{
    while (seconds > 0 && !pending) {
        double slice = seconds < 0.05 ? seconds : 0.05;
        struct timespec ts = {(time_t)slice, (long)((slice - (double)(time_t)slice) * 1e9)};
        nanosleep(&ts, NULL);
        seconds -= slice;
    }
    return pending != 0;
}

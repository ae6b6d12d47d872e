/* The emulator's clock: real time plus the offset the test hook adds (dv_emulator_advance). */
#ifndef DV_EMU_CLOCK_H
#define DV_EMU_CLOCK_H
#include "emulator.h"

/* Seconds since the epoch as the emulator sees them. Callers hold emu->mu. */
double emu_now(dv_emulator *emu);

#endif

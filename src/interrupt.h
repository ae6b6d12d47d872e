/* The process-wide Ctrl-C flag. The interpreter's SIGINT handler sets it; a transfer in
 * progress and the waits between retries poll it, so a call ends promptly and reports
 * "interrupted" instead of whatever a cut-off answer would have looked like.
 *
 * Offers:
 *   dv_interrupt_set    mark that an interrupt arrived (async-signal-safe)
 *   dv_interrupt_clear  forget it (before running a new chunk)
 *   dv_interrupted      1 when an interrupt is pending
 *   dv_interrupt_sleep  a wait that ends early on an interrupt
 *
 * A signal belongs to the process, not to one connection: this is the one piece of state
 * every connection shares on purpose. */
#ifndef DV_INTERRUPT_H
#define DV_INTERRUPT_H

void dv_interrupt_set(void);
void dv_interrupt_clear(void);
int dv_interrupted(void);

/* Waits seconds, or less when an interrupt arrives; returns 1 when interrupted. */
int dv_interrupt_sleep(double seconds);

#endif

/* One emulator shared by every process that uses the same data directory (the default
 * connection with no DATAVERSE_URL): the first process starts it in the background, later ones
 * find it, and it stops by itself a few seconds after the last of them has gone.
 *
 * Files in the data directory:
 *   emulator.sqlite   the store, owned by the shared emulator alone
 *   emulator.url      "<url>\n<pid>\n" while it serves (written whole, then renamed in place)
 *   emulator.lock     flock'ed exclusively while a process looks for, starts or stops it
 *   emulator.clients  flock'ed shared by every process using it, for as long as it does:
 *                     the emulator stops once it can lock it exclusively for idle_s seconds.
 *                     Locks go with their process, so a killed client holds nothing.
 *   emulator.log      the emulator's stderr
 *
 * Offers:
 *   dv_shared_attach  find or start the shared emulator; returns its URL and a client handle
 *   dv_shared_detach  give the handle back (also what process exit does)
 */
#ifndef DV_EMU_SHARED_H
#define DV_EMU_SHARED_H
#include <stddef.h>

/* Seconds the shared emulator stays up with no client. */
#define DV_SHARED_IDLE_S 3

/* Fills url with the shared emulator's organization URL and *handle with a descriptor that
 * keeps it alive until dv_shared_detach. Returns 0, or -1 with a message in err. */
int dv_shared_attach(const char *dir, char *url, size_t urlsz, int *handle, char *err,
                     size_t errlen);
void dv_shared_detach(int handle);

#endif

/* Checkpoints a WAL-mode SQLite database on a thread of its own, off the request path.
 * Connections attached to it stop checkpointing in their commits (SQLite's default, which
 * makes every thousandth writer copy the WAL into the database and fsync it before it can
 * answer) and report the WAL's size after each commit instead; past `pages` frames the
 * thread copies the WAL with PASSIVE checkpoints, which neither wait for nor block readers
 * and writers. Past `hard_pages` it copies the rest with the writers held (the quiesce
 * callbacks): a WAL copied to its end is rewound by the next writer, while one that writers
 * keep appending to is never copied to its end and only grows (to 680 MB in 32,000 creates
 * from 8 clients, before). */
#ifndef DV_EMU_CHECKPOINT_H
#define DV_EMU_CHECKPOINT_H
#include <sqlite3.h>
#include <stddef.h>

typedef struct emu_checkpointer emu_checkpointer;

typedef struct {
    int pages;      /* a checkpoint is due past this many WAL frames */
    int hard_pages; /* ... and finished with the writers held past this many */
    void (*hold_writers)(void *ud);
    void (*release_writers)(void *ud);
    void *ud;
} emu_ckpt_opts;

/* Opens its own connection to path and starts the thread; NULL with a message in err. */
emu_checkpointer *ckpt_start(const char *path, const emu_ckpt_opts *o, char *err, size_t errlen);
/* Routes db's commits to k (turns db's automatic checkpoints off). */
void ckpt_attach(emu_checkpointer *k, sqlite3 *db);
/* Checkpoints run so far (for specs and benchmarks). */
long ckpt_count(emu_checkpointer *k);
/* Stops the thread and closes its connection; NULL is fine. Attached connections must not
 * commit any more. */
void ckpt_stop(emu_checkpointer *k);

#endif

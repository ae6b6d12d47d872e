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
typedef struct emu_ckpt_file emu_ckpt_file;

typedef struct {
    int pages;      /* a checkpoint is due past this many WAL frames */
    int hard_pages; /* ... and finished with the writers held past this many */
} emu_ckpt_opts;

/* Starts the thread, which serves every file added to it; NULL with a message in err. */
emu_checkpointer *ckpt_start(const emu_ckpt_opts *o, char *err, size_t errlen);
/* Adds a database file, with its own connection to it; hold and release quiesce the file's
 * writers (NULL: never held). NULL with a message in err. */
emu_ckpt_file *ckpt_add(emu_checkpointer *k, const char *path, void (*hold)(void *ud),
                        void (*release)(void *ud), void *ud, char *err, size_t errlen);
/* Routes db's commits (db is a connection to f's file) to the thread: turns db's automatic
 * checkpoints off. f NULL is fine (nothing to do). */
void ckpt_attach(emu_ckpt_file *f, sqlite3 *db);
/* Checkpoints run so far over every file (for specs and benchmarks). */
long ckpt_count(emu_checkpointer *k);
/* Stops the thread and closes its connections; NULL is fine. Attached connections must not
 * commit any more. */
void ckpt_stop(emu_checkpointer *k);

#endif

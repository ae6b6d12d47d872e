/* Growing byte buffers and the encoders the emulator writes answers with (JSON strings,
 * URL components), plus small GUID and time helpers. */
#ifndef DV_EMU_SBUF_H
#define DV_EMU_SBUF_H
#include <stddef.h>

typedef struct {
    char *p;
    size_t n, cap;
} sbuf;

void sb_put(sbuf *b, const char *s, size_t n);
void sb_puts(sbuf *b, const char *s);
void sb_putc(sbuf *b, char c);
void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a quoted JSON string. */
void sb_json_str(sbuf *b, const char *s);
void sb_json_strn(sbuf *b, const char *s, size_t n);
/* s escaped for XML text and attribute values (NULL appends nothing). */
void sb_xml_str(sbuf *b, const char *s);
/* Appends s percent-encoded for a URL query value. */
void sb_url_enc(sbuf *b, const char *s);
/* Returns the NUL-terminated contents (never NULL). */
const char *sb_str(sbuf *b);
void sb_free(sbuf *b);

/* Decodes %XX (and '+' when plus_space) in place; returns the new length. */
size_t url_decode(char *s, int plus_space);

/* 1 when s is a GUID in 8-4-4-4-12 hex form (optionally in braces is NOT accepted). */
int guid_valid(const char *s, size_t n);
/* Writes a random version-4 GUID (lowercase) into out[37]. */
void guid_new(char out[37]);
/* Writes a GUID derived from a name, stable across runs, into out[37]. */
void guid_from_name(const char *name, char out[37]);

/* ISO 8601 UTC ("2026-11-25T20:56:49Z") of t seconds since the epoch, into out[32]. */
void time_iso(double t, char out[32]);

/* Decodes base64 (standard alphabet, padding optional); returns malloc'd bytes or NULL. */
unsigned char *base64_decode(const char *s, size_t n, size_t *outlen);

#endif

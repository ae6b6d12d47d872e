/* A fast reader for the common shape of row bodies: flat JSON objects whose members are
 * plain strings (no escapes), integers, true, false or null. Anything else (escapes, real
 * numbers, nested values, malformed text) makes it answer "not mine", and the caller reads
 * the body with SQLite's JSON1 as before: what it accepts, it reads exactly as JSON1 would
 * (same member types, same value texts), without JSON1's parse per statement.
 *
 * Offers:
 *   jw_member   one member of an object: key, JSON1 type name, JSON text, plain text
 *   jw_object   the members of a flat object, all or nothing
 *   jw_targets  the flat objects of an array member (a bulk message's Targets)
 *   jw_depth    how deeply objects and arrays nest in a JSON text
 */
#ifndef DV_EMU_JWALK_H
#define DV_EMU_JWALK_H
#include <stddef.h>

typedef struct {
    const char *key;
    size_t key_len;
    const char *type; /* "text", "integer", "true", "false" or "null" */
    const char *json; /* the value as JSON text (a string with its quotes) */
    size_t json_len;
    const char *text; /* a string's characters (no quotes); otherwise the JSON text */
    size_t text_len;
} jw_member;

/* Reads the object at json[0..len) (surrounding white space allowed) into *out (malloc'd,
 * the caller frees it) and *n. Returns 0, or 1 when the text is not one it reads (nothing
 * allocated). The members point into json. */
int jw_object(const char *json, size_t len, jw_member **out, int *n);

/* The elements of the array member `name` of the object json[0..len), each a flat object
 * jw_object reads: element i's text is json[(*starts)[i] .. + (*lens)[i]) (both arrays
 * malloc'd). Returns the count, or -1 when the text is not one it reads (the caller then
 * reads it the slow way, which also finds what is wrong with it). */
int jw_targets(const char *json, size_t len, const char *name, size_t **starts, size_t **lens);

/* The deepest nesting of objects and arrays in json[0..len): 0 for a scalar, 1 for a flat
 * object. Brackets inside strings do not count; malformed text gets a depth all the same
 * (whoever parses it later says what is wrong). */
int jw_depth(const char *json, size_t len);

#endif

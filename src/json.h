/* dvlua's JSON codec: JSON text <-> Lua values, losing nothing a Dataverse payload carries.
 *
 * Offered by src/json.c (the array marks shared by both directions):
 *   dv_json_push_array_mt, dv_json_push_empty_array, dv_json_is_array
 * Offered by src/json_decode.c:
 *   dv_json_decode
 * Offered by src/json_encode.c:
 *   dv_json_buf (+ dv_json_buf_free), dv_json_encode
 *
 * The mapping (docs/JSON.md has the full rules):
 *   object  <-> table with string keys         array <-> sequence 1..n (marked, see below)
 *   integer <-> Lua integer (whole int64 range) other numbers <-> Lua float
 *   null    <-> lightuserdata NULL (the same value as cjson.null)
 * Every decoded array carries the array metatable, so it encodes as [] even when empty.
 */
#ifndef DV_JSON_H
#define DV_JSON_H

#include <stddef.h>

#include <lua.h>

/* Deepest nesting of arrays/objects accepted by the decoder and produced by the encoder. */
#define DV_JSON_MAX_DEPTH 1000

/* Pushes the metatable that marks a table as a JSON array (created on first use, kept in the
 * registry of L, so each Lua state has its own). */
void dv_json_push_array_mt(lua_State *L);

/* Pushes the shared, read-only empty array (json.empty_array): it encodes as []. */
void dv_json_push_empty_array(lua_State *L);

/* True when the value at idx is a table marked as a JSON array. */
int dv_json_is_array(lua_State *L, int idx);

/* Decodes the JSON text s[0..len) (it need not be NUL-terminated). On success pushes exactly one
 * value and returns 0. On failure pushes nothing, writes a message such as
 * "json: expected ':' at offset 17, found '}'" into err (NUL-terminated, truncated to errlen)
 * and returns -1. Runs protected: a memory error is reported the same way, never thrown. */
int dv_json_decode(lua_State *L, const char *s, size_t len, char *err, size_t errlen);

/* A growable byte buffer owned by the caller: zero-initialise it, free it with dv_json_buf_free.
 * data is not NUL-terminated; len bytes are valid. */
typedef struct dv_json_buf {
    char *data;
    size_t len;
    size_t cap;
} dv_json_buf;

void dv_json_buf_free(dv_json_buf *b);

/* Appends the JSON text of the value at idx to out. Returns 0, or -1 with a message in err
 * (e.g. "json: cannot encode NaN at value[3].revenue"); on failure out->len is restored to what
 * it was, so a partial encoding never leaks into the caller's buffer. The Lua stack is left as it
 * was either way. Object keys are written in byte order, so the output is deterministic. */
int dv_json_encode(lua_State *L, int idx, dv_json_buf *out, char *err, size_t errlen);

#endif

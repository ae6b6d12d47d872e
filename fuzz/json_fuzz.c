/* libFuzzer target for the JSON decoder (src/json_decode.c), the parser that faces response
 * bodies from the network. Beyond "no crash, no leak, no undefined behaviour", it checks two
 * properties on every input:
 *   - a failed decode leaves the Lua stack exactly as it was;
 *   - whatever decodes and encodes again reaches a fixed point: decode(encode(v)) encodes to the
 *     same text (numbers, strings and key order are all reproduced exactly).
 * Build: make fuzz. Run: build/json_fuzz -max_total_time=60 build/fuzz-corpus fuzz/corpus */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static lua_State *L;
    if (!L) L = luaL_newstate();
    if (!L) abort();
    char err[256];
    int top = lua_gettop(L);

    /* Decode from an exact-size heap copy so that ASan catches any read past the end. */
    char *text = malloc(size ? size : 1);
    if (!text) abort();
    memcpy(text, data, size);
    int rc = dv_json_decode(L, text, size, err, sizeof err);
    free(text);
    if (rc != 0) {
        if (lua_gettop(L) != top || strncmp(err, "json: ", 6) != 0) abort();
        return 0;
    }
    if (lua_gettop(L) != top + 1) abort();

    dv_json_buf once = {0}, twice = {0};
    /* Encoding may refuse what JSON text can hold but the encoder will not write (1e999 decodes
     * to inf; raw bytes that are not UTF-8 pass through the decoder). */
    if (dv_json_encode(L, -1, &once, err, sizeof err) == 0) {
        if (dv_json_decode(L, once.data, once.len, err, sizeof err) != 0) abort();
        if (dv_json_encode(L, -1, &twice, err, sizeof err) != 0) abort();
        if (once.len != twice.len || memcmp(once.data, twice.data, once.len) != 0) abort();
    }
    dv_json_buf_free(&once);
    dv_json_buf_free(&twice);
    lua_settop(L, top);
    return 0;
}

/* libFuzzer target for dv_solution_parse_zip, the parser that reads ImportSolution uploads.
 *
 * Most mutations of a zip fail libzip's checks before any XML is read, so an input that does
 * not start like a zip is split at its first NUL byte into solution.xml and customizations.xml
 * and packed into a zip here first: both the archive handling and the XML handling get fuzzed.
 *
 * Build and run (from the repository root):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc -Isrc/emulator \
 *     fuzz/solution_fuzz.c src/emulator/solution_parse.c \
 *     $(pkg-config --cflags --libs libzip expat) -o build/solution_fuzz
 *   mkdir -p build/fuzz-corpus && ./dvlua -e 'io.write(require"dataverse.solution".pack(
 *     "scripts/solutions/ChangeTrackingSample"))' > build/fuzz-corpus/sample.zip
 *   build/solution_fuzz -max_len=65536 build/fuzz-corpus
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zip.h>

#include "solution_def.h"

static void parse(const void *data, size_t len)
{
    dv_solution_def def;
    char err[512];
    if (dv_solution_parse_zip(data, len, &def, err, sizeof err) == 0)
        dv_solution_def_free(&def);
    else if (err[0] == '\0')
        abort(); /* every failure must say why */
}

/* Packs the two documents into an in-memory zip and parses that. */
static void parse_documents(const uint8_t *data, size_t len)
{
    const uint8_t *nul = memchr(data, 0, len);
    size_t first = nul ? (size_t)(nul - data) : len;
    size_t rest = nul ? len - first - 1 : 0;

    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(NULL, 0, 0, &ze);
    zip_t *za = src ? zip_open_from_source(src, ZIP_TRUNCATE, &ze) : NULL;
    zip_error_fini(&ze);
    if (!za) {
        zip_source_free(src);
        return;
    }
    zip_source_keep(src);
    zip_source_t *a = zip_source_buffer(za, data, first, 0);
    zip_source_t *b = zip_source_buffer(za, nul ? nul + 1 : data + len, rest, 0);
    if (!a || zip_file_add(za, "solution.xml", a, 0) < 0) zip_source_free(a);
    if (!b || zip_file_add(za, "customizations.xml", b, 0) < 0) zip_source_free(b);
    if (zip_close(za) < 0) {
        zip_discard(za);
        zip_source_free(src);
        return;
    }
    if (zip_source_open(src) == 0) {
        zip_int64_t size = -1;
        if (zip_source_seek(src, 0, SEEK_END) == 0) size = zip_source_tell(src);
        void *buf = size > 0 ? malloc((size_t)size) : NULL;
        if (buf && zip_source_seek(src, 0, SEEK_SET) == 0 &&
            zip_source_read(src, buf, (zip_uint64_t)size) == size)
            parse(buf, (size_t)size);
        free(buf);
        zip_source_close(src);
    }
    zip_source_free(src);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    if (len >= 2 && data[0] == 'P' && data[1] == 'K')
        parse(data, len);
    else
        parse_documents(data, len);
    return 0;
}

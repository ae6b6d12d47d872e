#include "solution_zip.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <zip.h>

#define MAX_DEPTH 16
#define MAX_FILES 10000

static const char *const required[] = {"solution.xml", "customizations.xml", "[Content_Types].xml"};

typedef struct {
    zip_t *za;
    size_t total; /* bytes added so far, uncompressed */
    int files;
    char *err;
    size_t errlen;
} packer;

/* Reads a whole regular file, refusing more than `limit` bytes. */
static int read_file(const char *path, size_t limit, void **out, size_t *len, char *err,
                     size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        fclose(f);
        return -1;
    }
    if ((unsigned long long)st.st_size > limit) {
        snprintf(err, errlen, "%s: larger than %zu MiB", path, DV_SOLUTION_ZIP_MAX >> 20);
        fclose(f);
        return -1;
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n ? n : 1);
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory", path);
        fclose(f);
        return -1;
    }
    size_t got = n ? fread(buf, 1, n, f) : 0;
    int failed = ferror(f);
    fclose(f);
    if (failed || got != n) {
        snprintf(err, errlen, "cannot read %s: %s", path, failed ? strerror(errno) : "short read");
        free(buf);
        return -1;
    }
    *out = buf;
    *len = n;
    return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int add_file(packer *pk, const char *path, const char *name, const struct stat *st)
{
    void *data;
    size_t n;
    if (++pk->files > MAX_FILES) {
        snprintf(pk->err, pk->errlen, "%s: more than %d files", path, MAX_FILES);
        return -1;
    }
    if (read_file(path, DV_SOLUTION_ZIP_MAX - pk->total, &data, &n, pk->err, pk->errlen) < 0)
        return -1;
    pk->total += n;
    zip_source_t *s = zip_source_buffer(pk->za, data, n, 1); /* libzip frees data */
    if (!s) {
        free(data);
        snprintf(pk->err, pk->errlen, "%s: %s", path, zip_strerror(pk->za));
        return -1;
    }
    zip_int64_t idx = zip_file_add(pk->za, name, s, ZIP_FL_ENC_UTF_8);
    if (idx < 0) {
        zip_source_free(s);
        snprintf(pk->err, pk->errlen, "%s: %s", path, zip_strerror(pk->za));
        return -1;
    }
    if (zip_set_file_compression(pk->za, (zip_uint64_t)idx, ZIP_CM_DEFLATE, 0) < 0 ||
        zip_file_set_mtime(pk->za, (zip_uint64_t)idx, st->st_mtime, 0) < 0) {
        snprintf(pk->err, pk->errlen, "%s: %s", path, zip_strerror(pk->za));
        return -1;
    }
    return 0;
}

/* Adds every file below dir/prefix; names in the zip are relative to the solution folder. */
static int add_tree(packer *pk, const char *dir, const char *prefix, int depth)
{
    char path[4096], name[4096];
    struct dirent **list;
    snprintf(path, sizeof path, "%s%s%s", dir, *prefix ? "/" : "", prefix);
    if (depth > MAX_DEPTH) {
        snprintf(pk->err, pk->errlen, "%s: folders nested deeper than %d", path, MAX_DEPTH);
        return -1;
    }
    int n = scandir(path, &list, NULL, by_name);
    if (n < 0) {
        snprintf(pk->err, pk->errlen, "cannot list %s: %s", path, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        const char *base = list[i]->d_name;
        if (rc == 0 && base[0] != '.') {
            struct stat st;
            int pl = snprintf(name, sizeof name, "%s%s%s", prefix, *prefix ? "/" : "", base);
            int fl = snprintf(path, sizeof path, "%s/%s", dir, name);
            if (pl >= (int)sizeof name || fl >= (int)sizeof path) {
                snprintf(pk->err, pk->errlen, "%s/%s: path too long", dir, name);
                rc = -1;
            } else if (stat(path, &st) != 0) {
                snprintf(pk->err, pk->errlen, "cannot read %s: %s", path, strerror(errno));
                rc = -1;
            } else if (S_ISDIR(st.st_mode)) {
                rc = add_tree(pk, dir, name, depth + 1);
            } else if (S_ISREG(st.st_mode)) {
                rc = add_file(pk, path, name, &st);
            }
        }
        free(list[i]);
    }
    free(list);
    return rc;
}

/* The bytes of a closed in-memory archive. */
static int source_bytes(zip_source_t *src, void **out, size_t *len, char *err, size_t errlen)
{
    if (zip_source_open(src) < 0) {
        snprintf(err, errlen, "cannot read the packed zip: %s",
                 zip_error_strerror(zip_source_error(src)));
        return -1;
    }
    int rc = -1;
    zip_int64_t size = -1;
    if (zip_source_seek(src, 0, SEEK_END) == 0) size = zip_source_tell(src);
    char *buf = size >= 0 ? malloc(size ? (size_t)size : 1) : NULL;
    if (buf && zip_source_seek(src, 0, SEEK_SET) == 0 &&
        zip_source_read(src, buf, (zip_uint64_t)size) == size) {
        *out = buf;
        *len = (size_t)size;
        rc = 0;
    } else {
        free(buf);
        snprintf(err, errlen, "cannot read the packed zip: %s",
                 zip_error_strerror(zip_source_error(src)));
    }
    zip_source_close(src);
    return rc;
}

int dv_solution_zip_pack_dir(const char *dir, void **out, size_t *len, char *err, size_t errlen)
{
    struct stat st;
    char path[4096];
    *out = NULL;
    *len = 0;
    if (stat(dir, &st) != 0) {
        snprintf(err, errlen, "solution folder %s: %s", dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s: not a folder", dir);
        return -1;
    }
    for (size_t i = 0; i < sizeof required / sizeof *required; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, required[i]);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            snprintf(err, errlen, "%s: %s missing", dir, required[i]);
            return -1;
        }
    }

    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(NULL, 0, 0, &ze);
    if (!src) {
        snprintf(err, errlen, "cannot pack %s: %s", dir, zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return -1;
    }
    zip_t *za = zip_open_from_source(src, ZIP_TRUNCATE, &ze);
    if (!za) {
        snprintf(err, errlen, "cannot pack %s: %s", dir, zip_error_strerror(&ze));
        zip_error_fini(&ze);
        zip_source_free(src);
        return -1;
    }
    zip_error_fini(&ze);
    zip_source_keep(src); /* zip_close/zip_discard release theirs; we read the bytes after */

    packer pk = {.za = za, .err = err, .errlen = errlen};
    int rc = add_tree(&pk, dir, "", 0);
    if (rc < 0) {
        zip_discard(za);
    } else if (zip_close(za) < 0) {
        snprintf(err, errlen, "cannot pack %s: %s", dir, zip_strerror(za));
        zip_discard(za);
        rc = -1;
    } else {
        rc = source_bytes(src, out, len, err, errlen);
    }
    zip_source_free(src);
    return rc;
}

int dv_solution_zip_load(const char *path, void **out, size_t *len, char *err, size_t errlen)
{
    void *data;
    size_t n;
    *out = NULL;
    *len = 0;
    if (read_file(path, DV_SOLUTION_ZIP_MAX, &data, &n, err, errlen) < 0) return -1;
    /* a local file header, or the end record of an empty archive */
    if (n < 4 || (memcmp(data, "PK\3\4", 4) != 0 && memcmp(data, "PK\5\6", 4) != 0)) {
        snprintf(err, errlen, "%s: not a zip archive", path);
        free(data);
        return -1;
    }
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(data, n, 0, &ze);
    zip_t *za = src ? zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze) : NULL;
    if (!za) {
        snprintf(err, errlen, "%s: damaged zip archive: %s", path, zip_error_strerror(&ze));
        zip_source_free(src);
        zip_error_fini(&ze);
        free(data);
        return -1;
    }
    zip_discard(za);
    zip_error_fini(&ze);
    *out = data;
    *len = n;
    return 0;
}

int dv_solution_zip_read(const char *path, void **out, size_t *len, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        *out = NULL;
        *len = 0;
        snprintf(err, errlen, "solution %s: %s", path, strerror(errno));
        return -1;
    }
    if (S_ISDIR(st.st_mode)) return dv_solution_zip_pack_dir(path, out, len, err, errlen);
    return dv_solution_zip_load(path, out, len, err, errlen);
}

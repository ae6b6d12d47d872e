/* Solution files on the client side: a solution source folder packed into a zip in memory, or a
 * solution .zip read from disk, ready to be base64-encoded into ImportSolution's
 * CustomizationFile. Every function returns 0, or -1 with a message naming the path and what was
 * wrong in err; *out is malloc'd and the caller frees it. */
#ifndef DV_SOLUTION_ZIP_H
#define DV_SOLUTION_ZIP_H
#include <stddef.h>

/* Largest solution zip or source folder accepted (Dataverse itself refuses far smaller ones). */
#define DV_SOLUTION_ZIP_MAX ((size_t)128 << 20)

/* Packs a solution source folder: solution.xml, customizations.xml and [Content_Types].xml
 * (each required) plus every other file below it (subfolders such as WebResources/ included,
 * names starting with '.' skipped), deflated, in name order, with the files' own mtimes. */
int dv_solution_zip_pack_dir(const char *dir, void **out, size_t *len, char *err, size_t errlen);

/* Reads a .zip file, checking that it is a zip archive. */
int dv_solution_zip_load(const char *path, void **out, size_t *len, char *err, size_t errlen);

/* Either of the above, depending on whether path is a folder or a file. */
int dv_solution_zip_read(const char *path, void **out, size_t *len, char *err, size_t errlen);

#endif

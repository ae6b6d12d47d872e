/* A small, careful scanner for the little JSON objects the HTTP layer reads itself: OAuth
 * token responses and Dataverse error bodies. It finds one member by name at a given object
 * depth; it never builds a tree (the full codec lives in dataverse.json).
 *
 * Offers:
 *   dv_jscan_string  the decoded string value of a member
 *   dv_jscan_number  the numeric value of a member (a JSON number, or a string holding one)
 */
#ifndef DV_JSCAN_H
#define DV_JSCAN_H

#include <stddef.h>

/* Finds the first member called key in an object nested depth levels deep (1: the top-level
 * object, 2: an object inside it, ...) and copies its string value, unescaped and
 * NUL-terminated, into out. Returns the decoded length, or -1 when absent, not a string,
 * malformed, or longer than outsz - 1. */
long dv_jscan_string(const char *json, size_t len, const char *key, int depth, char *out,
                     size_t outsz);

/* Like dv_jscan_string for a number (or a string holding a number, as some token endpoints
 * send expires_in). Returns 0 and sets *out, or -1. */
int dv_jscan_number(const char *json, size_t len, const char *key, int depth, double *out);

#endif

/* Reads a Dataverse solution zip (solution.xml + customizations.xml) into a dv_solution_def.
 *
 * The input comes from ImportSolution requests, so it is treated as hostile:
 * - entries are streamed through expat in chunks and refused past 64 MiB uncompressed, so a
 *   zip bomb costs at most that much inflating and never that much memory;
 * - a document with a DTD is refused outright, which rules out entity expansion (billion
 *   laughs) and external entities; expat never loads external entities by itself;
 * - logical names of tables, columns and keys must be [a-z][a-z0-9_]* (the emulator turns them
 *   into SQL identifiers, which cannot be bound parameters), entity set names [A-Za-z0-9_];
 * - element nesting, value sizes and element counts are bounded.
 *
 * What is read, following the exported solution format:
 *   solution.xml        ImportExportXml/SolutionManifest: UniqueName, LocalizedNames (friendly
 *                       name, language 1033 preferred), Version, Managed (0 or 1),
 *                       Publisher/CustomizationPrefix.
 *   customizations.xml  ImportExportXml/Entities/Entity/EntityInfo/entity (Name lowercased is the
 *                       logical name): LocalizedNames, attributes/attribute (Type, LogicalName,
 *                       RequiredLevel, DisplayMask, MaxLength, displaynames), EntityKeys/EntityKey
 *                       (LogicalName, EntityKeyAttributes/AttributeName, displaynames),
 *                       EntitySetName, ChangeTrackingEnabled; lookup targets come from
 *                       ImportExportXml/EntityRelationships (OneToMany: ReferencingEntityName,
 *                       ReferencingAttributeName, ReferencedEntityName), as Dataverse exports them.
 * Derived when absent: the entity set name (see derive_entity_set_name) and the primary id column
 * (<logical name>id, a Uniqueidentifier) of a table that has EntityInfo. The primary name column
 * is the one whose DisplayMask carries PrimaryName; a table that only customizes an existing one
 * may have none (the import decides). Every CrmDataType of the customization schema and the
 * newer file, entityname and calendarrules types are read (see type_names); any other type is
 * an error. OneToMany relationships are kept in the definition for the import. */
#include "solution_def.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <expat.h>
#include <zip.h>

#define MAX_ENTRY_BYTES (64u << 20) /* uncompressed size of one XML entry */
#define MAX_DEPTH 64
#define MAX_PATH 1024
#define MAX_TEXT (64 * 1024) /* one element's text or attribute value */
#define MAX_NAME 128         /* logical names */
#define MAX_ENTITIES 4096
#define MAX_ATTRIBUTES 4096 /* per entity */
#define MAX_KEYS 64         /* per entity */
#define MAX_KEY_ATTRIBUTES 32
#define MAX_RELATIONSHIPS 65536
#define CHUNK 65536

/* Element paths, from the document root. */
#define ROOT "ImportExportXml"
#define MANIFEST ROOT "/SolutionManifest"
#define ENTITY ROOT "/Entities/Entity"
#define INFO ENTITY "/EntityInfo/entity"
#define ATTR INFO "/attributes/attribute"
#define KEY INFO "/EntityKeys/EntityKey"
#define REL ROOT "/EntityRelationships/EntityRelationship"

enum doc_kind { DOC_SOLUTION, DOC_CUSTOMIZATIONS };

/* Elements whose text we keep, and what it means. */
enum field {
    F_NONE,
    F_UNIQUE_NAME,
    F_VERSION,
    F_MANAGED,
    F_PREFIX,
    F_ENTITY_NAME,
    F_ENTITY_SET,
    F_CHANGE_TRACKING,
    F_ATTR_TYPE,
    F_ATTR_NAME,
    F_ATTR_LOGICAL,
    F_ATTR_REQUIRED,
    F_ATTR_MASK,
    F_ATTR_MAXLEN,
    F_KEY_NAME,
    F_KEY_LOGICAL,
    F_KEY_ATTRIBUTE,
    F_REL_TYPE,
    F_REL_REFERENCING,
    F_REL_REFERENCED,
    F_REL_ATTRIBUTE,
};

static const struct {
    enum doc_kind doc;
    const char *path;
    enum field field;
} text_fields[] = {
    {DOC_SOLUTION, MANIFEST "/UniqueName", F_UNIQUE_NAME},
    {DOC_SOLUTION, MANIFEST "/Version", F_VERSION},
    {DOC_SOLUTION, MANIFEST "/Managed", F_MANAGED},
    {DOC_SOLUTION, MANIFEST "/Publisher/CustomizationPrefix", F_PREFIX},
    {DOC_CUSTOMIZATIONS, ENTITY "/Name", F_ENTITY_NAME},
    {DOC_CUSTOMIZATIONS, INFO "/EntitySetName", F_ENTITY_SET},
    {DOC_CUSTOMIZATIONS, INFO "/ChangeTrackingEnabled", F_CHANGE_TRACKING},
    {DOC_CUSTOMIZATIONS, ATTR "/Type", F_ATTR_TYPE},
    {DOC_CUSTOMIZATIONS, ATTR "/Name", F_ATTR_NAME},
    {DOC_CUSTOMIZATIONS, ATTR "/LogicalName", F_ATTR_LOGICAL},
    {DOC_CUSTOMIZATIONS, ATTR "/RequiredLevel", F_ATTR_REQUIRED},
    {DOC_CUSTOMIZATIONS, ATTR "/DisplayMask", F_ATTR_MASK},
    {DOC_CUSTOMIZATIONS, ATTR "/MaxLength", F_ATTR_MAXLEN},
    {DOC_CUSTOMIZATIONS, KEY "/Name", F_KEY_NAME},
    {DOC_CUSTOMIZATIONS, KEY "/LogicalName", F_KEY_LOGICAL},
    {DOC_CUSTOMIZATIONS, KEY "/EntityKeyAttributes/AttributeName", F_KEY_ATTRIBUTE},
    {DOC_CUSTOMIZATIONS, REL "/EntityRelationshipType", F_REL_TYPE},
    {DOC_CUSTOMIZATIONS, REL "/ReferencingEntityName", F_REL_REFERENCING},
    {DOC_CUSTOMIZATIONS, REL "/ReferencedEntityName", F_REL_REFERENCED},
    {DOC_CUSTOMIZATIONS, REL "/ReferencingAttributeName", F_REL_ATTRIBUTE},
};

/* Every CrmDataType of the published customization schema, plus the types newer exports
 * write (file, entityname, calendarrules). */
static const struct {
    const char *name;
    dv_attr_type type;
} type_names[] = {
    {"nvarchar", DV_ATTR_STRING},
    {"varchar", DV_ATTR_STRING},
    {"nchar", DV_ATTR_STRING},
    {"char", DV_ATTR_STRING},
    {"string", DV_ATTR_STRING},
    {"ntext", DV_ATTR_MEMO},
    {"text", DV_ATTR_MEMO},
    {"memo", DV_ATTR_MEMO},
    {"int", DV_ATTR_INTEGER},
    {"integer", DV_ATTR_INTEGER},
    {"smallint", DV_ATTR_INTEGER},
    {"tinyint", DV_ATTR_INTEGER},
    {"timezone", DV_ATTR_INTEGER},
    {"bigint", DV_ATTR_BIGINT},
    {"timestamp", DV_ATTR_BIGINT},
    {"decimal", DV_ATTR_DECIMAL},
    {"numeric", DV_ATTR_DECIMAL},
    {"float", DV_ATTR_DOUBLE},
    {"real", DV_ATTR_DOUBLE},
    {"double", DV_ATTR_DOUBLE},
    {"money", DV_ATTR_MONEY},
    {"smallmoney", DV_ATTR_MONEY},
    {"bit", DV_ATTR_BOOLEAN},
    {"boolean", DV_ATTR_BOOLEAN},
    {"datetime", DV_ATTR_DATETIME},
    {"smalldatetime", DV_ATTR_DATETIME},
    {"lookup", DV_ATTR_LOOKUP},
    {"customer", DV_ATTR_LOOKUP},
    {"primarykey", DV_ATTR_UNIQUEIDENTIFIER},
    {"uniqueidentifier", DV_ATTR_UNIQUEIDENTIFIER},
    {"picklist", DV_ATTR_PICKLIST},
    {"state", DV_ATTR_STATE},
    {"status", DV_ATTR_STATUS},
    {"owner", DV_ATTR_OWNER},
    {"virtual", DV_ATTR_VIRTUAL},
    {"binary", DV_ATTR_VIRTUAL},
    {"varbinary", DV_ATTR_VIRTUAL},
    {"sql_variant", DV_ATTR_VIRTUAL},
    {"phoneticguide", DV_ATTR_VIRTUAL},
    {"hierarchyid", DV_ATTR_VIRTUAL},
    {"file", DV_ATTR_FILE},
    {"image", DV_ATTR_IMAGE},
    {"multiselectpicklist", DV_ATTR_MULTISELECT},
    {"partylist", DV_ATTR_PARTYLIST},
    {"entityname", DV_ATTR_ENTITYNAME},
    {"managedproperty", DV_ATTR_MANAGEDPROPERTY},
    {"calendarrules", DV_ATTR_CALENDARRULES},
};

typedef struct {
    char *name;             /* the relationship's SchemaName */
    char *type;             /* OneToMany, or NULL when not given */
    char *referencing;      /* entity holding the lookup */
    char *referencing_attr; /* the lookup column */
    char *referenced;       /* its target */
} relationship;

typedef struct {
    enum doc_kind doc;
    const char *file;
    XML_Parser xp;
    char *err;
    size_t errlen;
    int failed;

    char path[MAX_PATH];
    size_t path_len;
    size_t saved_len[MAX_DEPTH];
    int depth;

    enum field collecting;
    char *text;
    size_t text_len, text_cap;

    dv_solution_def *def;
    int entity_cap, attr_cap, key_cap, keyattr_cap;
    int friendly_1033, entity_display_1033, attr_display_1033, key_display_1033;
    int attr_has_logical, attr_has_type, attr_primary_key, attr_primary_name;
    int key_has_logical;
    int saw_manifest;
    int err_kind; /* DV_SOLUTION_ERR_*: content unless the archive or the XML was at fault */

    relationship *rels;
    int n_rels, rels_cap;
} parser;

static void fail(parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail_at(parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void vfail(parser *p, int with_line, const char *fmt, va_list ap)
{
    char msg[512];
    if (p->failed) return;
    p->failed = 1;
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (with_line && p->xp)
        snprintf(p->err, p->errlen, "%s: line %lu: %s", p->file,
                 (unsigned long)XML_GetCurrentLineNumber(p->xp), msg);
    else
        snprintf(p->err, p->errlen, "%s: %s", p->file, msg);
    if (p->xp) XML_StopParser(p->xp, XML_FALSE);
}

static void fail(parser *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(p, 0, fmt, ap);
    va_end(ap);
}

static void fail_at(parser *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(p, 1, fmt, ap);
    va_end(ap);
}

static char *dup_str(parser *p, const char *s)
{
    char *d = strdup(s);
    if (!d) fail(p, "out of memory");
    return d;
}

/* Replaces *slot with a copy of s. */
static void set_str(parser *p, char **slot, const char *s)
{
    char *d = dup_str(p, s);
    if (!d) return;
    free(*slot);
    *slot = d;
}

static void lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

/* Replaces *slot with a lowercased copy of a name; over-long names are ignored here and caught
 * by the validation of whatever needed them. */
static void set_name(parser *p, char **slot, const char *s)
{
    if (strlen(s) > MAX_NAME) return;
    set_str(p, slot, s);
    if (*slot) lower(*slot);
}

static int grow(parser *p, void **arr, int *cap, int n, size_t size, int limit, const char *what)
{
    if (n >= limit) {
        fail_at(p, "more than %d %s", limit, what);
        return -1;
    }
    if (n < *cap) return 0;
    int ncap = *cap ? *cap * 2 : 8;
    if (ncap > limit) ncap = limit;
    void *na = realloc(*arr, (size_t)ncap * size);
    if (!na) {
        fail(p, "out of memory");
        return -1;
    }
    memset((char *)na + (size_t)*cap * size, 0, (size_t)(ncap - *cap) * size);
    *arr = na;
    *cap = ncap;
    return 0;
}

static const char *find_attr(const XML_Char **atts, const char *name)
{
    for (int i = 0; atts[i]; i += 2)
        if (strcmp(atts[i], name) == 0) return atts[i + 1];
    return NULL;
}

/* A logical name, lowercased in place; must be usable as an SQL identifier. */
static int valid_logical_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MAX_NAME || !islower((unsigned char)s[0])) return 0;
    for (; *s; s++)
        if (!islower((unsigned char)*s) && !isdigit((unsigned char)*s) && *s != '_') return 0;
    return 1;
}

static int valid_set_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MAX_NAME || !isalpha((unsigned char)s[0])) return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_') return 0;
    return 1;
}

/* Solution unique names: letters, digits and underscores (Dataverse refuses anything else). */
static int valid_unique_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 256 || isdigit((unsigned char)s[0])) return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_') return 0;
    return 1;
}

/* major.minor[.build[.revision]], each part a number. */
static int valid_version(const char *s)
{
    int parts = 0;
    while (*s) {
        size_t digits = strspn(s, "0123456789");
        if (digits == 0 || digits > 9) return 0;
        s += digits;
        parts++;
        if (*s == '.')
            s++;
        else if (*s)
            return 0;
        if (*s == '\0' && s[-1] == '.') return 0;
    }
    return parts >= 2 && parts <= 4;
}

static dv_entity_def *cur_entity(parser *p)
{
    return p->def->n_entities ? &p->def->entities[p->def->n_entities - 1] : NULL;
}

static dv_attribute_def *cur_attr(parser *p)
{
    dv_entity_def *e = cur_entity(p);
    return e && e->n_attributes ? &e->attributes[e->n_attributes - 1] : NULL;
}

static dv_key_def *cur_key(parser *p)
{
    dv_entity_def *e = cur_entity(p);
    return e && e->n_keys ? &e->keys[e->n_keys - 1] : NULL;
}

static relationship *cur_rel(parser *p)
{
    return p->n_rels ? &p->rels[p->n_rels - 1] : NULL;
}

static const char *entity_label(const dv_entity_def *e)
{
    return e && e->logical_name ? e->logical_name : "(unnamed)";
}

/* A localized label: the first one, replaced by the English (1033) one when there is one. */
static void take_label(parser *p, char **slot, int *have_1033, const XML_Char **atts)
{
    const char *desc = find_attr(atts, "description");
    const char *lang = find_attr(atts, "languagecode");
    int is_1033 = lang && strcmp(lang, "1033") == 0;
    if (!desc || (*slot && (*have_1033 || !is_1033))) return;
    if (strlen(desc) > MAX_TEXT) {
        fail_at(p, "label longer than %d bytes", MAX_TEXT);
        return;
    }
    set_str(p, slot, desc);
    *have_1033 = is_1033;
}

static void start_entity(parser *p)
{
    dv_solution_def *d = p->def;
    if (grow(p, (void **)&d->entities, &p->entity_cap, d->n_entities, sizeof *d->entities,
             MAX_ENTITIES, "entities") < 0)
        return;
    d->n_entities++;
    p->attr_cap = p->key_cap = 0;
    p->entity_display_1033 = 0;
}

static void start_attribute(parser *p, const XML_Char **atts)
{
    dv_entity_def *e = cur_entity(p);
    if (grow(p, (void **)&e->attributes, &p->attr_cap, e->n_attributes, sizeof *e->attributes,
             MAX_ATTRIBUTES, "attributes in one entity") < 0)
        return;
    e->n_attributes++;
    p->attr_has_logical = p->attr_has_type = p->attr_primary_key = 0;
    p->attr_primary_name = 0;
    p->attr_display_1033 = 0;
    const char *phys = find_attr(atts, "PhysicalName");
    if (phys) set_name(p, &cur_attr(p)->logical_name, phys);
}

static void start_key(parser *p)
{
    dv_entity_def *e = cur_entity(p);
    if (grow(p, (void **)&e->keys, &p->key_cap, e->n_keys, sizeof *e->keys, MAX_KEYS,
             "keys in one entity") < 0)
        return;
    e->n_keys++;
    p->keyattr_cap = 0;
    p->key_has_logical = 0;
    p->key_display_1033 = 0;
}

static void start_relationship(parser *p)
{
    grow(p, (void **)&p->rels, &p->rels_cap, p->n_rels, sizeof *p->rels, MAX_RELATIONSHIPS,
         "relationships");
    if (!p->failed) p->n_rels++;
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    parser *p = ud;
    if (p->failed) return;
    if (p->depth >= MAX_DEPTH) {
        fail_at(p, "elements nested deeper than %d", MAX_DEPTH);
        return;
    }
    size_t nlen = strlen(name);
    size_t need = p->path_len + (p->depth ? 1 : 0) + nlen;
    p->saved_len[p->depth++] = p->path_len;
    if (need >= MAX_PATH) {
        fail_at(p, "element path too long");
        return;
    }
    if (p->depth > 1) p->path[p->path_len++] = '/';
    memcpy(p->path + p->path_len, name, nlen + 1);
    p->path_len += nlen;

    if (p->depth == 1 && strcmp(name, ROOT) != 0) {
        fail_at(p, "root element is <%s>, expected <" ROOT ">", name);
        return;
    }

    const char *path = p->path;
    if (p->doc == DOC_SOLUTION) {
        if (strcmp(path, MANIFEST) == 0)
            p->saw_manifest = 1;
        else if (strcmp(path, MANIFEST "/LocalizedNames/LocalizedName") == 0)
            take_label(p, &p->def->friendly_name, &p->friendly_1033, atts);
    } else if (strcmp(path, ENTITY) == 0) {
        start_entity(p);
    } else if (strcmp(path, INFO) == 0) {
        const char *n = find_attr(atts, "Name");
        cur_entity(p)->has_info = 1;
        if (n) set_name(p, &cur_entity(p)->logical_name, n);
    } else if (strcmp(path, INFO "/LocalizedNames/LocalizedName") == 0) {
        take_label(p, &cur_entity(p)->display_name, &p->entity_display_1033, atts);
    } else if (strcmp(path, ATTR) == 0) {
        start_attribute(p, atts);
    } else if (strcmp(path, ATTR "/displaynames/displayname") == 0) {
        take_label(p, &cur_attr(p)->display_name, &p->attr_display_1033, atts);
    } else if (strcmp(path, KEY) == 0) {
        start_key(p);
    } else if (strcmp(path, KEY "/displaynames/displayname") == 0) {
        take_label(p, &cur_key(p)->display_name, &p->key_display_1033, atts);
    } else if (strcmp(path, REL) == 0) {
        start_relationship(p);
        const char *n = find_attr(atts, "Name");
        if (n && !p->failed && strlen(n) <= MAX_NAME) set_str(p, &cur_rel(p)->name, n);
    }

    p->collecting = F_NONE;
    for (size_t i = 0; i < sizeof text_fields / sizeof *text_fields; i++)
        if (text_fields[i].doc == p->doc && strcmp(path, text_fields[i].path) == 0) {
            p->collecting = text_fields[i].field;
            p->text_len = 0;
            break;
        }
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
    parser *p = ud;
    if (p->failed || p->collecting == F_NONE) return;
    if (p->text_len + (size_t)len > MAX_TEXT) {
        fail_at(p, "value longer than %d bytes", MAX_TEXT);
        return;
    }
    if (p->text_len + (size_t)len + 1 > p->text_cap) {
        size_t ncap = p->text_cap ? p->text_cap : 256;
        while (ncap < p->text_len + (size_t)len + 1)
            ncap *= 2;
        char *nt = realloc(p->text, ncap);
        if (!nt) {
            fail(p, "out of memory");
            return;
        }
        p->text = nt;
        p->text_cap = ncap;
    }
    memcpy(p->text + p->text_len, s, (size_t)len);
    p->text_len += (size_t)len;
}

/* The collected text, whitespace trimmed. */
static char *collected(parser *p)
{
    if (!p->text) {
        p->text = malloc(1);
        if (!p->text) {
            fail(p, "out of memory");
            return NULL;
        }
        p->text_cap = 1;
    }
    p->text[p->text_len] = '\0';
    char *s = p->text;
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

static int parse_flag(parser *p, const char *s, const char *what)
{
    if (strcmp(s, "1") == 0 || strcmp(s, "true") == 0) return 1;
    if (strcmp(s, "0") == 0 || strcmp(s, "false") == 0 || *s == '\0') return 0;
    fail_at(p, "%s must be 0 or 1, not '%.40s'", what, s);
    return 0;
}

/* The lowercased copy of a name that must be a valid logical name; NULL after failing. */
static char *logical_copy(parser *p, const char *s, const char *what)
{
    if (strlen(s) > MAX_NAME) {
        fail_at(p, "%s is longer than %d characters", what, MAX_NAME);
        return NULL;
    }
    char *d = dup_str(p, s);
    if (!d) return NULL;
    lower(d);
    if (!valid_logical_name(d)) {
        fail_at(p,
                "%s '%s' is not a valid logical name (letters, digits and _, starting with a "
                "letter)",
                what, s);
        free(d);
        return NULL;
    }
    return d;
}

static void set_type(parser *p, dv_attribute_def *a, const char *s)
{
    p->attr_has_type = 1;
    p->attr_primary_key = strcasecmp(s, "primarykey") == 0;
    for (size_t i = 0; i < sizeof type_names / sizeof *type_names; i++)
        if (strcasecmp(s, type_names[i].name) == 0) {
            a->type = type_names[i].type;
            return;
        }
    fail_at(p, "attribute %s: unsupported type '%.40s'", a->logical_name ? a->logical_name : "", s);
}

/* DisplayMask is a |-separated list; PrimaryName marks the primary name column. */
static int mask_has(const char *mask, const char *flag)
{
    size_t n = strlen(flag);
    for (const char *s = mask; *s;) {
        size_t len = strcspn(s, "|");
        while (len && isspace((unsigned char)*s))
            s++, len--;
        size_t l = len;
        while (l && isspace((unsigned char)s[l - 1]))
            l--;
        if (l == n && strncmp(s, flag, n) == 0) return 1;
        s += len;
        if (*s == '|') s++;
    }
    return 0;
}

static void handle_text(parser *p, enum field f, const char *s)
{
    dv_solution_def *d = p->def;
    dv_entity_def *e = cur_entity(p);
    dv_attribute_def *a = cur_attr(p);
    dv_key_def *k = cur_key(p);
    relationship *r = cur_rel(p);
    char *name;

    switch (f) {
    case F_NONE:
        break;
    case F_UNIQUE_NAME:
        if (!valid_unique_name(s))
            fail_at(p, "UniqueName '%.80s' must be letters, digits and _", s);
        else
            set_str(p, &d->unique_name, s);
        break;
    case F_VERSION:
        if (!valid_version(s))
            fail_at(p, "Version '%.40s' is not a version number (major.minor.build.revision)", s);
        else
            set_str(p, &d->version, s);
        break;
    case F_MANAGED:
        if (strcmp(s, "1") == 0 || strcmp(s, "0") == 0)
            d->managed = s[0] == '1';
        else
            fail_at(p, "Managed must be 0 or 1, not '%.40s'", s);
        break;
    case F_PREFIX:
        if (*s && !valid_logical_name(s))
            fail_at(p, "CustomizationPrefix '%.40s' must be lowercase letters and digits", s);
        else if (*s)
            set_str(p, &d->publisher_prefix, s);
        break;
    case F_ENTITY_NAME:
        /* the entity element's Name attribute, when present, wins */
        if (!e->logical_name) set_name(p, &e->logical_name, s);
        break;
    case F_ENTITY_SET:
        if (!valid_set_name(s))
            fail_at(p, "entity %s: EntitySetName '%.80s' must be letters, digits and _",
                    entity_label(e), s);
        else
            set_str(p, &e->entity_set_name, s);
        break;
    case F_CHANGE_TRACKING:
        e->change_tracking = parse_flag(p, s, "ChangeTrackingEnabled");
        break;
    case F_ATTR_TYPE:
        set_type(p, a, s);
        break;
    case F_ATTR_NAME:
    case F_ATTR_LOGICAL:
        if (f == F_ATTR_NAME && p->attr_has_logical) break;
        set_name(p, &a->logical_name, s);
        if (f == F_ATTR_LOGICAL) p->attr_has_logical = 1;
        break;
    case F_ATTR_REQUIRED: /* 2: SystemRequired, 1: ApplicationRequired ("required") */
        a->required = strcasecmp(s, "systemrequired") == 0 ? 2
                      : strcasecmp(s, "required") == 0 || strcasecmp(s, "applicationrequired") == 0
                          ? 1
                          : 0;
        break;
    case F_ATTR_MASK:
        p->attr_primary_name = mask_has(s, "PrimaryName");
        break;
    case F_ATTR_MAXLEN: {
        char *end;
        long v = strtol(s, &end, 10);
        if (*s == '\0' || *end != '\0' || v < 0 || v > 1073741823)
            fail_at(p, "attribute %s: MaxLength '%.40s' is not a length",
                    a->logical_name ? a->logical_name : "", s);
        else
            a->max_length = (int)v;
        break;
    }
    case F_KEY_NAME:
    case F_KEY_LOGICAL:
        if (f == F_KEY_NAME && p->key_has_logical) break;
        if ((name = logical_copy(p, s, "key name"))) {
            free(k->logical_name);
            k->logical_name = name;
        }
        if (f == F_KEY_LOGICAL) p->key_has_logical = 1;
        break;
    case F_KEY_ATTRIBUTE:
        if (grow(p, (void **)&k->attributes, &p->keyattr_cap, k->n_attributes,
                 sizeof *k->attributes, MAX_KEY_ATTRIBUTES, "columns in one key") < 0)
            break;
        if ((name = logical_copy(p, s, "key column"))) k->attributes[k->n_attributes++] = name;
        break;
    case F_REL_TYPE:
        set_str(p, &r->type, s);
        break;
    case F_REL_REFERENCING:
        set_name(p, &r->referencing, s);
        break;
    case F_REL_REFERENCED:
        set_name(p, &r->referenced, s);
        break;
    case F_REL_ATTRIBUTE:
        set_name(p, &r->referencing_attr, s);
        break;
    }
}

static void free_attribute(dv_attribute_def *a)
{
    free(a->logical_name);
    free(a->display_name);
    free(a->target);
    memset(a, 0, sizeof *a);
}

static void end_attribute(parser *p)
{
    dv_entity_def *e = cur_entity(p);
    dv_attribute_def *a = cur_attr(p);
    if (!a->logical_name) {
        fail_at(p, "entity %s: an attribute has no LogicalName", entity_label(e));
        return;
    }
    if (!valid_logical_name(a->logical_name)) {
        fail_at(p, "entity %s: attribute '%s' is not a valid logical name", entity_label(e),
                a->logical_name);
        return;
    }
    for (int i = 0; i < e->n_attributes - 1; i++)
        if (strcmp(e->attributes[i].logical_name, a->logical_name) == 0) {
            fail_at(p, "entity %s: attribute %s is defined twice", entity_label(e),
                    a->logical_name);
            return;
        }
    if (!p->attr_has_type) {
        fail_at(p, "entity %s: attribute %s has no Type", entity_label(e), a->logical_name);
        return;
    }
    if (p->attr_primary_key) {
        if (e->primary_id) {
            fail_at(p, "entity %s: both %s and %s are of type primarykey", entity_label(e),
                    e->primary_id, a->logical_name);
            return;
        }
        set_str(p, &e->primary_id, a->logical_name);
    }
    if (p->attr_primary_name) {
        if (e->primary_name) {
            fail_at(p, "entity %s: both %s and %s are marked PrimaryName", entity_label(e),
                    e->primary_name, a->logical_name);
            return;
        }
        if (a->type != DV_ATTR_STRING) {
            fail_at(p, "entity %s: primary name %s must be nvarchar", entity_label(e),
                    a->logical_name);
            return;
        }
        set_str(p, &e->primary_name, a->logical_name);
    }
}

static void end_key(parser *p)
{
    dv_entity_def *e = cur_entity(p);
    dv_key_def *k = cur_key(p);
    if (!k->logical_name)
        fail_at(p, "entity %s: a key has no LogicalName", entity_label(e));
    else if (k->n_attributes == 0)
        fail_at(p, "entity %s: key %s names no column", entity_label(e), k->logical_name);
}

static dv_attribute_def *find_attribute(dv_entity_def *e, const char *name)
{
    for (int i = 0; i < e->n_attributes; i++)
        if (strcmp(e->attributes[i].logical_name, name) == 0) return &e->attributes[i];
    return NULL;
}

/* Dataverse's default entity set name is the plural of the logical name. We apply the English
 * rules it applies to ordinary names: consonant + y -> ies; s, x, z, ch, sh -> +es; else +s. */
static char *derive_entity_set_name(const char *logical)
{
    size_t n = strlen(logical);
    char *s = malloc(n + 3);
    if (!s) return NULL;
    memcpy(s, logical, n + 1);
    char last = n ? logical[n - 1] : '\0';
    char before = n > 1 ? logical[n - 2] : '\0';
    if (last == 'y' && n > 1 && !strchr("aeiou", before))
        strcpy(s + n - 1, "ies");
    else if (last == 's' || last == 'x' || last == 'z' ||
             (last == 'h' && (before == 'c' || before == 's')))
        strcpy(s + n, "es");
    else
        strcpy(s + n, "s");
    return s;
}

static void end_entity(parser *p)
{
    dv_entity_def *e = cur_entity(p);
    if (!e->logical_name) {
        fail_at(p, "an entity has no Name");
        return;
    }
    if (!valid_logical_name(e->logical_name)) {
        fail_at(p, "entity '%s' is not a valid logical name", e->logical_name);
        return;
    }
    for (int i = 0; i < p->def->n_entities - 1; i++)
        if (strcmp(p->def->entities[i].logical_name, e->logical_name) == 0) {
            fail_at(p, "entity %s is defined twice", e->logical_name);
            return;
        }
    if (!e->has_info) return; /* customizes a table that exists: nothing to derive */
    if (!e->entity_set_name && !(e->entity_set_name = derive_entity_set_name(e->logical_name))) {
        fail(p, "out of memory");
        return;
    }
    /* A table defined in full lists its primary key; one that only customizes an existing
     * table lists what it adds, and its keys may name columns the table has already. */
    int full = e->primary_id != NULL;
    if (!e->primary_id) {
        /* Dataverse creates the primary key column <logical name>id itself. */
        size_t n = strlen(e->logical_name);
        if (n + 2 > MAX_NAME) {
            fail_at(p, "entity %s: name too long for its primary key column", e->logical_name);
            return;
        }
        if (grow(p, (void **)&e->attributes, &p->attr_cap, e->n_attributes, sizeof *e->attributes,
                 MAX_ATTRIBUTES, "attributes in one entity") < 0)
            return;
        char *id = malloc(n + 3);
        if (!id) {
            fail(p, "out of memory");
            return;
        }
        snprintf(id, n + 3, "%sid", e->logical_name);
        if (find_attribute(e, id)) {
            fail_at(p, "entity %s: %s is not of type primarykey", e->logical_name, id);
            free(id);
            return;
        }
        dv_attribute_def *a = &e->attributes[e->n_attributes++];
        a->logical_name = id;
        a->type = DV_ATTR_UNIQUEIDENTIFIER;
        a->required = 1;
        set_str(p, &e->primary_id, id);
    }
    /* No PrimaryName column is fine here: an export that customizes an existing table carries
     * only what it adds. A new table without one is refused by the import. */
    for (int i = 0; i < e->n_keys; i++) {
        dv_key_def *k = &e->keys[i];
        for (int j = 0; j < i; j++)
            if (strcmp(e->keys[j].logical_name, k->logical_name) == 0) {
                fail_at(p, "entity %s: key %s is defined twice", e->logical_name, k->logical_name);
                return;
            }
        for (int j = 0; full && j < k->n_attributes; j++)
            if (!find_attribute(e, k->attributes[j])) {
                fail(p, "entity %s: key %s names unknown column %s", e->logical_name,
                     k->logical_name, k->attributes[j]);
                return;
            }
    }
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
    parser *p = ud;
    (void)name;
    if (p->failed) return;
    if (p->collecting != F_NONE) {
        char *s = collected(p);
        if (s) handle_text(p, p->collecting, s);
        p->collecting = F_NONE;
    }
    if (!p->failed && p->doc == DOC_CUSTOMIZATIONS) {
        if (strcmp(p->path, ATTR) == 0)
            end_attribute(p);
        else if (strcmp(p->path, KEY) == 0)
            end_key(p);
        else if (strcmp(p->path, ENTITY) == 0)
            end_entity(p);
    }
    p->path_len = p->saved_len[--p->depth];
    p->path[p->path_len] = '\0';
}

static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
                               const XML_Char *pubid, int has_internal_subset)
{
    (void)name, (void)sysid, (void)pubid, (void)has_internal_subset;
    fail_at(ud, "a DOCTYPE is not allowed");
}

static void XMLCALL on_entity_decl(void *ud, const XML_Char *name, int is_param,
                                   const XML_Char *value, int value_len, const XML_Char *base,
                                   const XML_Char *sysid, const XML_Char *pubid,
                                   const XML_Char *notation)
{
    (void)name, (void)is_param, (void)value, (void)value_len, (void)base, (void)sysid;
    (void)pubid, (void)notation;
    fail_at(ud, "entity declarations are not allowed");
}

/* Streams one zip entry through expat. */
static int parse_entry(parser *p, zip_t *za, const char *entry)
{
    zip_int64_t idx = zip_name_locate(za, entry, ZIP_FL_NOCASE);
    if (idx < 0) {
        snprintf(p->err, p->errlen, "%s missing", entry);
        p->err_kind = DV_SOLUTION_ERR_ARCHIVE;
        return -1;
    }
    zip_stat_t st;
    if (zip_stat_index(za, (zip_uint64_t)idx, 0, &st) == 0 && (st.valid & ZIP_STAT_SIZE) &&
        st.size > MAX_ENTRY_BYTES) {
        snprintf(p->err, p->errlen, "%s: larger than %u MiB uncompressed", entry,
                 MAX_ENTRY_BYTES >> 20);
        p->err_kind = DV_SOLUTION_ERR_ARCHIVE;
        return -1;
    }
    zip_file_t *zf = zip_fopen_index(za, (zip_uint64_t)idx, 0);
    if (!zf) {
        snprintf(p->err, p->errlen, "%s: cannot open: %s", entry, zip_strerror(za));
        p->err_kind = DV_SOLUTION_ERR_ARCHIVE;
        return -1;
    }
    XML_Parser xp = XML_ParserCreate(NULL);
    char *buf = malloc(CHUNK);
    if (!xp || !buf) {
        snprintf(p->err, p->errlen, "%s: out of memory", entry);
        if (xp) XML_ParserFree(xp);
        free(buf);
        zip_fclose(zf);
        return -1;
    }
    p->xp = xp;
    p->file = entry;
    XML_SetUserData(xp, p);
    XML_SetElementHandler(xp, on_start, on_end);
    XML_SetCharacterDataHandler(xp, on_text);
    XML_SetStartDoctypeDeclHandler(xp, on_doctype);
    XML_SetEntityDeclHandler(xp, on_entity_decl);
    XML_SetParamEntityParsing(xp, XML_PARAM_ENTITY_PARSING_NEVER);

    zip_uint64_t total = 0;
    for (;;) {
        zip_int64_t n = zip_fread(zf, buf, CHUNK);
        if (n < 0) {
            snprintf(p->err, p->errlen, "%s: cannot read: %s", entry,
                     zip_error_strerror(zip_file_get_error(zf)));
            p->failed = 1;
            p->err_kind = DV_SOLUTION_ERR_ARCHIVE;
            break;
        }
        total += (zip_uint64_t)n;
        if (total > MAX_ENTRY_BYTES) {
            snprintf(p->err, p->errlen, "%s: larger than %u MiB uncompressed", entry,
                     MAX_ENTRY_BYTES >> 20);
            p->failed = 1;
            p->err_kind = DV_SOLUTION_ERR_ARCHIVE;
            break;
        }
        if (XML_Parse(xp, buf, (int)n, n == 0) == XML_STATUS_ERROR) {
            if (!p->failed) { /* expat's own error, not one our handlers raised */
                fail_at(p, "%s", XML_ErrorString(XML_GetErrorCode(xp)));
                p->err_kind = DV_SOLUTION_ERR_XML;
            }
            break;
        }
        if (p->failed || n == 0) break;
    }
    XML_ParserFree(xp);
    p->xp = NULL;
    free(buf);
    zip_fclose(zf);
    return p->failed ? -1 : 0;
}

/* Gives each lookup the target its OneToMany relationship names, and keeps the relationships
 * for the import (they may add lookups to tables that exist already). */
static void apply_relationships(parser *p)
{
    dv_solution_def *d = p->def;
    int cap = 0;
    for (int i = 0; i < p->n_rels && !p->failed; i++) {
        relationship *r = &p->rels[i];
        if (!r->referencing || !r->referencing_attr || !r->referenced) continue;
        if (r->type && strcasecmp(r->type, "OneToMany") != 0) continue;
        if (!valid_logical_name(r->referenced) || !valid_logical_name(r->referencing) ||
            !valid_logical_name(r->referencing_attr)) {
            fail(p, "relationship %s: '%s.%s' -> '%s' is not made of valid logical names",
                 r->name ? r->name : "(unnamed)", r->referencing, r->referencing_attr,
                 r->referenced);
            return;
        }
        /* A customer (or other polymorphic) lookup has one relationship per table it can
         * point to; it keeps no single target and is bound as <column>_<table>. */
        int polymorphic = 0;
        for (int j = 0; j < p->n_rels && !polymorphic; j++) {
            const relationship *o = &p->rels[j];
            polymorphic = j != i && o->referencing && o->referencing_attr && o->referenced &&
                          !strcmp(o->referencing, r->referencing) &&
                          !strcmp(o->referencing_attr, r->referencing_attr) &&
                          strcmp(o->referenced, r->referenced) != 0;
        }
        for (int j = 0; j < d->n_entities && !polymorphic; j++) {
            dv_entity_def *e = &d->entities[j];
            if (strcmp(e->logical_name, r->referencing) != 0) continue;
            dv_attribute_def *a = find_attribute(e, r->referencing_attr);
            if (a && a->type == DV_ATTR_LOOKUP && !a->target) set_str(p, &a->target, r->referenced);
        }
        if (grow(p, (void **)&d->relationships, &cap, d->n_relationships, sizeof *d->relationships,
                 MAX_RELATIONSHIPS, "relationships") < 0)
            return;
        dv_relationship_def *out = &d->relationships[d->n_relationships++];
        out->name = dup_str(p, r->name ? r->name : r->referencing_attr);
        out->referencing_entity = dup_str(p, r->referencing);
        out->referencing_attribute = dup_str(p, r->referencing_attr);
        out->referenced_entity = dup_str(p, r->referenced);
    }
}

static void free_relationships(parser *p)
{
    for (int i = 0; i < p->n_rels; i++) {
        free(p->rels[i].name);
        free(p->rels[i].type);
        free(p->rels[i].referencing);
        free(p->rels[i].referencing_attr);
        free(p->rels[i].referenced);
    }
    free(p->rels);
    p->rels = NULL;
    p->n_rels = p->rels_cap = 0;
}

static void reset_document(parser *p, enum doc_kind doc)
{
    p->doc = doc;
    p->failed = 0;
    p->path_len = 0;
    p->path[0] = '\0';
    p->depth = 0;
    p->collecting = F_NONE;
}

int dv_solution_parse_zip(const void *zip, size_t len, dv_solution_def *out, char *err,
                          size_t errlen)
{
    char scratch[8];
    if (!err || errlen == 0) err = scratch, errlen = sizeof scratch;
    err[0] = '\0';
    memset(out, 0, sizeof *out);
    /* a local file header, or the end record of an empty archive */
    if (!zip || len < 4 || (memcmp(zip, "PK\3\4", 4) != 0 && memcmp(zip, "PK\5\6", 4) != 0)) {
        snprintf(err, errlen, "not a zip archive");
        return -1;
    }

    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(len ? zip : NULL, len, 0, &ze);
    if (!src) {
        snprintf(err, errlen, "cannot read the archive: %s", zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return -1;
    }
    zip_t *za = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze);
    if (!za) {
        /* it starts like a zip, so whatever libzip finds wrong is damage */
        snprintf(err, errlen, "damaged zip archive: %s", zip_error_strerror(&ze));
        zip_source_free(src);
        zip_error_fini(&ze);
        return -1;
    }
    zip_error_fini(&ze);

    parser *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        zip_discard(za);
        return -1;
    }
    p->err = err;
    p->errlen = errlen;
    p->def = out;
    p->err_kind = DV_SOLUTION_ERR_CONTENT;

    int rc = -1;
    reset_document(p, DOC_SOLUTION);
    if (parse_entry(p, za, "solution.xml") < 0) goto done;
    if (!p->saw_manifest) {
        fail(p, "no SolutionManifest element");
        goto done;
    }
    if (!out->unique_name) {
        fail(p, "SolutionManifest has no UniqueName");
        goto done;
    }
    if (!out->version) {
        fail(p, "SolutionManifest has no Version");
        goto done;
    }
    reset_document(p, DOC_CUSTOMIZATIONS);
    if (parse_entry(p, za, "customizations.xml") < 0) goto done;
    apply_relationships(p);
    rc = p->failed ? -1 : 0;
done:
    if (rc < 0) rc = p->err_kind;
    free_relationships(p);
    free(p->text);
    free(p);
    zip_discard(za); /* also frees src */
    if (rc < 0) dv_solution_def_free(out);
    return rc;
}

void dv_solution_def_free(dv_solution_def *def)
{
    if (!def) return;
    for (int i = 0; i < def->n_entities; i++) {
        dv_entity_def *e = &def->entities[i];
        for (int j = 0; j < e->n_attributes; j++)
            free_attribute(&e->attributes[j]);
        for (int j = 0; j < e->n_keys; j++) {
            for (int k = 0; k < e->keys[j].n_attributes; k++)
                free(e->keys[j].attributes[k]);
            free(e->keys[j].attributes);
            free(e->keys[j].logical_name);
            free(e->keys[j].display_name);
        }
        free(e->attributes);
        free(e->keys);
        free(e->logical_name);
        free(e->entity_set_name);
        free(e->display_name);
        free(e->primary_id);
        free(e->primary_name);
    }
    free(def->entities);
    for (int i = 0; i < def->n_relationships; i++) {
        free(def->relationships[i].name);
        free(def->relationships[i].referencing_entity);
        free(def->relationships[i].referencing_attribute);
        free(def->relationships[i].referenced_entity);
    }
    free(def->relationships);
    free(def->unique_name);
    free(def->friendly_name);
    free(def->version);
    free(def->publisher_prefix);
    memset(def, 0, sizeof *def);
}

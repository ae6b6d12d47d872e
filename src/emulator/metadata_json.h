/* Table definitions as the Web API writes them (metadata_json.c): EntityMetadata,
 * AttributeMetadata and its derived types, EntityKeyMetadata, OneToManyRelationshipMetadata
 * and option sets, each as a full JSON document; and the query options clients send on
 * definition collections ($select, $filter, $expand with nested options), applied to
 * those documents. Callers hold emu->mu. */
#ifndef DV_EMU_METADATA_JSON_H
#define DV_EMU_METADATA_JSON_H
#include "emu_internal.h"
#include "request.h"

/* What a definition item is. */
enum { MI_ENTITY, MI_ATTR, MI_KEY, MI_REL, MI_OPTIONSET };

/* One definition: a table, one of its columns or keys, or the one-to-many relationship
 * behind lookup column i of table t towards its target number j. */
typedef struct {
    int kind;
    emu_entity *t;
    int i, j;
    const char *name; /* a global choice's Name (MI_OPTIONSET), owned by the caller */
} mitem;

typedef struct {
    mitem *v;
    int n, cap;
} mitems;

void mitems_add(mitems *l, int kind, emu_entity *t, int i, int j);
/* Adds every column (kind MI_ATTR) or every key (MI_KEY) of table t. */
void mitems_all(mitems *l, int kind, emu_entity *t);
void mitems_free(mitems *l);

/* A metadata type: its name, the properties it has (a derived attribute type adds its
 * own) and the navigation properties $expand takes. */
typedef struct mtype mtype;
extern const mtype MT_ENTITY, MT_ATTR, MT_KEY, MT_REL, MT_REL_MANY, MT_OPTIONSET;
/* The derived attribute type named by a cast segment ("PicklistAttributeMetadata"), or NULL. */
const mtype *mtype_attr_cast(const char *name, size_t n);
const char *mtype_name(const mtype *t);
/* 1 when $expand takes nav on type t. */
int mtype_has_nav(const mtype *t, const char *nav);
/* 1 when attribute a is of derived type t (or t is the base AttributeMetadata). */
int mtype_attr_is(const mtype *t, const emu_entity *e, const dv_attribute_def *a);

/* Parsed query options for one level ($select, $filter, $expand with nested options). */
typedef struct mquery mquery;
/* Parses the options given (any may be NULL) for type t; on error answers r and returns NULL. */
mquery *mquery_parse(emu_req *r, const mtype *t, const char *select, const char *filter,
                     const char *expand);
void mquery_free(mquery *q);
/* The context URL suffix for the selection: "(A,B,Keys(C))" or "" when nothing selected. */
void mquery_context(const mquery *q, sbuf *b);

/* The full JSON document of an item (every property, no navigation properties). */
void mitem_doc(dv_emulator *e, const mitem *it, sbuf *b);
/* The relationships (one-to-many, from lookups) in the organization: all, or those where
 * entity is the referencing (side 'm') or referenced (side '1') table. */
void mitems_relationships(dv_emulator *e, const emu_entity *entity, char side, mitems *out);

/* Writes the items that pass q's filter, as a JSON array, projected and expanded. */
int mquery_write_list(emu_req *r, const mquery *q, const mitems *items, sbuf *out);
/* Writes one item's JSON object, projected and expanded, with extra members (e.g. the
 * context) put first when given. Returns 0, or -1 after emu_error. */
int mquery_write_one(emu_req *r, const mquery *q, const mitem *it, const char *first, sbuf *out);

/* Writes the value of navigation property nav of item it ("null" when it has none), with
 * sub's options applied (sub may be NULL). */
int mitem_write_nav(emu_req *r, const mitem *it, const char *nav, const mquery *sub, sbuf *out);

/* The stable ids the definitions carry. */
void mitem_id(const mitem *it, char out[37]);
/* The relationship schema name of item it (MI_REL), into out. */
void mrel_schema(dv_emulator *e, const mitem *it, char *out, size_t cap);

#endif

/* Table definitions over the Web API: the EntityDefinitions, RelationshipDefinitions and
 * GlobalOptionSetDefinitions paths, each method either served or refused (405 for a method
 * the resource does not take, 501 for a documented feature not served); reads are
 * answered here, writes by metadata_write.c; plus ReactivateEntityKey and WhoAmI. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"
#include "clock.h"
#include "emu_internal.h"
#include "metadata.h"
#include "metadata_json.h"
#include "metadata_store.h"
#include "metadata_write.h"
#include "options.h"
#include "store.h"

static int method_is(emu_req *r, const char *m)
{
    return strcmp(r->method, m) == 0;
}

static int not_allowed(emu_req *r, const char *what, const char *allowed)
{
    emu_add_header(r, "Allow", allowed);
    return emu_error(r, 405, BAD_QUERY, "The HTTP method '%s' is not allowed on %s (allowed: %s).",
                     r->method, what, allowed);
}

/* Only $select, $filter and $expand apply to definitions; any other option present is
 * refused rather than ignored. */
static int check_options(emu_req *r)
{
    static const char *refused[] = {"$top",    "$orderby", "$skip",    "$count",     "$apply",
                                    "$search", "$levels",  "$compute", "$skiptoken", NULL};
    for (int i = 0; refused[i]; i++)
        if (emu_arg(r, refused[i]))
            return emu_error(r, 501, BAD_QUERY,
                             "not served: the %s query option on definitions (only $select, "
                             "$filter and $expand are).",
                             refused[i]);
    return 0;
}

/* Reads "(LogicalName='x')", "(SchemaName='x')", "(Name='x')" or "(<guid>)" at p: the
 * name or id into out; *by_id set for a GUID. Returns the text after ')' or NULL. */
static const char *parse_key(const char *p, char *out, size_t cap, int *by_id, const char *prop)
{
    if (*p != '(') return NULL;
    p++;
    *by_id = 0;
    if (guid_valid(p, strnlen(p, 36)) && p[36] == ')') {
        snprintf(out, cap, "%.36s", p);
        *by_id = 1;
        return p + 37;
    }
    size_t n = strlen(prop);
    if (strncmp(p, prop, n) != 0 || p[n] != '=' || p[n + 1] != '\'') return NULL;
    p += n + 2;
    const char *q = strchr(p, '\'');
    if (!q || q[1] != ')' || (size_t)(q - p) >= cap) return NULL;
    snprintf(out, cap, "%.*s", (int)(q - p), p);
    return q + 2;
}

static int syntax_error(emu_req *r, const char *path)
{
    return emu_error(r, 400, BAD_QUERY, "Bad Request - Error in query syntax: '%s'.", path);
}

static int not_served(emu_req *r, const char *path)
{
    return emu_error(r, 501, BAD_QUERY, "not served: the path '%s' by the dvlua emulator.", path);
}

/* Answers a collection of definitions: {"@odata.context": base$metadata#ctx(sel), value}. */
static int answer_list(emu_req *r, const mtype *type, const char *ctx, const mitems *items)
{
    if (check_options(r)) return -1;
    mquery *q =
        mquery_parse(r, type, emu_arg(r, "$select"), emu_arg(r, "$filter"), emu_arg(r, "$expand"));
    if (!q) return -1;
    sbuf body = {0};
    int rc = mquery_write_list(r, q, items, &body);
    if (rc == 0) {
        emu_json(r, 200);
        sb_printf(&r->out, "{\"@odata.context\":\"%s$metadata#%s", r->base, ctx);
        mquery_context(q, &r->out);
        sb_puts(&r->out, "\",\"value\":");
        sb_put(&r->out, body.p, body.n);
        sb_putc(&r->out, '}');
    }
    sb_free(&body);
    mquery_free(q);
    return rc;
}

static int answer_one(emu_req *r, const mtype *type, const char *ctx, const mitem *it)
{
    if (check_options(r)) return -1;
    if (emu_arg(r, "$filter"))
        return emu_error(r, 400, BAD_QUERY,
                         "The query parameter $filter is not supported on a single definition.");
    mquery *q = mquery_parse(r, type, emu_arg(r, "$select"), NULL, emu_arg(r, "$expand"));
    if (!q) return -1;
    sbuf first = {0};
    sb_printf(&first, "\"@odata.context\":\"%s$metadata#%s", r->base, ctx);
    mquery_context(q, &first);
    sb_puts(&first, "/$entity\"");
    sbuf body = {0};
    int rc = mquery_write_one(r, q, it, sb_str(&first), &body);
    if (rc == 0) {
        emu_json(r, 200);
        sb_put(&r->out, body.p, body.n);
    }
    sb_free(&body);
    sb_free(&first);
    mquery_free(q);
    return rc;
}

/* The index of table t's column (MI_ATTR) or key (MI_KEY) named or identified by key, or -1. */
static int find_item(emu_entity *t, int kind, const char *key, int by_id)
{
    int n = kind == MI_ATTR ? t->def.n_attributes : t->def.n_keys;
    for (int i = 0; i < n; i++) {
        mitem it = {kind, t, i, 0, NULL};
        char id[37];
        mitem_id(&it, id);
        const char *name =
            kind == MI_ATTR ? t->def.attributes[i].logical_name : t->def.keys[i].logical_name;
        if (by_id ? !strcasecmp(id, key) : !strcmp(name, key)) return i;
    }
    return -1;
}

/* The column (kind MI_ATTR) or key (MI_KEY) of table t that "(<key>)" at p names: its
 * index, its name or id in key and the text after it in *rest; or -1 once answered (400 for
 * bad syntax, 404 when there is none). */
static int member_at(emu_req *r, emu_entity *t, int kind, const char *p, const char *path,
                     char key[200], const char **rest)
{
    int by_id;
    *rest = parse_key(p, key, 200, &by_id, "LogicalName");
    if (!*rest) return syntax_error(r, path);
    int idx = find_item(t, kind, key, by_id);
    if (idx < 0)
        return emu_error(r, 404, NOT_FOUND, "Could not find %s '%s' on entity '%s'.",
                         kind == MI_ATTR ? "attribute" : "key", key, t->def.logical_name);
    return idx;
}

/* …/Attributes or …/Keys (nav) of table t, as a collection. */
static int answer_all(emu_req *r, emu_entity *t, int kind, const mtype *type, const char *nav)
{
    mitems l = {0};
    mitems_all(&l, kind, t);
    char ctx[400];
    snprintf(ctx, sizeof ctx, "EntityDefinitions(%s)/%s", t->metadata_id, nav);
    int rc = answer_list(r, type, ctx, &l);
    mitems_free(&l);
    return rc;
}

/* One member of a table's Attributes or Keys (nav). */
static int answer_member(emu_req *r, const mtype *type, const char *nav, const mitem *it)
{
    char ctx[400];
    snprintf(ctx, sizeof ctx, "EntityDefinitions(%s)/%s", it->t->metadata_id, nav);
    return answer_one(r, type, ctx, it);
}

/* …/Attributes(<key>)/<cast>/OptionSet (or GlobalOptionSet): the navigation property read
 * as a resource of its own; 204 when it is null (no global choices here). */
static int option_set_path(emu_req *r, emu_entity *t, int idx, const mtype *cast, const char *nav)
{
    if (!method_is(r, "GET")) return not_allowed(r, "an attribute's option set", "GET");
    if (check_options(r)) return -1;
    if (emu_arg(r, "$filter") || emu_arg(r, "$expand"))
        return emu_error(r, 400, BAD_QUERY, "Only $select applies to a single option set.");
    mquery *q = mquery_parse(r, &MT_OPTIONSET, emu_arg(r, "$select"), NULL, NULL);
    if (!q) return -1;
    mitem it = {MI_ATTR, t, idx, 0, NULL};
    sbuf v = {0};
    int rc = mitem_write_nav(r, &it, nav, q, &v);
    if (rc == 0 && strcmp(sb_str(&v), "null") == 0) {
        r->status = 204;
    } else if (rc == 0) {
        char id[37];
        mitem_id(&it, id);
        emu_json(r, 200);
        sb_printf(&r->out,
                  "{\"@odata.context\":\"%s$metadata#EntityDefinitions(%s)/Attributes(%s)/"
                  "Microsoft.Dynamics.CRM.%s/%s",
                  r->base, t->metadata_id, id, mtype_name(cast), nav);
        mquery_context(q, &r->out);
        sb_puts(&r->out, "/$entity\",");
        sb_put(&r->out, v.p + 1, v.n - 1);
    }
    sb_free(&v);
    mquery_free(q);
    return rc;
}

/* …/Attributes, …/Attributes/<cast>, …/Attributes(<key>)[/<cast>[/OptionSet]]. */
static int attributes_path(emu_req *r, emu_entity *t, const char *p, const char *path)
{
    char ctx[400];
    const mtype *cast = &MT_ATTR;
    if (*p == '/' && strncmp(p + 1, "Microsoft.Dynamics.CRM.", 23) == 0) {
        cast = mtype_attr_cast(p + 24, strlen(p + 24));
        if (!cast) return syntax_error(r, path);
        if (!method_is(r, "GET"))
            return not_allowed(r, "a cast of the Attributes collection", "GET");
        mitems l = {0};
        for (int i = 0; i < t->def.n_attributes; i++)
            if (mtype_attr_is(cast, t, &t->def.attributes[i])) mitems_add(&l, MI_ATTR, t, i, 0);
        snprintf(ctx, sizeof ctx, "EntityDefinitions(%s)/Attributes/Microsoft.Dynamics.CRM.%s",
                 t->metadata_id, mtype_name(cast));
        int rc = answer_list(r, cast, ctx, &l);
        mitems_free(&l);
        return rc;
    }
    if (!*p) {
        if (method_is(r, "POST")) return mw_create_attr(r, t);
        if (!method_is(r, "GET")) return not_allowed(r, "the Attributes collection", "GET, POST");
        return answer_all(r, t, MI_ATTR, &MT_ATTR, "Attributes");
    }
    char key[200];
    const char *rest;
    int idx = member_at(r, t, MI_ATTR, p, path, key, &rest);
    if (idx < 0) return -1;
    mitem it = {MI_ATTR, t, idx, 0, NULL};
    char id[37];
    mitem_id(&it, id);
    if (*rest == '/' && strncmp(rest + 1, "Microsoft.Dynamics.CRM.", 23) == 0) {
        size_t cl = strcspn(rest + 24, "/");
        const char *tail = rest + 24 + cl;
        cast = mtype_attr_cast(rest + 24, cl);
        if (!cast) return syntax_error(r, path);
        if (*tail) {
            if (strcmp(tail, "/OptionSet") && strcmp(tail, "/GlobalOptionSet"))
                return not_served(r, path);
            if (!mtype_attr_is(cast, t, &t->def.attributes[idx]) || !mtype_has_nav(cast, tail + 1))
                return emu_error(r, 404, NOT_FOUND, "The attribute '%s' has no %s.", key, tail + 1);
            return option_set_path(r, t, idx, cast, tail + 1);
        }
        if (!mtype_attr_is(cast, t, &t->def.attributes[idx]))
            return emu_error(r, 404, NOT_FOUND,
                             "The attribute '%s' is not of type Microsoft.Dynamics.CRM.%s.", key,
                             mtype_name(cast));
        /* Clients (dynamics-web-api's updateAttribute with castType) PUT to the cast path. */
        if (method_is(r, "PUT")) return mw_update_attr(r, t, idx);
        if (!method_is(r, "GET")) return not_allowed(r, "a cast of an attribute", "GET, PUT");
        snprintf(ctx, sizeof ctx, "EntityDefinitions(%s)/Attributes(%s)/Microsoft.Dynamics.CRM.%s",
                 t->metadata_id, id, mtype_name(cast));
        return answer_one(r, cast, ctx, &it);
    }
    if (*rest) return not_served(r, path);
    if (method_is(r, "PUT")) return mw_update_attr(r, t, idx);
    if (method_is(r, "DELETE")) return mw_delete_attr(r, t, idx);
    if (!method_is(r, "GET"))
        return not_allowed(r, "an attribute definition (PATCH is not supported: use PUT)",
                           "GET, PUT, DELETE");
    return answer_member(r, &MT_ATTR, "Attributes", &it);
}

static int keys_path(emu_req *r, emu_entity *t, const char *p, const char *path)
{
    if (!*p) {
        if (method_is(r, "POST")) return mw_create_key(r, t);
        if (!method_is(r, "GET")) return not_allowed(r, "the Keys collection", "GET, POST");
        return answer_all(r, t, MI_KEY, &MT_KEY, "Keys");
    }
    char key[200];
    const char *rest;
    int idx = member_at(r, t, MI_KEY, p, path, key, &rest);
    if (idx < 0) return -1;
    if (!strcmp(rest, "/Microsoft.Dynamics.CRM.ReactivateEntityKey"))
        return h_reactivate_key(r, t->def.logical_name, t->def.keys[idx].logical_name);
    mitem it = {MI_KEY, t, idx, 0, NULL};
    if (!strcmp(rest, "/AsyncJob")) {
        if (!method_is(r, "GET")) return not_allowed(r, "a key's AsyncJob", "GET");
        if (check_options(r)) return -1;
        sbuf one = {0};
        mquery *q = mquery_parse(r, &MT_KEY, NULL, NULL, "AsyncJob");
        if (!q) return -1;
        int rc = mquery_write_one(r, q, &it, NULL, &one);
        mquery_free(q);
        /* {"@odata.type":…,…,"AsyncJob":X}: answer X */
        const char *job = strstr(sb_str(&one), ",\"AsyncJob\":");
        if (rc == 0 && job && strncmp(job + 12, "null", 4) != 0) {
            emu_json(r, 200);
            sb_printf(&r->out, "{\"@odata.context\":\"%s$metadata#asyncoperations/$entity\",",
                      r->base);
            sb_put(&r->out, job + 13, strlen(job + 13) - 1);
        } else if (rc == 0) {
            r->status = 204; /* no job: the navigation property is null */
        }
        sb_free(&one);
        return rc;
    }
    if (*rest) return not_served(r, path);
    if (method_is(r, "DELETE")) return mw_delete_key(r, t, idx);
    if (!method_is(r, "GET")) return not_allowed(r, "a key definition", "GET, DELETE");
    return answer_member(r, &MT_KEY, "Keys", &it);
}

static int find_rel(dv_emulator *e, const emu_entity *side_of, char side, const char *key,
                    int by_id, mitem *out)
{
    mitems l = {0};
    mitems_relationships(e, side_of, side, &l);
    int found = 0;
    for (int i = 0; i < l.n && !found; i++) {
        char id[37], schema[300];
        mitem_id(&l.v[i], id);
        mrel_schema(e, &l.v[i], schema, sizeof schema);
        if (by_id ? !strcasecmp(id, key) : !strcmp(schema, key)) {
            *out = l.v[i];
            found = 1;
        }
    }
    mitems_free(&l);
    return found;
}

/* …/ManyToOneRelationships, …/OneToManyRelationships, …/ManyToManyRelationships. */
static int entity_relationships(emu_req *r, emu_entity *t, const char *nav, const char *p,
                                const char *path)
{
    char ctx[400];
    int many = !strcmp(nav, "ManyToManyRelationships");
    char side = !strcmp(nav, "ManyToOneRelationships") ? 'm' : '1';
    if (!*p) {
        if (!method_is(r, "GET"))
            return not_allowed(r,
                               "a table's relationship collection (create relationships "
                               "with POST RelationshipDefinitions)",
                               "GET");
        mitems l = {0};
        if (!many) mitems_relationships(r->emu, t, side, &l);
        snprintf(ctx, sizeof ctx, "EntityDefinitions(%s)/%s", t->metadata_id, nav);
        int rc = answer_list(r, many ? &MT_REL_MANY : &MT_REL, ctx, &l);
        mitems_free(&l);
        return rc;
    }
    char key[300];
    int by_id;
    const char *rest = parse_key(p, key, sizeof key, &by_id, "SchemaName");
    if (!rest) return syntax_error(r, path);
    if (*rest) return not_served(r, path);
    mitem it;
    if (many || !find_rel(r->emu, t, side, key, by_id, &it))
        return emu_error(r, 404, NOT_FOUND, "Could not find relationship '%s'.", key);
    if (!method_is(r, "GET")) return not_allowed(r, "a relationship of a table", "GET");
    snprintf(ctx, sizeof ctx, "EntityDefinitions(%s)/%s", t->metadata_id, nav);
    return answer_one(r, &MT_REL, ctx, &it);
}

int h_metadata(emu_req *r, const char *path)
{
    dv_emulator *e = r->emu;
    const char *p = path + 17;
    if (!*p) {
        if (method_is(r, "POST")) return mw_create_entity(r);
        if (!method_is(r, "GET")) return not_allowed(r, "EntityDefinitions", "GET, POST");
        mitems l = {0};
        for (int i = 0; i < e->n_ents; i++)
            mitems_add(&l, MI_ENTITY, &e->ents[i], 0, 0);
        int rc = answer_list(r, &MT_ENTITY, "EntityDefinitions", &l);
        mitems_free(&l);
        return rc;
    }
    if (*p == '/') return not_served(r, path);
    char name[200];
    int by_id;
    p = parse_key(p, name, sizeof name, &by_id, "LogicalName");
    if (!p) return syntax_error(r, path);
    emu_entity *t = by_id ? store_by_metadata_id(e, name) : store_by_logical(e, name, strlen(name));
    if (!t)
        return emu_error(r, 404, NOT_FOUND, "Could not find an entity with %s = '%s'.",
                         by_id ? "MetadataId" : "LogicalName", name);
    if (!*p) {
        if (method_is(r, "PUT")) return mw_update_entity(r, t);
        if (method_is(r, "DELETE")) return mw_delete_entity(r, t);
        if (!method_is(r, "GET"))
            return not_allowed(r, "a table definition (PATCH is not supported: use PUT)",
                               "GET, PUT, DELETE");
        mitem it = {MI_ENTITY, t, 0, 0, NULL};
        return answer_one(r, &MT_ENTITY, "EntityDefinitions", &it);
    }
    if (!strncmp(p, "/Attributes", 11) && (p[11] == 0 || p[11] == '(' || p[11] == '/'))
        return attributes_path(r, t, p + 11, path);
    if (!strncmp(p, "/Keys", 5) && (p[5] == 0 || p[5] == '(')) return keys_path(r, t, p + 5, path);
    static const char *rels[] = {"ManyToOneRelationships", "OneToManyRelationships",
                                 "ManyToManyRelationships", NULL};
    for (int i = 0; rels[i]; i++) {
        size_t n = strlen(rels[i]);
        if (p[0] == '/' && !strncmp(p + 1, rels[i], n) && (p[1 + n] == 0 || p[1 + n] == '('))
            return entity_relationships(r, t, rels[i], p + 1 + n, path);
    }
    return not_served(r, path);
}

int h_relationship_defs(emu_req *r, const char *path)
{
    dv_emulator *e = r->emu;
    const char *p = path + 23;
    const char *cast = NULL;
    if (!strncmp(p, "/Microsoft.Dynamics.CRM.", 24)) {
        cast = p + 24;
        if (strcmp(cast, "OneToManyRelationshipMetadata") &&
            strcmp(cast, "ManyToManyRelationshipMetadata") &&
            strcmp(cast, "RelationshipMetadataBase"))
            return syntax_error(r, path);
        p += strlen(p);
    }
    int many = cast && !strcmp(cast, "ManyToManyRelationshipMetadata");
    if (!*p) {
        if (method_is(r, "POST") && !cast) return mw_create_rel(r);
        if (!method_is(r, "GET"))
            return not_allowed(r, "RelationshipDefinitions", cast ? "GET" : "GET, POST");
        mitems l = {0};
        if (!many) mitems_relationships(e, NULL, 0, &l);
        char ctx[200];
        snprintf(ctx, sizeof ctx, "RelationshipDefinitions%s%s",
                 cast ? "/Microsoft.Dynamics.CRM." : "", cast ? cast : "");
        int rc = answer_list(r, many ? &MT_REL_MANY : &MT_REL, ctx, &l);
        mitems_free(&l);
        return rc;
    }
    char key[300];
    int by_id;
    const char *rest = parse_key(p, key, sizeof key, &by_id, "SchemaName");
    if (!rest) return syntax_error(r, path);
    mitem it;
    if (!find_rel(e, NULL, 0, key, by_id, &it))
        return emu_error(r, 404, NOT_FOUND, "Could not find relationship '%s'.", key);
    if (*rest && strcmp(rest, "/Microsoft.Dynamics.CRM.OneToManyRelationshipMetadata"))
        return not_served(r, path);
    if (!*rest && method_is(r, "DELETE")) return mw_delete_rel(r, it.t, it.i);
    if (!*rest && method_is(r, "PUT"))
        return emu_error(r, 501, BAD_QUERY, "not served: updating a relationship definition.");
    if (!method_is(r, "GET"))
        return not_allowed(r, "a relationship definition", *rest ? "GET" : "GET, PUT, DELETE");
    return answer_one(r, &MT_REL,
                      *rest ? "RelationshipDefinitions/Microsoft.Dynamics.CRM."
                              "OneToManyRelationshipMetadata"
                            : "RelationshipDefinitions",
                      &it);
}

int h_optionset_defs(emu_req *r, const char *path)
{
    dv_emulator *e = r->emu;
    const char *p = path + 26;
    int n = 0;
    char **names = mdx_names(e, MDX_OPTIONSET, &n);
    int rc;
    if (!*p) {
        if (method_is(r, "POST")) {
            rc = mw_create_optionset(r);
        } else if (!method_is(r, "GET")) {
            rc = not_allowed(r, "GlobalOptionSetDefinitions", "GET, POST");
        } else {
            mitems l = {0};
            for (int i = 0; i < n; i++)
                mitems_add(&l, MI_OPTIONSET, NULL, 0, 0), l.v[l.n - 1].name = names[i];
            rc = answer_list(r, &MT_OPTIONSET, "GlobalOptionSetDefinitions", &l);
            mitems_free(&l);
        }
        goto out;
    }
    char key[200];
    int by_id;
    const char *rest = parse_key(p, key, sizeof key, &by_id, "Name");
    if (!rest) {
        rc = syntax_error(r, path);
        goto out;
    }
    const char *found = NULL;
    for (int i = 0; i < n && !found; i++) {
        mitem it = {MI_OPTIONSET, NULL, 0, 0, names[i]};
        char id[37];
        mitem_id(&it, id);
        if (by_id ? !strcasecmp(id, key) : !strcmp(names[i], key)) found = names[i];
    }
    if (!found) {
        rc = emu_error(r, 404, NOT_FOUND, "Could not find a global option set named '%s'.", key);
    } else if (*rest) {
        rc = not_served(r, path);
    } else if (method_is(r, "DELETE")) {
        rc = mw_delete_optionset(r, found);
    } else if (method_is(r, "PUT")) {
        rc = emu_error(r, 501, BAD_QUERY, "not served: updating a global choice.");
    } else if (!method_is(r, "GET")) {
        rc = not_allowed(r, "a global choice", "GET, PUT, DELETE");
    } else {
        mitem it = {MI_OPTIONSET, NULL, 0, 0, found};
        rc = answer_one(r, &MT_OPTIONSET, "GlobalOptionSetDefinitions", &it);
    }
out:
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

int h_reactivate_key(emu_req *r, const char *entity, const char *key)
{
    dv_emulator *e = r->emu;
    char ent[200] = "", k[200] = "";
    if (!method_is(r, "POST")) return not_allowed(r, "ReactivateEntityKey (an action)", "POST");
    if (entity) {
        snprintf(ent, sizeof ent, "%s", entity);
        snprintf(k, sizeof k, "%s", key);
    } else {
        sqlite3_stmt *st = store_stmt(e, "SELECT json_extract(?1,'$.EntityLogicalName'), "
                                         "json_extract(?1,'$.EntityKeyLogicalName') "
                                         "WHERE json_valid(?1)");
        sqlite3_bind_text(st, 1, r->body, (int)r->body_len, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) &&
            sqlite3_column_text(st, 1)) {
            snprintf(ent, sizeof ent, "%s", sqlite3_column_text(st, 0));
            snprintf(k, sizeof k, "%s", sqlite3_column_text(st, 1));
        } else {
            return emu_error(r, 400, "0x80040203",
                             "ReactivateEntityKey needs EntityLogicalName and "
                             "EntityKeyLogicalName in a JSON body.");
        }
    }
    sqlite3_stmt *st =
        store_stmt(e, "UPDATE ekey SET failed = 0, created = ?3 WHERE entity=?1 AND logical=?2");
    sqlite3_bind_text(st, 1, ent, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, k, -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(st, 3, emu_now(e));
    if (sqlite3_step(st) != SQLITE_DONE || sqlite3_changes(store_db(e)) == 0)
        return emu_error(r, 404, NOT_FOUND, "Could not find key '%s' on entity '%s'.", k, ent);
    emu_json(r, 200);
    sb_printf(&r->out,
              "{\"@odata.context\":\"%s$metadata#Microsoft.Dynamics.CRM."
              "ReactivateEntityKeyResponse\",\"EntityKeyIndexStatus\":\"%s\"}",
              r->base, store_key_status(e, ent, k));
    return 0;
}

int h_whoami(emu_req *r)
{
    if (!method_is(r, "GET")) return not_allowed(r, "WhoAmI (a function)", "GET");
    emu_json(r, 200);
    sb_printf(&r->out,
              "{\"@odata.context\":\"%s$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse\","
              "\"BusinessUnitId\":\"%s\",\"UserId\":\"%s\",\"OrganizationId\":\"%s\"}",
              r->base, EMU_BU_ID, EMU_USER_ID, EMU_ORG_ID);
    return 0;
}

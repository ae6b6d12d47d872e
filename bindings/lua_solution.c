/* `dataverse.solution`: solution files offline, without a server.
 *   solution.pack(dir)     -> zip bytes of a solution source folder
 *   solution.read(path)    -> zip bytes of a folder (packed) or of a .zip file
 *   solution.parse(bytes)  -> what an import would create: {unique_name=, version=, managed=,
 *                             friendly_name=, publisher_prefix=, entities={...}}
 * Each raises an error message naming the file and the problem. */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "emulator/solution_def.h"
#include "lua_modules.h"
#include "solution_zip.h"

#define DEF_META "dataverse.solution_def"

static int push_bytes_or_raise(lua_State *L, int rc, void *data, size_t len, const char *err)
{
    if (rc < 0) {
        lua_pushstring(L, err);
        return lua_error(L);
    }
    lua_pushlstring(L, data, len);
    free(data);
    return 1;
}

static int l_pack(lua_State *L)
{
    const char *dir = luaL_checkstring(L, 1);
    char err[1024];
    void *data;
    size_t len;
    int rc = dv_solution_zip_pack_dir(dir, &data, &len, err, sizeof err);
    return push_bytes_or_raise(L, rc, data, len, err);
}

static int l_read(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    char err[1024];
    void *data;
    size_t len;
    int rc = dv_solution_zip_read(path, &data, &len, err, sizeof err);
    return push_bytes_or_raise(L, rc, data, len, err);
}

static void set_string(lua_State *L, const char *field, const char *value)
{
    if (value) {
        lua_pushstring(L, value);
        lua_setfield(L, -2, field);
    }
}

static void push_entity(lua_State *L, const dv_entity_def *e)
{
    lua_createtable(L, 0, 8);
    set_string(L, "logical_name", e->logical_name);
    set_string(L, "entity_set_name", e->entity_set_name);
    set_string(L, "display_name", e->display_name);
    set_string(L, "primary_id", e->primary_id);
    set_string(L, "primary_name", e->primary_name);
    lua_pushboolean(L, e->change_tracking);
    lua_setfield(L, -2, "change_tracking");
    lua_pushboolean(L, e->has_info);
    lua_setfield(L, -2, "defines_table");

    lua_createtable(L, e->n_attributes, 0);
    for (int i = 0; i < e->n_attributes; i++) {
        const dv_attribute_def *a = &e->attributes[i];
        lua_createtable(L, 0, 6);
        set_string(L, "logical_name", a->logical_name);
        set_string(L, "display_name", a->display_name);
        set_string(L, "type", dv_attr_type_code(a->type));
        set_string(L, "type_name", dv_attr_type_name(a->type));
        if (a->max_length) {
            lua_pushinteger(L, a->max_length);
            lua_setfield(L, -2, "max_length");
        }
        lua_pushboolean(L, a->required);
        lua_setfield(L, -2, "required");
        set_string(L, "target", a->target);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "attributes");

    lua_createtable(L, e->n_keys, 0);
    for (int i = 0; i < e->n_keys; i++) {
        const dv_key_def *k = &e->keys[i];
        lua_createtable(L, 0, 3);
        set_string(L, "logical_name", k->logical_name);
        set_string(L, "display_name", k->display_name);
        lua_createtable(L, k->n_attributes, 0);
        for (int j = 0; j < k->n_attributes; j++) {
            lua_pushstring(L, k->attributes[j]);
            lua_rawseti(L, -2, j + 1);
        }
        lua_setfield(L, -2, "attributes");
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "keys");
}

static int l_parse(lua_State *L)
{
    size_t len;
    const char *zip = luaL_checklstring(L, 1, &len);
    char err[1024];
    /* Held by a userdata so that a Lua error while building the table (out of memory) still
     * frees it, through __gc. */
    dv_solution_def *def = lua_newuserdatauv(L, sizeof *def, 0);
    memset(def, 0, sizeof *def);
    luaL_setmetatable(L, DEF_META);
    if (dv_solution_parse_zip(zip, len, def, err, sizeof err) < 0) {
        lua_pushstring(L, err);
        return lua_error(L);
    }
    lua_createtable(L, 0, 6);
    set_string(L, "unique_name", def->unique_name);
    set_string(L, "friendly_name", def->friendly_name);
    set_string(L, "version", def->version);
    set_string(L, "publisher_prefix", def->publisher_prefix);
    lua_pushboolean(L, def->managed);
    lua_setfield(L, -2, "managed");
    lua_createtable(L, def->n_entities, 0);
    for (int i = 0; i < def->n_entities; i++) {
        push_entity(L, &def->entities[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "entities");
    lua_createtable(L, def->n_relationships, 0);
    for (int i = 0; i < def->n_relationships; i++) {
        const dv_relationship_def *r = &def->relationships[i];
        lua_createtable(L, 0, 4);
        set_string(L, "name", r->name);
        set_string(L, "referencing_entity", r->referencing_entity);
        set_string(L, "referencing_attribute", r->referencing_attribute);
        set_string(L, "referenced_entity", r->referenced_entity);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "relationships");
    dv_solution_def_free(def);
    return 1;
}

static int def_gc(lua_State *L)
{
    dv_solution_def_free(luaL_checkudata(L, 1, DEF_META));
    return 0;
}

int luaopen_dataverse_solution(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"pack", l_pack},
        {"read", l_read},
        {"parse", l_parse},
        {NULL, NULL},
    };
    if (luaL_newmetatable(L, DEF_META)) {
        lua_pushcfunction(L, def_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    return 1;
}

/* dvlua: the Lua 5.4 standalone interpreter, with Dataverse built in.
 * Follows Lua's own lua.c so that anything that works with `lua5.4` works here. */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "emulator/serve.h"
#include "interrupt.h"
#include "preload.h"
#include "repl.h"
#include "version.h"

static const char *progname = "dvlua";
static lua_State *globalL = NULL; /* only for the SIGINT hook, as lua.c does */
static int got_interrupt = 0;     /* an "interrupted!" error ended a chunk: exit status 130 */

/* Asked for (--help), the usage goes to stdout; after a bad option, to stderr. */
static void print_usage(FILE *out, const char *badoption)
{
    if (badoption[0] && (badoption[1] == 'e' || badoption[1] == 'l'))
        fprintf(stderr, "%s: '%s' needs argument\n", progname, badoption);
    else if (badoption[0])
        fprintf(stderr, "%s: unrecognized option '%s'\n", progname, badoption);
    fprintf(out,
            "usage: %s [options] [script [args]]\n"
            "Available options are:\n"
            "  -e stat   execute string 'stat'\n"
            "  -i        enter interactive mode after executing 'script'\n"
            "  -l mod    require library 'mod' into global 'mod'\n"
            "  -l g=mod  require library 'mod' into global 'g'\n"
            "  -v        show version information\n"
            "  -E        ignore environment variables\n"
            "  -W        turn warnings on\n"
            "  --        stop handling options\n"
            "  -         stop handling options and execute stdin\n"
            "  --serve [--listen HOST:PORT] [--db FILE|:memory:] [--token-file F] [--faults SPEC]\n"
            "            run the Dataverse Web API emulator in the foreground\n"
            "  --help    show this help\n"
            "  --version show version information\n"
            "With no script and stdin a terminal, dvlua starts the interactive mode, where\n"
            "'dataverse' is a global and 'org' connects on first use.\n"
            "Environment: DATAVERSE_URL, DATAVERSE_TOKEN, AZURE_TENANT_ID, AZURE_CLIENT_ID,\n"
            "AZURE_CLIENT_SECRET, DVLUA_TRACE=1, DVLUA_QUIET=1, XDG_DATA_HOME, LUA_INIT.\n"
            "See dvlua(1).\n",
            progname);
}

/* In the REPL progname is NULL: messages start with the chunk's place ("stdin:1:"). */
static void message(const char *msg)
{
    if (progname) fprintf(stderr, "%s: ", progname);
    fprintf(stderr, "%s\n", msg ? msg : "(error object is not a string)");
    fflush(stderr);
}

static int report(lua_State *L, int status)
{
    if (status != LUA_OK) {
        const char *m = lua_tostring(L, -1);
        /* (the REPL goes on after an interrupt; a script or -e chunk ends with it) */
        if (m && progname && strstr(m, "interrupted!")) got_interrupt = 1;
        message(lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    return status;
}

static void stop_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    luaL_error(L, "interrupted!");
}

static void on_sigint(int sig)
{
    int mask = LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT;
    signal(sig, SIG_DFL); /* a second Ctrl-C kills the process */
    lua_sethook(globalL, stop_hook, mask, 1);
    /* Then end a transfer or a wait in progress (src/http.c); after the hook, so that the
     * binding that reports the interrupt finds the hook to take back. */
    dv_interrupt_set();
}

/* Errors may be tables (Dataverse errors); __tostring gives them a readable message. */
static int msghandler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        /* A Dataverse error's text starts with the script line that made the call. */
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            msg = lua_tostring(L, -1);
        else
            msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static int docall(lua_State *L, int narg, int nres)
{
    int base = lua_gettop(L) - narg;
    lua_pushcfunction(L, msghandler);
    lua_insert(L, base);
    globalL = L;
    dv_interrupt_clear();
    signal(SIGINT, on_sigint);
    int status = lua_pcall(L, narg, nres, base);
    signal(SIGINT, SIG_DFL);
    lua_sethook(L, NULL, 0, 0); /* an interrupt already reported must not stop later code */
    lua_remove(L, base);
    return status;
}

static void print_version(void)
{
    printf("dvlua %s (%s)\n", DV_VERSION, LUA_COPYRIGHT);
}

/* arg[0] is the script, negative indices hold the interpreter and its options. */
static void create_arg_table(lua_State *L, char **argv, int argc, int script)
{
    if (script == argc) script = 0; /* no script: the interpreter itself is arg[0] */
    int narg = argc - (script + 1);
    lua_createtable(L, narg, script + 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - script);
    }
    lua_setglobal(L, "arg");
}

static int dochunk(lua_State *L, int status)
{
    if (status == LUA_OK) status = docall(L, 0, 0);
    return report(L, status);
}

static int dofile(lua_State *L, const char *name)
{
    return dochunk(L, luaL_loadfile(L, name));
}

static int dostring(lua_State *L, const char *s, const char *name)
{
    return dochunk(L, luaL_loadbuffer(L, s, strlen(s), name));
}

/* -l mod or -l g=mod */
static int dolibrary(lua_State *L, char *spec)
{
    char *eq = strchr(spec, '=');
    const char *glb = spec, *mod = spec;
    if (eq) {
        *eq = '\0';
        mod = eq + 1;
    }
    lua_getglobal(L, "require");
    lua_pushstring(L, mod);
    int status = docall(L, 1, 1);
    if (status == LUA_OK) lua_setglobal(L, glb);
    return report(L, status);
}

static int pushargs(lua_State *L)
{
    if (lua_getglobal(L, "arg") != LUA_TTABLE) luaL_error(L, "'arg' is not a table");
    int n = (int)luaL_len(L, -1);
    luaL_checkstack(L, n + 3, "too many arguments to script");
    for (int i = 1; i <= n; i++)
        lua_rawgeti(L, -i, i);
    lua_remove(L, -(n + 1));
    return n;
}

static int handle_script(lua_State *L, char **argv)
{
    const char *fname = argv[0];
    if (strcmp(fname, "-") == 0 && strcmp(argv[-1], "--") != 0) fname = NULL; /* stdin */
    int status = luaL_loadfile(L, fname);
    if (status == LUA_OK) {
        int n = pushargs(L);
        status = docall(L, n, 0);
    }
    return report(L, status);
}

#define has_error 1
#define has_i 2
#define has_v 4
#define has_e 8
#define has_E 16

/* Returns the flags seen; *first is the index of the script (or argc). */
static int collectargs(char **argv, int *first)
{
    int args = 0, i;
    if (argv[0] == NULL) {
        *first = 0;
        return 0;
    }
    for (i = 1; argv[i] != NULL; i++) {
        *first = i;
        if (argv[i][0] != '-') return args;
        switch (argv[i][1]) {
        case '-':
            if (argv[i][2] != '\0') return has_error;
            *first = i + 1;
            return args;
        case '\0':
            return args;
        case 'E':
            if (argv[i][2] != '\0') return has_error;
            args |= has_E;
            break;
        case 'W':
            if (argv[i][2] != '\0') return has_error;
            break;
        case 'i':
            args |= has_i;
            /* -i implies -v */
            /* fallthrough */
        case 'v':
            if (argv[i][2] != '\0') return has_error;
            args |= has_v;
            break;
        case 'e':
            args |= has_e;
            /* fallthrough */
        case 'l':
            if (argv[i][2] == '\0') {
                i++;
                if (argv[i] == NULL || argv[i][0] == '-') return has_error;
            }
            break;
        default:
            return has_error;
        }
    }
    *first = i;
    return args;
}

static int runargs(lua_State *L, char **argv, int n)
{
    for (int i = 1; i < n; i++) {
        int option = argv[i][1];
        switch (option) {
        case 'e':
        case 'l': {
            char *extra = argv[i] + 2;
            if (*extra == '\0') extra = argv[++i];
            int status =
                option == 'e' ? dostring(L, extra, "=(command line)") : dolibrary(L, extra);
            if (status != LUA_OK) return 0;
            break;
        }
        case 'W':
            lua_warning(L, "@on", 0);
            break;
        }
    }
    return 1;
}

static int handle_luainit(lua_State *L)
{
    const char *name = "=LUA_INIT_5_4";
    const char *init = getenv(name + 1);
    if (init == NULL) {
        name = "=LUA_INIT";
        init = getenv(name + 1);
    }
    if (init == NULL) return LUA_OK;
    if (init[0] == '@') return dofile(L, init + 1);
    return dostring(L, init, name);
}

static void doREPL(lua_State *L)
{
    const char *old = progname;
    progname = NULL;
    dv_repl(L, docall, report);
    progname = old;
}

#ifndef DV_LUA_CMOD
#define DV_LUA_CMOD "/usr/local/lib/lua/5.4"
#endif

/* C modules that come with dvlua but are not linked into it (dataverse_pg.so, which needs
 * libpq) are found beside the executable (a build tree) and where `make install` puts them,
 * after the places package.cpath names already. */
static void extend_cpath(lua_State *L)
{
    char exe[4096], dir[4200];
    luaL_Buffer b;
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "cpath");
    const char *cpath = lua_tostring(L, -1);
    luaL_buffinit(L, &b);
    luaL_addstring(&b, cpath ? cpath : "");
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) *slash = '\0';
        snprintf(dir, sizeof dir, ";%s/?.so", exe);
        if (!cpath || !strstr(cpath, dir + 1)) luaL_addstring(&b, dir);
    }
    snprintf(dir, sizeof dir, ";%s/?.so", DV_LUA_CMOD);
    if (!cpath || !strstr(cpath, dir + 1)) luaL_addstring(&b, dir);
    luaL_pushresult(&b);
    lua_setfield(L, -3, "cpath");
    lua_pop(L, 2);
}

static int pmain(lua_State *L)
{
    int argc = (int)lua_tointeger(L, 1);
    char **argv = lua_touserdata(L, 2);
    int script;
    int args = collectargs(argv, &script);
    luaL_checkversion(L);
    if (argv[0] && argv[0][0]) progname = argv[0];
    if (args == has_error) {
        print_usage(stderr, argv[script]);
        return 0;
    }
    if (args & has_v) print_version();
    if (args & has_E) {
        lua_pushboolean(L, 1);
        lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
    }
    luaL_openlibs(L);
    extend_cpath(L);
    dv_preload(L);
    create_arg_table(L, argv, argc, script);
    lua_gc(L, LUA_GCGEN, 0, 0);
    if (!(args & has_E) && handle_luainit(L) != LUA_OK) return 0;
    if (!runargs(L, argv, script)) return 0;
    if (script < argc && handle_script(L, argv + script) != LUA_OK) return 0;
    if (args & has_i)
        doREPL(L);
    else if (script == argc && !(args & (has_e | has_v))) {
        if (isatty(0)) {
            print_version();
            doREPL(L);
        } else
            dofile(L, NULL);
    }
    lua_pushboolean(L, 1);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--serve") == 0) return dv_serve_main(argc, argv);
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        print_usage(stdout, "");
        return fflush(stdout) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
    }
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        print_version();
        return EXIT_SUCCESS;
    }
#ifdef M_MMAP_THRESHOLD
    /* Some large blocks come and go once per page of a long read (Lua's string table as it
     * grows and shrinks, a page's arrays). Once one is freed glibc raises its mmap threshold
     * and carves the next ones out of the heap among small objects, where the holes they
     * leave make the heap creep up page after page (+1.5 MB over 200 pages). A fixed
     * threshold keeps them mapped and returned whole. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
#endif
    lua_State *L = luaL_newstate();
    if (L == NULL) {
        message("cannot create state: not enough memory");
        return EXIT_FAILURE;
    }
    lua_pushcfunction(L, pmain);
    lua_pushinteger(L, argc);
    lua_pushlightuserdata(L, argv);
    int status = lua_pcall(L, 2, 1, 0);
    int result = lua_toboolean(L, -1);
    report(L, status);
    lua_close(L);
    if (got_interrupt) return 130; /* 128 + SIGINT, as shells report a Ctrl-C */
    return (result && status == LUA_OK) ? EXIT_SUCCESS : EXIT_FAILURE;
}

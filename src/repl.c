#include "repl.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>

/* libedit (BSD) rather than GNU readline: readline is GPL-3, and a binary linked with it
 * could only be distributed under the GPL-3 (README, "Interactive use"). */
#include <editline/readline.h>

#define HISTORY_LINES 1000

/* What one session needs; lives on the C stack of dv_repl. */
struct repl {
    lua_State *L;
    dv_repl_call call;
    dv_repl_report report;
    int tty;            /* stdin is a terminal: edit lines with libedit */
    char history[4096]; /* empty: no history file */
    int show_ref;       /* the Lua function that prints results */
    int complete_ref;   /* the Lua function that completes a word on Tab */
    int matches_ref;    /* the completions being handed to libedit */
};

/* libedit's completion hooks carry no user data: the session of this process, set while
 * dv_repl runs on a terminal. */
static struct repl *completing;

/* Called by libedit with state 0, 1, 2... until it returns NULL; state 0 asks Lua. */
static char *match_at(const char *text, int state)
{
    struct repl *r = completing;
    if (r == NULL || r->complete_ref == LUA_NOREF) return NULL;
    lua_State *L = r->L;
    if (state == 0) {
        luaL_unref(L, LUA_REGISTRYINDEX, r->matches_ref);
        r->matches_ref = LUA_NOREF;
        lua_rawgeti(L, LUA_REGISTRYINDEX, r->complete_ref);
        lua_pushstring(L, text);
        if (lua_pcall(L, 1, 1, 0) != LUA_OK || !lua_istable(L, -1)) {
            lua_pop(L, 1);
            return NULL;
        }
        r->matches_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    if (r->matches_ref == LUA_NOREF) return NULL;
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->matches_ref);
    lua_rawgeti(L, -1, (lua_Integer)state + 1);
    const char *s = lua_tostring(L, -1);
    char *m = s ? strdup(s) : NULL;
    lua_pop(L, 2);
    return m;
}

static char **complete(const char *text, int start, int end)
{
    (void)start;
    (void)end;
    rl_attempted_completion_over = 1; /* Lua names only, never file names */
    return rl_completion_matches(text, match_at);
}

/* Words run through '.' and ':' so that `org:cre` and `dataverse.js` complete whole. */
static char word_breaks[] = " \t\n\"\\'><=;+-*/%^~#{}()[],&|";

/* The history may hold anything typed, tokens included: readable by its owner only, from
 * the moment the file exists (write_history keeps the mode of a file that is there). */
static void save_history(const struct repl *r)
{
    if (!r->tty || !r->history[0]) return;
    int fd = open(r->history, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return;
    int ok = fchmod(fd, 0600) == 0;
    close(fd);
    if (ok) write_history(r->history);
}

/* Set by Ctrl-C at the prompt; only ever written by the handler below. */
static volatile sig_atomic_t prompt_interrupted;

static void on_prompt_sigint(int sig)
{
    (void)sig;
    prompt_interrupted = 1;
}

/* Ctrl-C while a line is edited drops that line (and the statement it continues) rather
 * than the session: the handler is installed without SA_RESTART, so libedit's read fails
 * and readline returns NULL with the flag set. */
static char *edit_line(const char *prompt, int *interrupted)
{
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_prompt_sigint;
    sigemptyset(&sa.sa_mask);
    prompt_interrupted = 0;
    sigaction(SIGINT, &sa, &old);
    char *line = readline(prompt);
    sigaction(SIGINT, &old, NULL);
    *interrupted = line == NULL && prompt_interrupted;
    return line;
}

/* Pushes the next line without its newline: 1; 0 at end of input; -1 when Ctrl-C
 * dropped the line being edited. */
static int read_line(struct repl *r, const char *prompt)
{
    if (r->tty) {
        int interrupted;
        char *line = edit_line(prompt, &interrupted);
        if (interrupted) {
            fputs("\n", stdout);
            fflush(stdout);
            return -1;
        }
        if (line == NULL) return 0;
        lua_pushstring(r->L, line);
        free(line);
        return 1;
    }
    char buf[4096];
    luaL_Buffer b;
    fputs(prompt, stdout);
    fflush(stdout);
    if (fgets(buf, sizeof buf, stdin) == NULL) return 0;
    luaL_buffinit(r->L, &b);
    for (;;) {
        size_t l = strlen(buf);
        int whole = l > 0 && buf[l - 1] == '\n';
        luaL_addlstring(&b, buf, whole ? l - 1 : l);
        if (whole || fgets(buf, sizeof buf, stdin) == NULL) break;
    }
    luaL_pushresult(&b);
    return 1;
}

/* The prompt is the global _PROMPT (_PROMPT2 for a continued statement), as in lua.c. */
static int read_prompted(struct repl *r, int first)
{
    lua_State *L = r->L;
    lua_getglobal(L, first ? "_PROMPT" : "_PROMPT2");
    const char *prompt = lua_tostring(L, -1);
    int got = read_line(r, prompt ? prompt : first ? "> " : ">> ");
    lua_remove(L, got > 0 ? -2 : -1);
    return got;
}

static void remember(struct repl *r, const char *line)
{
    if (!r->tty || line[0] == '\0') return;
    add_history(line);
    save_history(r);
}

/* A syntax error at <eof> means the statement goes on in the next line. */
static int incomplete(lua_State *L, int status)
{
    if (status == LUA_ERRSYNTAX) {
        size_t lmsg;
        const char *msg = lua_tolstring(L, -1, &lmsg);
        if (lmsg >= 5 && strcmp(msg + lmsg - 5, "<eof>") == 0) {
            lua_pop(L, 1);
            return 1;
        }
    }
    return 0;
}

/* Leaves a loaded chunk (or an error message) on an empty stack; -1 at end of input.
 * An expression is tried first as `return <line>;` so that its value is printed. */
static int load_statement(struct repl *r)
{
    lua_State *L = r->L;
    int got;
    lua_settop(L, 0);
    while ((got = read_prompted(r, 1)) < 0) {
    }
    if (got == 0) return -1;
    const char *line = lua_tostring(L, 1);
    /* Not `return <line>;`, which makes a call a tail call: the function would replace
     * this chunk on the stack, and an error it raises at its caller's level would name
     * no line. Evaluated as an argument, the expression runs in the chunk, on stdin:1. */
    const char *ret = lua_pushfstring(
        L, "local function __dvlua_results(...) return ... end return __dvlua_results(%s);", line);
    int status = luaL_loadbuffer(L, ret, strlen(ret), "=stdin");
    if (status == LUA_OK) {
        remember(r, line);
        lua_remove(L, -2);
        lua_remove(L, 1);
        return status;
    }
    lua_pop(L, 2);
    for (;;) {
        size_t len;
        const char *code = lua_tolstring(L, 1, &len);
        status = luaL_loadbuffer(L, code, len, "=stdin");
        if (!incomplete(L, status)) break;
        got = read_prompted(r, 0);
        if (got < 0) { /* the statement was dropped: run nothing */
            lua_settop(L, 0);
            return luaL_loadstring(L, "");
        }
        if (got == 0) break;
        lua_pushliteral(L, "\n");
        lua_insert(L, -2);
        lua_concat(L, 3);
    }
    remember(r, lua_tostring(L, 1));
    lua_remove(L, 1);
    return status;
}

static void print_results(struct repl *r)
{
    lua_State *L = r->L;
    int n = lua_gettop(L);
    if (n == 0) return;
    luaL_checkstack(L, LUA_MINSTACK, "too many results to print");
    if (r->show_ref != LUA_NOREF)
        lua_rawgeti(L, LUA_REGISTRYINDEX, r->show_ref);
    else
        lua_getglobal(L, "print");
    lua_insert(L, 1);
    if (lua_pcall(L, n, 0, 0) != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        fprintf(stderr, "error printing the result (%s)\n", msg ? msg : "?");
        fflush(stderr);
        lua_pop(L, 1);
    }
}

/* require "dataverse.interactive" (G): sets the globals, returns {history=, show=}. A
 * failure there leaves a plain Lua REPL, with the reason on stderr. */
static int setup(lua_State *L)
{
    lua_getglobal(L, "require");
    lua_pushliteral(L, "dataverse.interactive");
    lua_call(L, 1, 1);
    lua_pushglobaltable(L);
    lua_call(L, 1, 1);
    return 1;
}

static void start(struct repl *r)
{
    lua_State *L = r->L;
    lua_pushcfunction(L, setup);
    if (r->call(L, 0, 1) != LUA_OK) {
        r->report(L, LUA_ERRRUN);
        return;
    }
    if (lua_getfield(L, -1, "complete") == LUA_TFUNCTION)
        r->complete_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    else
        lua_pop(L, 1);
    if (lua_getfield(L, -1, "show") == LUA_TFUNCTION)
        r->show_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    else
        lua_pop(L, 1);
    if (lua_getfield(L, -1, "history") == LUA_TSTRING) {
        const char *h = lua_tostring(L, -1);
        if (strlen(h) < sizeof r->history) strcpy(r->history, h);
    }
    lua_pop(L, 2);
}

void dv_repl(lua_State *L, dv_repl_call call, dv_repl_report report)
{
    struct repl r = {L, call, report, isatty(0), "", LUA_NOREF, LUA_NOREF, LUA_NOREF};
    int status;
    start(&r);
    if (r.tty) {
        rl_readline_name = "dvlua"; /* ~/.editrc lines "dvlua:..." apply */
        rl_catch_signals = 0;       /* Ctrl-C is ours: see edit_line */
        stifle_history(HISTORY_LINES);
        completing = &r;
        rl_attempted_completion_function = complete;
        rl_completer_word_break_characters = word_breaks;
        rl_completion_append_character = '\0';
        if (r.history[0]) read_history(r.history);
    }
    while ((status = load_statement(&r)) != -1) {
        if (status == LUA_OK) status = call(L, 0, LUA_MULTRET);
        if (status == LUA_OK)
            print_results(&r);
        else
            report(L, status);
    }
    save_history(&r);
    if (r.tty) {
        rl_attempted_completion_function = NULL;
        completing = NULL;
    }
    luaL_unref(L, LUA_REGISTRYINDEX, r.show_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, r.complete_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, r.matches_ref);
    lua_settop(L, 0);
    fputs("\n", stdout);
    fflush(stdout);
}

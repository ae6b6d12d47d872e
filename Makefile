# dvlua: a Lua 5.4 interpreter that speaks Microsoft Dataverse.
PREFIX  ?= /usr/local
CC      ?= cc
# libedit: line editing in `dvlua -i` (README says why not readline).
PKGS    := lua5.4 lua5.4-cjson libcurl libmicrohttpd sqlite3 libzip expat libedit
# CFLAGS and LDFLAGS are the user's (`make CFLAGS=-O0`); the project's own flags live apart.
CFLAGS  ?= -O2 -g
# -fPIC: the same objects go into dvlua and into the loadable module dataverse.so.
DV_CFLAGS  := -std=gnu11 -Wall -Wextra -fPIC -Isrc -Ibindings -Ibuild $(if $(LUA_INCDIR),-I$(LUA_INCDIR))
DV_LDFLAGS := -Wl,-E
# The module takes its Lua symbols from the host interpreter (Debian's lua5.4 links Lua
# statically), so it links everything but liblua. Line editing is the interpreter's alone.
MOD_PKGS := lua5.4-cjson libcurl libmicrohttpd sqlite3 libzip expat

# Installed layout (docs/dvlua.1, FILES).
BINDIR  = $(PREFIX)/bin
DATADIR = $(PREFIX)/share/dvlua
DOCDIR  = $(PREFIX)/share/doc/dvlua
MANDIR  = $(PREFIX)/share/man/man1
# Where Debian's lua5.4 looks for C modules: its own directory for /usr, else the
# /usr/local tree that package.cpath also searches.
LUA_CMOD ?= $(or $(if $(filter /usr,$(PREFIX)),$(shell pkg-config --variable=INSTALL_CMOD lua5.4 2>/dev/null)),$(PREFIX)/lib/lua/5.4)

# Resolved lazily so that `make deps` works before pkg-config has the packages.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
MOD_LIBS   = $(filter-out -llua5.4,$(shell pkg-config --libs $(MOD_PKGS) 2>/dev/null))

SRC  := $(wildcard src/*.c src/emulator/*.c bindings/*.c)
LUA  := $(sort $(wildcard bindings/dataverse/*.lua))
OBJ  := $(patsubst %.c,build/%.o,$(SRC)) build/embedded_lua.o
DEPF := $(OBJ:.o=.d)
# The interpreter's own files; everything else is the module.
EXE_OBJ := build/src/main.o $(patsubst %.c,build/%.o,$(wildcard src/repl*.c))
MOD_OBJ := $(filter-out $(EXE_OBJ),$(OBJ)) build/module_entries.o

.PHONY: all module deps test demo bench install uninstall clean format lint check-deps fuzz

all: dvlua dataverse.so

module: dataverse.so

dvlua: $(OBJ)
	$(CC) $(DV_LDFLAGS) $(LDFLAGS) -o $@ $(OBJ) $(PKG_LIBS) -lm -lpthread

# `require "dataverse"` from any Lua 5.4 (LUA_CPATH=./?.so lua5.4 -e 'require "dataverse"').
dataverse.so: $(MOD_OBJ)
	$(CC) -shared $(LDFLAGS) -o $@ $(MOD_OBJ) $(MOD_LIBS) -lm -lpthread

# Builds that manage their own dependencies (luarocks, packagers) pass CHECK_DEPS=.
CHECK_DEPS ?= check-deps

build/%.o: %.c | $(CHECK_DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(DV_CFLAGS) $(CFLAGS) $(PKG_CFLAGS) -MMD -MP -c -o $@ $<

# Lua helpers are compiled into the binary: no file lookups at run time.
build/embedded_lua.c: $(LUA) build/bin2c
	build/bin2c $(LUA) > $@

# The module's luaopen_dataverse_<x> for each embedded helper: Lua's all-in-one C loader
# finds them in dataverse.so when a submodule is required first (src/module.h).
build/module_entries.c: $(LUA)
	@mkdir -p build
	{ echo '#include "module.h"'; for f in $(LUA); do n=$$(basename $$f .lua); \
	  echo "int luaopen_dataverse_$$n(lua_State *L) { return dv_open_submodule(L, \"dataverse.$$n\"); }"; \
	  done; } > $@

build/module_entries.o: build/module_entries.c
	$(CC) $(DV_CFLAGS) $(CFLAGS) $(PKG_CFLAGS) -c -o $@ $<

build/embedded_lua.o: build/embedded_lua.c
	$(CC) $(DV_CFLAGS) $(CFLAGS) -c -o $@ $<

build/bin2c: tools/bin2c.c
	@mkdir -p build
	$(CC) -O2 -o $@ $<

# Installs missing Debian packages only; silent and quick when all are present.
check-deps:
	@sh scripts/install-deps.sh --check >/dev/null 2>&1 || sh scripts/install-deps.sh

deps:
	sh scripts/install-deps.sh

test: check-deps dvlua dataverse.so
	./dvlua spec/run.lua $(SPEC)

demo: check-deps dvlua
	./dvlua scripts/change_tracking_sample.lua --delete

bench: check-deps dvlua
	sh bench/run.sh

# libFuzzer target for the JSON decoder (docs/JSON.md); needs clang, skipped without it.
FUZZ_CC ?= clang
JSON_SRC := src/json.c src/json_decode.c src/json_encode.c
fuzz: check-deps
	@if command -v $(FUZZ_CC) >/dev/null 2>&1; then \
	  mkdir -p build && \
	  echo "$(FUZZ_CC) -fsanitize=fuzzer,address,undefined -o build/json_fuzz ..." && \
	  $(FUZZ_CC) -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Isrc $$(pkg-config --cflags lua5.4) \
	    -o build/json_fuzz fuzz/json_fuzz.c $(JSON_SRC) $$(pkg-config --libs lua5.4) -lm; \
	else echo "make fuzz: $(FUZZ_CC) not found, fuzz target not built"; fi

# Every scripts/*.lua is installed as the command dvlua-<name> with "_" written "-", except
# two long names (docs/dvlua.1, COMMANDS): change_tracking_sample is dvlua-sample and
# changes_jsonl is dvlua-changes. dvlua-sync is scripts/sync.lua, or sync_sqlite.lua in a
# tree without it. The commands start with `#!/usr/bin/env dvlua` (added where a script
# has no #! line of its own); solution folders they
# import go to $(DATADIR)/solutions, which they find relative to themselves.
SCRIPTS := $(wildcard scripts/*.lua)
cmdname = dvlua-$(subst _,-,$(patsubst change_tracking_sample,sample,$(patsubst changes_jsonl,changes,$(basename $(notdir $(1))))))
DOCS    := README.md $(wildcard docs/*.md)

install: dvlua dataverse.so
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LUA_CMOD) $(DESTDIR)$(MANDIR) \
	  $(DESTDIR)$(DOCDIR) $(DESTDIR)$(DATADIR)/solutions
	install -m 755 dvlua $(DESTDIR)$(BINDIR)/dvlua
	install -m 644 dataverse.so $(DESTDIR)$(LUA_CMOD)/dataverse.so
	install -m 644 docs/dvlua.1 $(DESTDIR)$(MANDIR)/dvlua.1
	install -m 644 $(DOCS) $(DESTDIR)$(DOCDIR)/
	for p in $(foreach s,$(SCRIPTS),$(s):$(call cmdname,$(s))); do \
	  src=$${p%%:*}; dst=$(DESTDIR)$(BINDIR)/$${p#*:}; \
	  { head -n 1 $$src | grep -q '^#!' || echo '#!/usr/bin/env dvlua'; cat $$src; } > $$dst && \
	  chmod 755 $$dst || exit 1; done
	$(if $(wildcard scripts/sync.lua),,ln -sf dvlua-sync-sqlite $(DESTDIR)$(BINDIR)/dvlua-sync)
	cp -R scripts/solutions/. $(DESTDIR)$(DATADIR)/solutions/

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/dvlua $(DESTDIR)$(BINDIR)/dvlua-sync $(DESTDIR)$(LUA_CMOD)/dataverse.so \
	  $(DESTDIR)$(MANDIR)/dvlua.1 $(foreach s,$(SCRIPTS),$(DESTDIR)$(BINDIR)/$(call cmdname,$(s)))
	rm -rf $(DESTDIR)$(DATADIR) $(DESTDIR)$(DOCDIR)

format:
	clang-format -i $(SRC) $(wildcard src/*.h src/emulator/*.h bindings/*.h) tools/bin2c.c

# The emulator's layers are checked on its objects: no file calls up (docs/EMULATOR.md).
lint: $(patsubst %.c,build/%.o,$(wildcard src/emulator/*.c))
	cppcheck --quiet --enable=warning,performance,portability --error-exitcode=1 \
	  --suppress=missingIncludeSystem -Isrc -Ibindings $(SRC)
	sh scripts/check-layers.sh

clean:
	rm -rf build dvlua dataverse.so

-include $(DEPF)

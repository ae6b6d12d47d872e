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
DEPF := $(OBJ:.o=.d) $(patsubst %.c,build/%.d,$(wildcard src/pg/*.c))
# The interpreter's own files; everything else is the module.
EXE_OBJ := build/src/main.o $(patsubst %.c,build/%.o,$(wildcard src/repl*.c))
MOD_OBJ := $(filter-out $(EXE_OBJ),$(OBJ)) build/module_entries.o

.PHONY: all module deps test demo bench install uninstall clean format lint check-deps fuzz \
	check-sanitize check-threads fuzz-short soak FORCE

all: dvlua dataverse.so dataverse_pg.so

module: dataverse.so

dvlua: $(OBJ) build/ldflags
	$(CC) $(DV_LDFLAGS) $(LDFLAGS) -o $@ $(OBJ) $(PKG_LIBS) -lm -lpthread

# `require "dataverse"` from any Lua 5.4 (LUA_CPATH=./?.so lua5.4 -e 'require "dataverse"').
dataverse.so: $(MOD_OBJ) build/ldflags
	$(CC) -shared $(LDFLAGS) -o $@ $(MOD_OBJ) $(MOD_LIBS) -lm -lpthread

# PostgreSQL over libpq (COPY for the sync stores) is a module of its own, loaded on demand:
# dvlua and dataverse.so do not link libpq. dvlua finds it beside itself and in LUA_CMOD.
PG_SRC  := $(wildcard src/pg/*.c)
PG_OBJ  := $(patsubst %.c,build/%.o,$(PG_SRC))
build/src/pg/%.o: DV_CFLAGS += $(shell pkg-config --cflags libpq 2>/dev/null)

build/src/main.o: DV_CFLAGS += -DDV_LUA_CMOD='"$(LUA_CMOD)"'

dataverse_pg.so: $(PG_OBJ) build/ldflags
	$(CC) -shared $(LDFLAGS) -o $@ $(PG_OBJ) $(shell pkg-config --libs libpq 2>/dev/null)

# Builds that manage their own dependencies (luarocks, packagers) pass CHECK_DEPS=.
CHECK_DEPS ?= check-deps

# The compiler and flags the objects were built with, in build/flags: the file is rewritten
# only when they change, and every object depends on it, so objects built with other flags
# (`make CFLAGS=-O0`, an older DV_CFLAGS without -fPIC) are rebuilt rather than linked.
# The headers each object includes come from the compiler (-MMD -MP, build/**/*.d).
# build/ldflags does the same for the link steps: `make LDFLAGS=…` relinks dvlua and the
# modules, and recompiles nothing.
stamp = @mkdir -p build; if [ "$$(cat $@ 2>/dev/null)" != '$(1)' ]; then printf '%s\n' '$(1)' > $@; fi
BUILD_FLAGS = $(subst ','\'',$(CC) $(DV_CFLAGS) $(CFLAGS))
LINK_FLAGS = $(subst ','\'',$(CC) $(DV_LDFLAGS) $(LDFLAGS))
build/flags: FORCE
	$(call stamp,$(BUILD_FLAGS))
build/ldflags: FORCE
	$(call stamp,$(LINK_FLAGS))

FORCE:

build/%.o: %.c build/flags | $(CHECK_DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(DV_CFLAGS) $(CFLAGS) $(PKG_CFLAGS) -MMD -MP -c -o $@ $<

# Lua helpers are compiled into the binary: no file lookups at run time. They go in as
# bytecode (debug information kept, so tracebacks still name file and line): parsing their
# source took about 12 million instructions at every start, loading the bytecode a tenth.
LUAC ?= luac5.4
LUAC_OUT := $(patsubst bindings/dataverse/%.lua,build/luac/%.luac,$(LUA))
build/luac/%.luac: bindings/dataverse/%.lua
	@mkdir -p build/luac
	cd bindings && $(LUAC) -o ../$@ dataverse/$*.lua
build/embedded_lua.c: $(LUAC_OUT) build/bin2c
	build/bin2c $(LUAC_OUT) > $@

# The module's luaopen_dataverse_<x> for each embedded helper: Lua's all-in-one C loader
# finds them in dataverse.so when a submodule is required first (src/module.h).
build/module_entries.c: $(LUA)
	@mkdir -p build
	{ echo '#include "module.h"'; for f in $(LUA); do n=$$(basename $$f .lua); \
	  echo "int luaopen_dataverse_$$n(lua_State *L) { return dv_open_submodule(L, \"dataverse.$$n\"); }"; \
	  done; } > $@

build/module_entries.o: build/module_entries.c build/flags
	$(CC) $(DV_CFLAGS) $(CFLAGS) $(PKG_CFLAGS) -c -o $@ $<

build/embedded_lua.o: build/embedded_lua.c build/flags
	$(CC) $(DV_CFLAGS) $(CFLAGS) -c -o $@ $<

build/bin2c: tools/bin2c.c
	@mkdir -p build
	$(CC) -O2 -o $@ $<

# Installs missing Debian packages only; silent and quick when all are present.
check-deps:
	@sh scripts/install-deps.sh --check >/dev/null 2>&1 || sh scripts/install-deps.sh

deps:
	sh scripts/install-deps.sh

test: check-deps dvlua dataverse.so dataverse_pg.so
	./dvlua spec/run.lua $(SPEC)

# The production-failure specs with more rounds, kills and overlapping runs (docs/RELIABILITY.md).
SOAK ?= 10
soak: check-deps dvlua dataverse.so
	DVLUA_SOAK=$(SOAK) ./dvlua spec/run.lua spec/sync_concurrent_spec.lua spec/sync_soak_spec.lua

demo: check-deps dvlua
	./dvlua scripts/change_tracking_sample.lua --delete

bench: check-deps dvlua
	sh bench/run.sh

# The whole spec suite on a build with AddressSanitizer and UndefinedBehaviorSanitizer, in
# build-san/ and ./dvlua-san so the normal build stays as it is. Children started by specs
# (DVLUA) are sanitized too; every report goes to build-san/report.* and any report fails the
# run, whether or not the spec that caused it looked at the child's exit status.
SAN_CC    ?= $(CC)
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
SAN_OBJ   := $(patsubst %.c,build-san/%.o,$(SRC)) build-san/embedded_lua.o
SAN_ENV    = ASAN_OPTIONS=log_path=$(CURDIR)/build-san/report:detect_leaks=1:abort_on_error=0 \
	LSAN_OPTIONS=suppressions=$(CURDIR)/fuzz/lsan.supp:print_suppressions=0 \
	UBSAN_OPTIONS=log_path=$(CURDIR)/build-san/report:print_stacktrace=1:halt_on_error=1 \
	DVLUA=$(CURDIR)/dvlua-san

dvlua-san: $(SAN_OBJ)
	$(SAN_CC) $(SAN_FLAGS) $(DV_LDFLAGS) $(LDFLAGS) -o $@ $(SAN_OBJ) $(PKG_LIBS) $(EDIT_LIBS) -lm -lpthread

build-san/%.o: %.c | check-deps
	@mkdir -p $(dir $@)
	$(SAN_CC) $(DV_CFLAGS) -O1 -g $(SAN_FLAGS) $(PKG_CFLAGS) -MMD -MP -c -o $@ $<

build-san/embedded_lua.o: build/embedded_lua.c
	@mkdir -p build-san
	$(SAN_CC) $(DV_CFLAGS) -O1 -g $(SAN_FLAGS) -c -o $@ $<

check-sanitize: check-deps dvlua-san
	@rm -f build-san/report.*
	$(SAN_ENV) ./dvlua-san spec/run.lua $(SPEC); status=$$?; \
	if ls build-san/report.* >/dev/null 2>&1; then \
	  echo "check-sanitize: sanitizer reports:"; cat build-san/report.*; exit 1; fi; \
	exit $$status

# The emulator's threads (request threads, the writers' queues, the pooled readers, the
# checkpointer) under ThreadSanitizer: build-tsan/ and ./dvlua-tsan, running the specs that
# put many writers, readers and processes on one store (TSAN_SPECS). Any report fails the run.
TSAN_FLAGS := -fsanitize=thread -fno-omit-frame-pointer
TSAN_OBJ   := $(patsubst %.c,build-tsan/%.o,$(SRC)) build-tsan/embedded_lua.o
TSAN_SPECS ?= spec/emulator_tables_spec.lua spec/emulator_writers_spec.lua \
	spec/emulator_crash_spec.lua spec/emulator_connections_spec.lua spec/api_parallel_spec.lua \
	spec/emulator_batch_spec.lua spec/emulator_bulk_spec.lua
TSAN_ENV    = TSAN_OPTIONS=log_path=$(CURDIR)/build-tsan/report:halt_on_error=0:second_deadlock_stack=1 \
	DVLUA=$(CURDIR)/dvlua-tsan

dvlua-tsan: $(TSAN_OBJ)
	$(SAN_CC) $(TSAN_FLAGS) $(DV_LDFLAGS) $(LDFLAGS) -o $@ $(TSAN_OBJ) $(PKG_LIBS) $(EDIT_LIBS) -lm -lpthread

build-tsan/%.o: %.c | check-deps
	@mkdir -p $(dir $@)
	$(SAN_CC) $(DV_CFLAGS) -O1 -g $(TSAN_FLAGS) $(PKG_CFLAGS) -MMD -MP -c -o $@ $<

build-tsan/embedded_lua.o: build/embedded_lua.c
	@mkdir -p build-tsan
	$(SAN_CC) $(DV_CFLAGS) -O1 -g $(TSAN_FLAGS) -c -o $@ $<

check-threads: check-deps dvlua-tsan
	@rm -f build-tsan/report.*
	$(TSAN_ENV) ./dvlua-tsan spec/run.lua $(TSAN_SPECS); status=$$?; \
	if ls build-tsan/report.* >/dev/null 2>&1; then \
	  echo "check-threads: ThreadSanitizer reports:"; cat build-tsan/report.*; exit 1; fi; \
	exit $$status

# libFuzzer targets for every parser that faces untrusted input (docs/FUZZ.md): the JSON
# decoder, the OData $filter/$orderby compiler, solution zips, and the emulator's router and
# handlers with bodies ($select/$expand, alternate keys, delta tokens, $batch, metadata).
# Built with clang into build/fuzz/; `make fuzz-short` runs each for FUZZ_SECONDS from its
# committed corpus in fuzz/corpus/<target>/ (new inputs go to build/fuzz/work/, not the repo).
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 15
FUZZ_FLAGS   := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_TARGETS := json query multipart solution http
JSON_SRC     := src/json.c src/json_decode.c src/json_encode.c
EMU_SRC      := $(wildcard src/emulator/*.c) src/base64.c src/solution_zip.c

build/fuzz/json_fuzz: fuzz/json_fuzz.c $(JSON_SRC)
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) $(DV_CFLAGS) $$(pkg-config --cflags lua5.4) -o $@ $^ \
	  $$(pkg-config --libs lua5.4) -lm

build/fuzz/query_fuzz: fuzz/query_fuzz.c src/emulator/query.c src/emulator/sbuf.c
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) $(DV_CFLAGS) -Isrc/emulator -o $@ $^ -lsqlite3 -lm

build/fuzz/multipart_fuzz: fuzz/multipart_fuzz.c src/emulator/multipart.c
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) $(DV_CFLAGS) -Isrc/emulator -o $@ $^

build/fuzz/solution_fuzz: fuzz/solution_fuzz.c src/emulator/solution_parse.c
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) $(DV_CFLAGS) -Isrc/emulator -o $@ $^ \
	  $$(pkg-config --cflags --libs libzip expat)

build/fuzz/http_fuzz: fuzz/http_fuzz.c $(EMU_SRC)
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) $(DV_CFLAGS) $(PKG_CFLAGS) -o $@ $^ $(PKG_LIBS) -lm -lpthread

fuzz: check-deps
	@command -v $(FUZZ_CC) >/dev/null 2>&1 || \
	  { echo "make fuzz: $(FUZZ_CC) not found (Debian: clang libclang-rt-dev)"; exit 1; }
	$(MAKE) $(patsubst %,build/fuzz/%_fuzz,$(FUZZ_TARGETS))

fuzz-short: fuzz
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p build/fuzz/work/$$t; \
	  echo "fuzz-short: $$t for $(FUZZ_SECONDS) s"; \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/fuzz/lsan.supp:print_suppressions=0 \
	  build/fuzz/$${t}_fuzz -max_total_time=$(FUZZ_SECONDS) -timeout=20 -artifact_prefix=build/fuzz/ \
	    -print_final_stats=1 build/fuzz/work/$$t fuzz/corpus/$$t 2>build/fuzz/$$t.log || \
	    { tail -60 build/fuzz/$$t.log; echo "fuzz-short: $$t FAILED"; exit 1; }; \
	  grep -E "stat::number_of_executed_units" build/fuzz/$$t.log; \
	done

# Every scripts/*.lua is installed as the command dvlua-<name> with "_" written "-", except
# two long names (docs/dvlua.1, COMMANDS): change_tracking_sample is dvlua-sample and
# changes_jsonl is dvlua-changes. dvlua-sync is scripts/sync.lua, or sync_sqlite.lua in a
# tree without it. The commands start with `#!/usr/bin/env dvlua` (added where a script
# has no #! line of its own); solution folders they
# import go to $(DATADIR)/solutions, which they find relative to themselves.
SCRIPTS := $(wildcard scripts/*.lua)
cmdname = dvlua-$(subst _,-,$(patsubst change_tracking_sample,sample,$(patsubst changes_jsonl,changes,$(basename $(notdir $(1))))))
DOCS    := README.md $(wildcard docs/*.md)

install: dvlua dataverse.so dataverse_pg.so
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LUA_CMOD) $(DESTDIR)$(MANDIR) \
	  $(DESTDIR)$(DOCDIR) $(DESTDIR)$(DATADIR)/solutions
	install -m 755 dvlua $(DESTDIR)$(BINDIR)/dvlua
	install -m 644 dataverse.so $(DESTDIR)$(LUA_CMOD)/dataverse.so
	install -m 644 dataverse_pg.so $(DESTDIR)$(LUA_CMOD)/dataverse_pg.so
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
	  $(DESTDIR)$(LUA_CMOD)/dataverse_pg.so \
	  $(DESTDIR)$(MANDIR)/dvlua.1 $(foreach s,$(SCRIPTS),$(DESTDIR)$(BINDIR)/$(call cmdname,$(s)))
	rm -rf $(DESTDIR)$(DATADIR) $(DESTDIR)$(DOCDIR)

format:
	clang-format -i $(SRC) $(PG_SRC) $(wildcard src/*.h src/emulator/*.h src/pg/*.h bindings/*.h) tools/bin2c.c

# The emulator's layers are checked on its objects: no file calls up (docs/EMULATOR.md).
lint: $(patsubst %.c,build/%.o,$(wildcard src/emulator/*.c))
	cppcheck --quiet --enable=warning,performance,portability --error-exitcode=1 \
	  --suppress=missingIncludeSystem -Isrc -Ibindings $(SRC) $(PG_SRC)
	sh scripts/check-layers.sh

clean:
	rm -rf build dvlua dataverse.so dataverse_pg.so build-san dvlua-san build-tsan dvlua-tsan

-include $(DEPF) $(SAN_OBJ:.o=.d) $(TSAN_OBJ:.o=.d)

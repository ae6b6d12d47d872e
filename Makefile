# dvlua: a Lua 5.4 interpreter that speaks Microsoft Dataverse.
PREFIX  ?= /usr/local
CC      ?= cc
PKGS    := lua5.4 lua5.4-cjson libcurl libmicrohttpd sqlite3 libzip expat
# CFLAGS and LDFLAGS are the user's (`make CFLAGS=-O0`); what the build needs is in DV_*.
CFLAGS  ?= -O2 -g
DV_CFLAGS  := -std=gnu11 -Wall -Wextra -Isrc -Ibindings -Ibuild
DV_LDFLAGS := -Wl,-E

# Resolved lazily so that `make deps` works before pkg-config has the packages.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

SRC  := $(wildcard src/*.c src/emulator/*.c bindings/*.c)
LUA  := $(sort $(wildcard bindings/dataverse/*.lua))
OBJ  := $(patsubst %.c,build/%.o,$(SRC)) build/embedded_lua.o
DEPF := $(OBJ:.o=.d)

.PHONY: all deps test demo bench install uninstall clean format lint check-deps fuzz \
	check-sanitize fuzz-short

all: dvlua

dvlua: $(OBJ)
	$(CC) $(DV_LDFLAGS) $(LDFLAGS) -o $@ $(OBJ) $(PKG_LIBS) -lm -lpthread

build/%.o: %.c | check-deps
	@mkdir -p $(dir $@)
	$(CC) $(DV_CFLAGS) $(CFLAGS) $(PKG_CFLAGS) -MMD -MP -c -o $@ $<

# Lua helpers are compiled into the binary: no file lookups at run time.
build/embedded_lua.c: $(LUA) build/bin2c
	build/bin2c $(LUA) > $@

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

test: check-deps dvlua
	./dvlua spec/run.lua $(SPEC)

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
	$(SAN_CC) $(SAN_FLAGS) $(DV_LDFLAGS) $(LDFLAGS) -o $@ $(SAN_OBJ) $(PKG_LIBS) -lm -lpthread

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

install: dvlua
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/dvlua/scripts
	install -m 755 dvlua $(DESTDIR)$(PREFIX)/bin/dvlua
	cp -R scripts/. $(DESTDIR)$(PREFIX)/share/dvlua/scripts/

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/dvlua
	rm -rf $(DESTDIR)$(PREFIX)/share/dvlua

format:
	clang-format -i $(SRC) $(wildcard src/*.h src/emulator/*.h bindings/*.h) tools/bin2c.c

# The emulator's layers are checked on its objects: no file calls up (docs/EMULATOR.md).
lint: $(patsubst %.c,build/%.o,$(wildcard src/emulator/*.c))
	cppcheck --quiet --enable=warning,performance,portability --error-exitcode=1 \
	  --suppress=missingIncludeSystem -Isrc -Ibindings $(SRC)
	sh scripts/check-layers.sh

clean:
	rm -rf build dvlua build-san dvlua-san

-include $(DEPF) $(SAN_OBJ:.o=.d)

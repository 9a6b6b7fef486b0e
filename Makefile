# kcpx: one Makefile for the whole tree.
#   make            build ./build/kcpx (+ BPF objects and skeletons)
#   make check      deps, format-check, every test; last line "N passed, N failed"
#   make demo       deps, build, a tunnel across an impaired link in two namespaces
#   make interop    deps, build, the full kcpx <-> stock kcptun matrix (docs/INTEROP.md)
#   make bench      tools/bench: kcpx vs kcptun vs TCP, docs/BENCH*.md and README.md figures
#   make install    binary, man page, systemd units, example configs (PREFIX, DESTDIR)
#   make deb        a Debian package in ./build/deb (dpkg-deb, Depends from dpkg-shlibdeps)
#   make SAN=1      ASan+UBSan build in ./build-san
#   make V=1        show the commands
.DELETE_ON_ERROR:
.SUFFIXES:

ifeq ($(V),1)
Q =
msg =
else
Q = @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

SAN ?= 0
ifeq ($(SAN),1)
OUT ?= build-san
SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
OUT ?= build
SANFLAGS =
endif

CC ?= gcc
CLANG ?= clang
BPFTOOL ?= bpftool
ARCH := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')

CFLAGS ?= -O2 -g
# Hardening: kcpx parses untrusted datagrams, often as root. _FORTIFY_SOURCE needs an
# optimising build and fights ASan's interceptors, so it is left out of -O0 and SAN=1.
HARDEN_CFLAGS = -fstack-protector-strong -fPIE
HARDEN_LDFLAGS = -pie -Wl,-z,relro,-z,now
ifeq ($(SAN),0)
ifneq ($(filter -O1 -O2 -O3 -Os -Og,$(CFLAGS)),)
HARDEN_CFLAGS += -U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=2
endif
endif
CFLAGS += -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter $(SANFLAGS) \
	  $(HARDEN_CFLAGS) -D_GNU_SOURCE -Iinclude -Iuser -I$(OUT)
LDFLAGS += $(SANFLAGS) $(HARDEN_LDFLAGS)
LDLIBS = -lsodium -lgcrypt -ljansson -lisal -lsnappy -lxdp -lbpf -lmnl -lelf -lz -lm -lpthread

BPF_CFLAGS = -g -O2 -Wall -Werror -target bpf -D__TARGET_ARCH_$(ARCH) \
	     -Iinclude -Ibpf -Ivmlinux/$(ARCH)

CORE_SRC := $(wildcard user/core/*.c)
IO_SRC := $(wildcard user/io/*.c)
APP_SRC := $(wildcard user/app/*.c)
BPF_SRC := $(wildcard bpf/*.bpf.c)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
BPFT_SRC := $(wildcard tests/bpf/test_*.c)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)

CORE_OBJ := $(CORE_SRC:%.c=$(OUT)/%.o)
IO_OBJ := $(IO_SRC:%.c=$(OUT)/%.o)
APP_OBJ := $(APP_SRC:%.c=$(OUT)/%.o)
BPF_OBJ := $(BPF_SRC:bpf/%.bpf.c=$(OUT)/bpf/%.bpf.o)
SKELS := $(BPF_SRC:bpf/%.bpf.c=$(OUT)/%.skel.h)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(OUT)/tests/unit/%)
BPFT_BIN := $(BPFT_SRC:tests/bpf/%.c=$(OUT)/tests/bpf/%)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=$(OUT)/tests/fuzz/%)

HDRS := $(wildcard include/*.h user/*/*.h)
# the tests' own headers (linksim.h, frames.h, ...): a change must rebuild the tests
UNIT_HDRS := $(wildcard tests/unit/*.h)
BPFT_HDRS := $(wildcard tests/bpf/*.h)
FUZZ_HDRS := $(wildcard tests/fuzz/*.h)

# keep the BPF objects and skeletons: they are not throwaway intermediates
.SECONDARY: $(BPF_OBJ) $(SKELS) $(BPF_OBJ:%.bpf.o=%.tmp.o)

.PHONY: all
all: $(OUT)/kcpx $(OUT)/kcpx.1 $(UNIT_BIN) $(BPFT_BIN) tools

$(OUT)/libkcpxcore.a: $(CORE_OBJ)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(OUT)/libkcpxio.a: $(IO_OBJ)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(OUT)/kcpx: $(APP_OBJ) $(OUT)/libkcpxio.a $(OUT)/libkcpxcore.a
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $(APP_OBJ) $(OUT)/libkcpxio.a $(OUT)/libkcpxcore.a $(LDLIBS)

$(OUT)/user/%.o: user/%.c $(HDRS) $(SKELS)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D) && $(CC) $(CFLAGS) -c -o $@ $<

# BPF: clang -> bpftool gen object (static linking) -> gen skeleton
$(OUT)/bpf/%.tmp.o: bpf/%.bpf.c $(wildcard bpf/lib/*.h) $(wildcard include/*.h) \
		   vmlinux/$(ARCH)/vmlinux.h
	$(call msg,BPF,$@)
	$(Q)mkdir -p $(@D) && $(CLANG) $(BPF_CFLAGS) -c -o $@ $<

$(OUT)/bpf/%.bpf.o: $(OUT)/bpf/%.tmp.o
	$(call msg,GENOBJ,$@)
	$(Q)$(BPFTOOL) gen object $@ $<

$(OUT)/%.skel.h: $(OUT)/bpf/%.bpf.o
	$(call msg,GENSKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name $(subst -,_,$*) > $@

$(OUT)/tests/unit/%: tests/unit/%.c $(UNIT_HDRS) $(OUT)/libkcpxcore.a $(HDRS)
	$(call msg,TEST,$@)
	$(Q)mkdir -p $(@D) && $(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< \
		$(OUT)/libkcpxcore.a $(LDLIBS)

$(OUT)/tests/bpf/%: tests/bpf/%.c $(UNIT_HDRS) $(BPFT_HDRS) $(OUT)/libkcpxio.a \
		    $(OUT)/libkcpxcore.a $(SKELS) $(HDRS)
	$(call msg,TEST,$@)
	$(Q)mkdir -p $(@D) && $(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< \
		$(OUT)/libkcpxio.a $(OUT)/libkcpxcore.a $(LDLIBS)

# Fuzz targets: clang libFuzzer + ASan/UBSan over the core sources.
FUZZ_CFLAGS = -g -O1 -std=gnu11 -D_GNU_SOURCE -Iinclude -Iuser \
	      -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
$(OUT)/tests/fuzz/%: tests/fuzz/%.c $(FUZZ_HDRS) $(CORE_SRC) $(HDRS)
	$(call msg,FUZZ,$@)
	$(Q)mkdir -p $(@D) && $(CLANG) $(FUZZ_CFLAGS) -o $@ $< $(CORE_SRC) $(LDLIBS)

.PHONY: unit-bins
unit-bins: $(UNIT_BIN)

.PHONY: fuzz
fuzz: $(FUZZ_BIN)

# tools/: the link emulator and other C helpers build from tools/Makefile.inc if present
-include tools/Makefile.inc
.PHONY: tools

# The man page: docs/kcpx.1.scd with the flag list printed from config.c's option table.
$(OUT)/tools/mkman: tools/mkman/mkman.c $(OUT)/user/app/config.o
	$(call msg,LINK,$@)
	$(Q)mkdir -p $(@D) && $(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ -ljansson

$(OUT)/kcpx.1: docs/kcpx.1.scd $(OUT)/tools/mkman
	$(call msg,MAN,$@)
	$(Q)$(OUT)/tools/mkman > $@.flags && \
		sed -e '/^@FLAGS@$$/{r $@.flags' -e 'd}' docs/kcpx.1.scd | scdoc > $@ && rm -f $@.flags

# make install: PREFIX=/usr/local by default; DESTDIR for staging. Units go where systemd
# looks for PREFIX (/usr -> /lib/systemd/system on Debian); their ExecStart points at
# BINDIR. Example configs land in /etc/kcpx only when no file of that name is there; so does
# the logrotate file, in /etc/logrotate.d for PREFIX /usr and /usr/local (logrotate reads
# only there), under PREFIX/etc otherwise (a private PREFIX does not write to /etc).
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR ?= $(if $(filter /usr,$(PREFIX)),/lib/systemd/system,$(PREFIX)/lib/systemd/system)
DOCDIR ?= $(PREFIX)/share/doc/kcpx
LOGROTATEDIR ?= $(if $(filter /usr /usr/local,$(PREFIX)),/etc/logrotate.d,$(SYSCONFDIR)/logrotate.d)
UNITS := kcpx-server@.service kcpx-client@.service kcpx-up@.service
EXAMPLES := server.json.example client.json.example eth0.json.example

.PHONY: install uninstall
install: $(OUT)/kcpx $(OUT)/kcpx.1
	$(call msg,INSTALL,$(DESTDIR)$(PREFIX))
	$(Q)install -D -m 0755 $(OUT)/kcpx $(DESTDIR)$(BINDIR)/kcpx
	$(Q)install -D -m 0644 $(OUT)/kcpx.1 $(DESTDIR)$(MANDIR)/man1/kcpx.1
	$(Q)install -d -m 0755 $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR)/examples
	$(Q)for u in $(UNITS); do \
		sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
			dist/systemd/$$u.in > $(DESTDIR)$(UNITDIR)/$$u && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$u || exit 1; done
	$(Q)install -m 0644 $(EXAMPLES:%=dist/examples/%) $(DESTDIR)$(DOCDIR)/examples/
	$(Q)install -d -m 0700 $(DESTDIR)$(SYSCONFDIR)/kcpx
	$(Q)for f in $(EXAMPLES); do \
		[ -e $(DESTDIR)$(SYSCONFDIR)/kcpx/$$f ] && { echo "  KEEP     $(DESTDIR)$(SYSCONFDIR)/kcpx/$$f"; continue; }; \
		install -m 0600 dist/examples/$$f $(DESTDIR)$(SYSCONFDIR)/kcpx/$$f; done
	$(Q)if [ -e $(DESTDIR)$(LOGROTATEDIR)/kcpx ]; then echo "  KEEP     $(DESTDIR)$(LOGROTATEDIR)/kcpx"; \
	else install -D -m 0644 dist/logrotate/kcpx $(DESTDIR)$(LOGROTATEDIR)/kcpx; fi

uninstall:
	$(Q)rm -f $(DESTDIR)$(BINDIR)/kcpx $(DESTDIR)$(MANDIR)/man1/kcpx.1 \
		$(UNITS:%=$(DESTDIR)$(UNITDIR)/%)
	$(Q)rm -rf $(DESTDIR)$(DOCDIR)
	@echo "  kept $(DESTDIR)$(SYSCONFDIR)/kcpx (your configs) and $(DESTDIR)$(LOGROTATEDIR)/kcpx"

# make deb: dist/debian/build-deb.sh stages `make install PREFIX=/usr`, then dpkg-deb.
.PHONY: deb
deb: $(OUT)/kcpx $(OUT)/kcpx.1
	$(Q)OUT=$(OUT) ./dist/debian/build-deb.sh

.PHONY: deps
deps:
	$(Q)./tools/deps.sh

FORMAT_SRC = $(shell find bpf include user tests tools -name '*.[ch]' 2>/dev/null)
.PHONY: format format-check
format:
	$(Q)clang-format -i $(FORMAT_SRC)
format-check:
	$(Q)clang-format --dry-run -Werror $(FORMAT_SRC) && echo "format-check: ok"

.PHONY: check
check: deps
	$(Q)./tests/run-all.sh

.PHONY: unit
unit: $(UNIT_BIN)
	$(Q)set -e; for t in $(UNIT_BIN); do $$t; done

.PHONY: demo
demo: deps
	$(Q)$(MAKE) --no-print-directory
	$(Q)./tools/demo.sh

.PHONY: interop
interop: deps
	$(Q)$(MAKE) --no-print-directory
	$(Q)./tests/interop/run-matrix.sh

.PHONY: clean
clean:
	$(Q)rm -rf build build-san

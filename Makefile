# Berth — see README.md.  `make demo` and `make test` are the two commands;
# both install what is missing first (`make deps`).

CC      ?= gcc
CLANG   ?= clang
PYTHON  := /usr/bin/python3

# Debian packages the build, the tests, the demo and the benchmarks use.
DEB_PKGS := build-essential dpkg-dev pkg-config clang clang-format libclang-rt-14-dev \
	libcurl4-openssl-dev libssl-dev libarchive-dev libcjson-dev libzstd-dev \
	libcmocka-dev libsqlite3-dev python3-pytest python3-requests python3-jwt python3-cryptography \
	busybox-static zstd docker-registry apache2-utils skopeo podman runc \
	libnl-3-dev libnl-route-3-dev libnftables-dev nftables iproute2 libcap-dev libseccomp-dev \
	qemu-system-x86 linux-image-amd64 python3 e2fsprogs kmod \
	libevent-dev python3-botocore python3-boto3 awscli libxml2-dev haproxy wrk
# The qemu line is the cgroup v2 lane (tests/vm/run): qemu TCG boots Debian's
# kernel; python3 runs the runner (it writes the initramfs cpio itself, so no
# cpio), mkfs.ext4 makes the scratch disk, busybox-static is the guest's init
# and the guest's modprobe is the host's kmod.

PKGS    := libcurl libarchive libcjson libcrypto libnl-3.0 libnl-route-3.0 libnftables \
	   libseccomp libcap sqlite3 libevent libxml-2.0
CSTD    := -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
	   -Wmissing-prototypes -Wformat=2 -D_GNU_SOURCE -I.
# Computed when make reads this file, so a target that installs the packages
# (deps) and then builds must build in a second make (demo, test and bench
# do): that one reads the .pc files deps installed.
CFLAGS_PKG := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LIBS    := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread

# A build without the libraries stops here with one line, not with the
# compiler's missing-header errors.  Goals that install or need no
# libraries skip the check.
NO_LIB_GOALS := deps demo test bench bench-scale fresh-machine clean
ifneq ($(filter-out $(NO_LIB_GOALS),$(or $(MAKECMDGOALS),all)),)
PKGS_MISSING := $(shell pkg-config --version >/dev/null 2>&1 || echo pkg-config; \
	for p in $(PKGS); do pkg-config --exists $$p 2>/dev/null || echo $$p; done)
ifneq ($(PKGS_MISSING),)
$(error missing build libraries ($(strip $(PKGS_MISSING))): run `make deps` first (as root), or `make demo` / `make test`, which run it)
endif
endif

# `berth --version` prints VERSION and, built from a git checkout, the
# commit (and berthd's agent introspection its Version).  Only cli/main.c
# and daemon/main.c are compiled with them; build/version holds the
# pair and changes only when they do, so a new commit rebuilds those objects.
VERSION      := 0.9.0
GIT_COMMIT   := $(shell git rev-parse --short HEAD 2>/dev/null)
VERSION_DEFS := -DBERTH_VERSION='"$(VERSION)"' $(if $(GIT_COMMIT),-DBERTH_COMMIT='"$(GIT_COMMIT)"')

OPT_release := -O2 -g
OPT_asan    := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all

# The release berth-shim is a static PIE: a task agent then maps only the
# pages it runs (RSS about 1.4 MiB, against 2.9 with libc, libnl and co
# shared), starts without ld.so, and runs on a host whatever its libraries
# (runtime/shim_nss.c: never the host's NSS modules either).  Debian has no
# static cJSON, so runtime/cjson-static.sh builds it from Debian's source
# package.  ASan needs its shared runtime: that shim stays dynamic.
CJSON_A         := build/cjson/libcjson.a
SHIM_DEPS_release := $(CJSON_A)
SHIM_LINK_release := -static-pie $(CJSON_A) -lnl-route-3 -lnl-3 -lseccomp -lcap
SHIM_LINK_asan    := -Wl,--as-needed $(LIBS)

# runtime/shim_main.c is the berth-shim binary's main(), daemon/main.c
# berthd's (the control plane, which `berth daemon` execs); the rest of
# runtime/ and daemon/ is library code.
SHIM_MAIN   := runtime/shim_main.c runtime/shim_nss.c
DAEMON_MAIN := daemon/main.c
NETPOL_MAIN := netns/policy_main.c
LIB_SRCS  := $(filter-out $(SHIM_MAIN) $(DAEMON_MAIN) $(NETPOL_MAIN),$(wildcard common/*.c images/*.c cgroups/*.c netns/*.c runtime/*.c daemon/*.c daemon/*/*.c))
BINS      := berth berthd berth-shim berth-netpolicy
CLI_SRCS  := $(wildcard cli/*.c)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)

.PHONY: all asan deps js-deps test lint unit unit-asan vm-lane integration integration-asan fuzz fuzz-short bench bench-scale demo clean install fresh-machine
all: $(BINS:%=build/release/%)

# $(1): build flavour (release | asan)
define flavour
build/$(1)/obj/%.o: %.c
	@mkdir -p $$(@D)
	$$(CC) $$(CSTD) $$(OPT_$(1)) $$(CFLAGS_PKG) -MMD -MP -c $$< -o $$@

build/$(1)/libberth.a: $$(LIB_SRCS:%.c=build/$(1)/obj/%.o)
	@rm -f $$@
	ar rcs $$@ $$^

build/$(1)/berth: $$(CLI_SRCS:%.c=build/$(1)/obj/%.o) build/$(1)/libberth.a
	$$(CC) $$(OPT_$(1)) -o $$@ $$^ -Wl,--as-needed $$(LIBS)

build/$(1)/berth-shim: $$(SHIM_MAIN:%.c=build/$(1)/obj/%.o) build/$(1)/libberth.a $$(SHIM_DEPS_$(1))
	$$(CC) $$(OPT_$(1)) -o $$@ $$(filter %.o,$$^) build/$(1)/libberth.a $$(SHIM_LINK_$(1))

build/$(1)/berthd: build/$(1)/obj/$(DAEMON_MAIN:.c=.o) build/$(1)/libberth.a
	$$(CC) $$(OPT_$(1)) -o $$@ $$^ -Wl,--as-needed $$(LIBS)

build/$(1)/berth-netpolicy: build/$(1)/obj/$(NETPOL_MAIN:.c=.o) build/$(1)/libberth.a
	$$(CC) $$(OPT_$(1)) -o $$@ $$^ -Wl,--as-needed $$(LIBS)

build/$(1)/tests/%: build/$(1)/obj/tests/unit/%.o build/$(1)/libberth.a
	@mkdir -p $$(@D)
	$$(CC) $$(OPT_$(1)) -o $$@ $$^ -Wl,--as-needed $$(LIBS) -lcmocka

# The load balancer's test target (tests/fixtures/lb_backend.c), beside
# the unit tests that start it.
build/$(1)/tests/lb_backend: build/$(1)/obj/tests/fixtures/lb_backend.o
	@mkdir -p $$(@D)
	$$(CC) $$(OPT_$(1)) -o $$@ $$^
build/$(1)/tests/test_lb: | build/$(1)/tests/lb_backend
# The load balancer benchmark's driver (tests/bench/lb.py).
build/$(1)/tests/lb_serve: build/$(1)/obj/tests/bench/lb_serve.o build/$(1)/libberth.a
	@mkdir -p $$(@D)
	$$(CC) $$(OPT_$(1)) -o $$@ $$^ -Wl,--as-needed $$(LIBS)

-include $$(shell find build/$(1) -name '*.d' 2>/dev/null)
endef
$(eval $(call flavour,release))
$(eval $(call flavour,asan))

VERSIONED := build/release/obj/cli/main.o build/asan/obj/cli/main.o \
	build/release/obj/daemon/main.o build/asan/obj/daemon/main.o
$(VERSIONED): CSTD += $(VERSION_DEFS)
$(VERSIONED): build/version
build/version: FORCE
	@mkdir -p $(@D)
	@echo '$(VERSION) $(GIT_COMMIT)' | cmp -s - $@ || echo '$(VERSION) $(GIT_COMMIT)' > $@
.PHONY: FORCE
FORCE:

asan: $(BINS:%=build/asan/%)

UNIT_release := $(UNIT_SRCS:tests/unit/%.c=build/release/tests/%)
UNIT_asan    := $(UNIT_SRCS:tests/unit/%.c=build/asan/tests/%)

unit: $(UNIT_release)
	@set -e; for t in $^; do echo "== $$t"; $$t; done

unit-asan: $(UNIT_asan)
	@set -e; for t in $^; do echo "== $$t (asan)"; ASAN_OPTIONS=detect_leaks=1 $$t; done

# libFuzzer targets (clang): the library compiled with coverage + sanitizers.
FUZZ_CFLAGS := -std=gnu11 -D_GNU_SOURCE -I. -g -O1 -fsanitize=fuzzer-no-link,address,undefined $(CFLAGS_PKG)
build/fuzz/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CLANG) $(FUZZ_CFLAGS) -c $< -o $@
# The fuzzed parsers and what they use: the rest of the library is not
# compiled with coverage at all.
FUZZ_LIB_SRCS := $(wildcard common/*.c) images/digest.c images/ref.c images/manifest.c \
	images/unpack.c daemon/server/sigv4.c daemon/server/credentials.c daemon/server/api_guard.c \
	daemon/server/api_decode.c daemon/elb/elb_form.c daemon/elb/elb_xml.c
build/fuzz/%: build/fuzz/obj/tests/fuzz/%.o $(FUZZ_LIB_SRCS:%.c=build/fuzz/obj/%.o)
	$(CLANG) -fsanitize=fuzzer,address,undefined -o $@ $^ $(LIBS)

FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=build/fuzz/%)
FUZZ_SECONDS ?= 300
# Every target runs from its committed seed corpus; new inputs go to
# build/fuzz/corpus/ and crash reproducers to build/fuzz/, never into the
# checkout.  fuzz-short is the 10 s smoke run inside `make test`.
define fuzz_run
	@set -e; for f in $(1); do n=$$(basename $$f); echo "== $$n"; \
	  mkdir -p build/fuzz/corpus/$$n; \
	  $$f -max_total_time=$(2) -seed=1 -artifact_prefix=build/fuzz/$$n- \
	    build/fuzz/corpus/$$n tests/fuzz/corpus/$$n 2>&1 | tail -n 3; \
	  test $${PIPESTATUS[0]} -eq 0; done
endef
fuzz-short: SHELL := /bin/bash
fuzz-short: $(FUZZ_BINS)
	$(call fuzz_run,$^,10)
fuzz: SHELL := /bin/bash
fuzz: $(FUZZ_BINS)
	$(call fuzz_run,$^,$(FUZZ_SECONDS))

# The cgroup-sensitive unit tests, both flavours, in ONE boot of a real
# cgroup v2 kernel (qemu TCG; natively on a cgroup v2 host).  tests/vm/README.md.
VM_LANE_TESTS := test_cgroups test_container test_netns
# The shim's integration tests marked `cgroup` run in the guest too: OOM,
# cpu and pids limits must hold on cgroup v2 as on v1.
VM_LANE_PYTEST := tests/integration/test_shim.py
# The daemon's tests marked `cgroup` boot once more in the cgroup leaf
# /berthlane, as a systemd host runs them (a service or a login shell,
# never the root cgroup): tasks, services, their restarts and OOM kills.
VM_LANE_DAEMON_PYTEST := tests/integration/test_api_tasks.py tests/integration/test_services.py
vm-lane: $(VM_LANE_TESTS:%=build/release/tests/%) $(VM_LANE_TESTS:%=build/asan/tests/%) all
	@export BERTH_BIN=$(CURDIR)/build/release/berth BERTH_SHIM=$(CURDIR)/build/release/berth-shim; \
	  tests/vm/lane.sh $(filter-out all,$^) $(VM_LANE_PYTEST); rc=$$?; \
	  tests/vm/lane.sh --cgroup berthlane $(VM_LANE_DAEMON_PYTEST) && exit $$rc

# INTEGRATION_SKIP: files another pass of `make test` already ran.
INTEGRATION_FILES = $(filter-out $(INTEGRATION_SKIP),$(wildcard tests/integration/test_*.py))
integration: all
	BERTH_BIN=$(CURDIR)/build/release/berth BERTH_SHIM=$(CURDIR)/build/release/berth-shim $(PYTHON) -m pytest -q -p no:cacheprovider $(INTEGRATION_FILES)

# Source rules no compiler checks: the daemon's layers include only downward;
# every global a runtime/ object of libberth.a defines has its module's
# prefix, and the launcher's files call each other without a loop
# (tests/lint/runtime_symbols.sh reads the objects with nm); the daemon's
# store statements go through the store's cache (tests/lint/store_stmts.sh).
RT_LIB_OBJS := $(filter build/release/obj/runtime/%,$(LIB_SRCS:%.c=build/release/obj/%.o))
lint: $(RT_LIB_OBJS)
	@tests/lint/layers.sh
	@tests/lint/runtime_symbols.sh $(RT_LIB_OBJS)
	@tests/lint/store_stmts.sh

# The control plane under ASan + UBSan: the API and services suites against
# build/asan's berth, berthd, berth-shim and berth-netpolicy.  A sanitizer
# report from any process of theirs (the daemon, its helpers, the shims)
# fails the test after which it appeared (tests/fixtures/sanitizers.py).
INTEGRATION_ASAN := $(wildcard tests/integration/test_api_*.py) tests/integration/test_services.py
integration-asan: asan
	BERTH_BIN=$(CURDIR)/build/asan/berth BERTH_SHIM=$(CURDIR)/build/asan/berth-shim $(PYTHON) -m pytest -q -p no:cacheprovider $(INTEGRATION_ASAN)

# pytest's summary line is the last thing `make test` prints.  The files
# integration-asan runs are not run again on the release build: the cgroup
# lane runs the task and service suites on it, and the second pass cost
# about 5 minutes of a 30-minute budget.
test: deps
	@$(MAKE) --no-print-directory lint
	@$(MAKE) --no-print-directory all asan
	@$(MAKE) --no-print-directory unit unit-asan fuzz-short
	@$(MAKE) --no-print-directory vm-lane
	@$(MAKE) --no-print-directory integration-asan
	@$(MAKE) --no-print-directory integration INTEGRATION_SKIP="$(INTEGRATION_ASAN)"

bench: deps
	@$(MAKE) --no-print-directory all build/release/tests/lb_serve build/release/tests/lb_backend
	BERTH_BIN=$(CURDIR)/build/release/berth $(PYTHON) tests/bench/run.py

# N tasks at once (default 1000; not part of bench: it holds the host for
# minutes).  `make bench-scale N=200` for a quicker run.
N ?= 1000
bench-scale: deps
	@$(MAKE) --no-print-directory all
	N=$(N) BERTH_BIN=$(CURDIR)/build/release/berth $(PYTHON) tests/bench/scale.py

demo: deps
	@$(MAKE) --no-print-directory all
	BERTH_BIN=$(CURDIR)/build/release/berth $(PYTHON) tests/fixtures/demo.py

deps:
	@missing=$$(for p in $(DEB_PKGS); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	  done); \
	if [ -n "$$missing" ]; then \
	  echo "make deps: installing" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@$(MAKE) --no-print-directory js-deps

# The JavaScript SDK the integration suite uses as a second ECS client
# (tests/js): exactly the versions of the committed lockfile, installed again
# only when the lockfile changes.  Node.js comes from the machine when it has
# one (the SDK needs Node 18 or newer), else from Debian.
JS_STAMP := tests/js/node_modules/.berth-lock
js-deps:
	@command -v node >/dev/null && command -v npm >/dev/null || { \
	  echo "make deps: installing nodejs npm"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }
	@cmp -s tests/js/package-lock.json $(JS_STAMP) || { \
	  echo "make deps: npm ci in tests/js"; \
	  cd tests/js && npm ci --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.berth-lock; }

# The proof that a newcomer's first `make demo` works: removes the packages
# only the build needs (headers, pkg-config), cleans, then runs the demo once.
# It changes the machine's packages: run it on a machine you own (CONTRIBUTING.md).
BUILD_ONLY_PKGS := libnl-3-dev libnl-route-3-dev libcjson-dev libseccomp-dev libcap-dev pkg-config
fresh-machine:
	DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq $(BUILD_ONLY_PKGS) >/dev/null
	$(MAKE) --no-print-directory clean
	$(MAKE) --no-print-directory demo

$(CJSON_A): runtime/cjson-static.sh
	CC=$(CC) runtime/cjson-static.sh $(@D)

install: $(BINS:%=build/release/%)
	for b in $(BINS); do install -D -m 0755 build/release/$$b $(DESTDIR)/usr/local/bin/$$b; done

clean:
	rm -rf build
.SECONDARY:

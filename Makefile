# dogdb_analytics: PGXS build.  The two commands for a fresh machine are
# "make demo" and "make check-all"; both install their Debian packages first.

EXTENSION	= dogdb_analytics
MODULE_big	= dogdb_analytics
OBJS		= $(patsubst %.c,%.o,$(wildcard src/*.c))
# sql/dogdb_analytics.sql is the one editable schema: the build copies it to
# the install script of the newest version.  Shipped scripts stay frozen:
# the first release (for the upgrade test) and every upgrade script.
EXTVERSION	= $(shell sed -n "s/^default_version = '\\(.*\\)'/\\1/p" $(EXTENSION).control)
DATA_built	= sql/$(EXTENSION)--$(EXTVERSION).sql
DATA		= sql/$(EXTENSION)--1.0.sql $(wildcard sql/$(EXTENSION)--*--*.sql)
PGFILEDESC	= "dogdb_analytics - DogDB analytics foundation"

# pg_regress inputs sit in sql/ (named by feature), outputs in expected/
REGRESS		= license import quality invoice kpi churn_path hardening funnel funnel_path stripe support
REGRESS_OPTS = --inputdir=. --load-extension=btree_gist --load-extension=$(EXTENSION)
# isolation specs in test/specs; test/expected links to the top-level expected/
ISOLATION	= import_concurrent invoice_concurrent kpi_refresh_concurrent stripe_concurrent support_refresh_concurrent
ISOLATION_OPTS = --inputdir=test --load-extension=btree_gist --load-extension=$(EXTENSION)

JANSSON_CFLAGS := $(shell pkg-config --cflags jansson 2>/dev/null)
JANSSON_LIBS   := $(shell pkg-config --libs jansson 2>/dev/null || echo -ljansson)
PG_CPPFLAGS	= -Isrc $(JANSSON_CFLAGS)
PG_CFLAGS	= -Wall -Wextra -Wno-unused-parameter	# PostgreSQL headers trip -Wunused-parameter
# libcrypto when the server has it (src/stripe_hmac.c keeps keyed HMAC contexts)
SHLIB_LINK	= $(JANSSON_LIBS) $(filter -lcrypto,$(shell $(PG_CONFIG) --libs))
EXTRA_CLEAN	= $(DATA_built) test/unit_license test/unit_proration test/unit_kpi test/unit_funnel test/unit_stripe \
			  test/fuzz/fuzz_license test/fuzz/fuzz_funnel test/fuzz/fuzz_stripe_header

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifneq ($(PGXS),)
include $(PGXS)
endif

# PGXS tracks no header dependencies: an object (and its bitcode) is rebuilt
# when any header of src/ changes, so a changed struct never meets a stale file
$(OBJS) $(OBJS:.o=.bc): $(wildcard src/*.h)

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps demo check-all bench bench-scale unit fuzz citus-check

$(DATA_built): sql/$(EXTENSION).sql $(EXTENSION).control
	cp $< $@

# Debian packages the build, tests, fuzzer and benchmark need
deps:
	test/install-deps.sh

# The demo: build, install, throwaway cluster (unless PGHOST/PGDATABASE set)
demo: deps
	$(MAKE) all
	$(SUDO) $(MAKE) install
	test/demo.sh

# Every test: unit tests, pg_regress, isolation, pgTAP, fuzzing
check-all: deps
	$(MAKE) all
	$(SUDO) $(MAKE) install
	test/run-tests.sh

bench: deps
	$(MAKE) all
	$(SUDO) $(MAKE) install
	test/bench/run.sh

# The KPI engine at 1M accounts (SCALE=n for another size); not in CI
bench-scale: deps
	$(MAKE) all
	$(SUDO) $(MAKE) install
	test/bench/scale.sh
# The Citus lab (README "Running on Citus"): CITUS_SRC = a Citus source tree,
# else it says skipped
citus-check:
	test/citus/lab.sh $(CITUS_SRC)

# The parsers and arithmetic alone, outside the server
unit: test/unit_license test/unit_proration test/unit_kpi test/unit_funnel test/unit_stripe
	prove -v test/unit_license test/unit_proration test/unit_kpi test/unit_funnel test/unit_stripe

test/unit_license: test/unit_license.c test/tap.h src/license_parse.c src/license_parse.h
	$(CC) -std=gnu99 -Wall -Wextra -Werror -O2 -g -Isrc -o $@ test/unit_license.c src/license_parse.c $(JANSSON_CFLAGS) $(JANSSON_LIBS)

test/unit_kpi: test/unit_kpi.c test/tap.h src/calendar.c src/calendar.h src/month_bitmap.c src/month_bitmap.h src/random.c src/random.h
	$(CC) -std=gnu99 -Wall -Wextra -Werror -O2 -g -fsanitize=address,undefined -fno-sanitize-recover=all -Isrc -o $@ test/unit_kpi.c src/calendar.c src/month_bitmap.c src/random.c

test/unit_funnel: test/unit_funnel.c test/tap.h test/funnel_bruteforce.h src/funnel_core.c src/funnel_core.h src/random.c src/random.h
	$(CC) -std=gnu99 -Wall -Wextra -Werror -Wno-missing-field-initializers -O2 -g -fsanitize=undefined,address -fno-sanitize-recover=all -Isrc -Itest -o $@ test/unit_funnel.c src/funnel_core.c src/random.c

test/unit_stripe: test/unit_stripe.c test/tap.h src/stripe_sig.c src/stripe_sig.h src/stripe_core.c src/stripe_core.h
	$(CC) -std=gnu99 -Wall -Wextra -Werror -O2 -g -fsanitize=address,undefined -fno-sanitize-recover=all -Isrc -o $@ test/unit_stripe.c src/stripe_sig.c src/stripe_core.c $(JANSSON_CFLAGS) $(JANSSON_LIBS) -lm

test/unit_proration: test/unit_proration.c test/tap.h src/proration.c src/proration.h
	$(CC) -std=gnu99 -Wall -Wextra -Werror -O2 -g -fsanitize=undefined -fno-sanitize-recover=all -Isrc -o $@ test/unit_proration.c src/proration.c

FUZZ_SECONDS ?= 45
fuzz: test/fuzz/fuzz_license test/fuzz/fuzz_funnel test/fuzz/fuzz_stripe_header
	test/fuzz/run.sh $(FUZZ_SECONDS)

test/fuzz/fuzz_funnel: test/fuzz/fuzz_funnel.c test/funnel_bruteforce.h src/funnel_core.c src/funnel_core.h
	clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
		-Isrc -Itest -o $@ test/fuzz/fuzz_funnel.c src/funnel_core.c

test/fuzz/fuzz_stripe_header: test/fuzz/fuzz_stripe_header.c src/stripe_sig.c src/stripe_sig.h src/stripe_core.c src/stripe_core.h
	clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
		-Isrc -o $@ test/fuzz/fuzz_stripe_header.c src/stripe_sig.c src/stripe_core.c $(JANSSON_CFLAGS) $(JANSSON_LIBS) -lm

test/fuzz/fuzz_license: test/fuzz/fuzz_license.c src/license_parse.c src/license_parse.h
	clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
		-Isrc -o $@ test/fuzz/fuzz_license.c src/license_parse.c $(JANSSON_CFLAGS) $(JANSSON_LIBS)

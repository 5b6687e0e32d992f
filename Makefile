# OptiSchema: build and install the extension with PGXS, plus the project's
# own targets (deps, demo, test, bench). See README.md.

EXTVERSION   = 0.1.0
PG_CONFIG   ?= /usr/lib/postgresql/15/bin/pg_config
MODULEDIR    = extension
DATA         = extension/optischema.control $(wildcard extension/optischema--*--*.sql)
DATA_built   = extension/optischema--$(EXTVERSION).sql
EXTRA_CLEAN  = $(DATA_built)

PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifneq ($(PGXS),)
include $(PGXS)
endif

# PL/Python imports the engine package from here; the built script names it.
ENGINE_DIR = $(datadir)/optischema
SQL_SOURCES = $(sort $(wildcard sql/*.sql))

extension/optischema--$(EXTVERSION).sql: $(SQL_SOURCES)
	{ echo '-- Built from sql/*.sql by make; edit those, not this file.'; \
	  printf '%s\n' '\echo Use "CREATE EXTENSION optischema CASCADE" to load this file. \quit'; \
	  for f in $(SQL_SOURCES); do echo; echo "-- $$f"; cat $$f; done; } \
	| sed -e 's|@ENGINE_DIR@|$(ENGINE_DIR)|g' > $@

install: install-engine
install-engine:
	$(MKDIR_P) '$(DESTDIR)$(ENGINE_DIR)/optischema_engine'
	$(INSTALL_DATA) extension/optischema_engine/*.py '$(DESTDIR)$(ENGINE_DIR)/optischema_engine/'

.PHONY: deps install-engine install-checked demo test bench cluster-start cluster-stop

deps:
	scripts/deps.sh

# make install, or, when this user cannot write to PostgreSQL's directories
# and what is installed there is not this build, the exact command to run.
install-checked: deps
	@if [ -w '$(datadir)/extension' ]; then $(MAKE) --no-print-directory install >/dev/null; \
	else $(MAKE) --no-print-directory all >/dev/null; \
	  if ! diff -q extension/optischema--$(EXTVERSION).sql '$(datadir)/extension/optischema--$(EXTVERSION).sql' >/dev/null 2>&1 || \
	     ! diff -rq --exclude=__pycache__ extension/optischema_engine '$(ENGINE_DIR)/optischema_engine' >/dev/null 2>&1; then \
	    echo "PostgreSQL's directories are not writable by $$(id -un) and hold another build: run 'sudo make install', then repeat." >&2; \
	    exit 1; fi; fi

cluster-start: deps
	scripts/cluster.sh start
cluster-stop:
	scripts/cluster.sh stop

demo: install-checked cluster-start
	.venv/bin/python -m demo

test: install-checked cluster-start
	scripts/run-tests.sh

# The benchmark gets a cluster of its own: other databases' statements in a
# shared pg_stat_statements would evict its 5,000 and skew every figure.
BENCH_ENV = OPTISCHEMA_PGPORT=55433 OPTISCHEMA_PGDATA=$${TMPDIR:-/tmp}/optischema-$$(id -un)/bench
bench: install-checked
	$(BENCH_ENV) scripts/cluster.sh start
	$(BENCH_ENV) .venv/bin/python -m bench

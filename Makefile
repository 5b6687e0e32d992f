# OptiSchema: build and install the extension with PGXS, plus the project's
# own targets (deps, demo, test, bench). See README.md.

# The version lives in the control file; everything else reads it from there.
EXTVERSION  := $(shell sed -n "s/^default_version = '\([^']*\)'/\1/p" extension/optischema.control)
PG_CONFIG   ?= /usr/lib/postgresql/15/bin/pg_config
MODULEDIR    = extension
SQL_SOURCES  = $(sort $(wildcard sql/*.sql))
# Released scripts, frozen (sql/releases/), and the upgrades into this version
# (sql/upgrades/A--$(EXTVERSION).sql), built from their steps and sql/.
FROZEN       = $(patsubst sql/releases/%,extension/%,$(wildcard sql/releases/optischema--*.sql))
UPGRADES     = $(patsubst sql/upgrades/%,extension/optischema--%,$(wildcard sql/upgrades/*--$(EXTVERSION).sql))
DATA         = extension/optischema.control
DATA_built   = extension/optischema--$(EXTVERSION).sql $(FROZEN) $(UPGRADES)
EXTRA_CLEAN  = $(DATA_built)

PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifneq ($(PGXS),)
include $(PGXS)
endif

# PL/Python imports the engine of its own version from ENGINE_BASE/<version>
# (0.1.0 from ENGINE_BASE itself). Versions before this one get an engine that
# only says to run ALTER EXTENSION optischema UPDATE: no database runs the SQL
# of one version with the engine of another.
ENGINE_BASE  = $(datadir)/optischema
OLD_VERSIONS = $(filter-out $(EXTVERSION),$(patsubst sql/releases/optischema--%.sql,%,$(filter-out %--%--%,$(wildcard sql/releases/optischema--*.sql))))
BUILD_SQL    = ENGINE_BASE='$(ENGINE_BASE)' EXTVERSION='$(EXTVERSION)' scripts/build-sql.sh

extension/optischema--$(EXTVERSION).sql: $(SQL_SOURCES) scripts/build-sql.sh
	$(BUILD_SQL) install $@
$(UPGRADES): extension/optischema--%.sql: sql/upgrades/%.sql $(SQL_SOURCES) scripts/build-sql.sh
	$(BUILD_SQL) upgrade $@ $<
$(FROZEN): extension/%.sql: sql/releases/%.sql scripts/build-sql.sh
	$(BUILD_SQL) frozen $@ $<

# The plain install (no extension, no PL/Python: optischema-sidecar install and
# upgrade) ships in the sidecar package: the same sources, built by the same script
# (setup.py builds the same for a pip install). Upgrades from the versions that had
# a plain install: 0.1.0 had none, and its steps are the extension's alone.
PLAIN_UPGRADES = $(patsubst sql/upgrades/%,sidecar/sql/optischema--%,$(filter-out sql/upgrades/0.1.0--%,$(wildcard sql/upgrades/*--$(EXTVERSION).sql)))
PLAIN        = sidecar/sql/optischema--$(EXTVERSION).sql $(PLAIN_UPGRADES)
EXTRA_CLEAN += $(PLAIN)
all: $(PLAIN)
sidecar/sql/optischema--$(EXTVERSION).sql: $(SQL_SOURCES) scripts/build-sql.sh
	@mkdir -p sidecar/sql
	$(BUILD_SQL) plain $@
$(PLAIN_UPGRADES): sidecar/sql/optischema--%.sql: sql/upgrades/%.sql $(SQL_SOURCES) scripts/build-sql.sh
	@mkdir -p sidecar/sql
	$(BUILD_SQL) plain-upgrade $@ $<

install: install-engine
install-engine:
	rm -rf '$(DESTDIR)$(ENGINE_BASE)/$(EXTVERSION)'
	$(MKDIR_P) '$(DESTDIR)$(ENGINE_BASE)/$(EXTVERSION)/optischema_engine'
	$(INSTALL_DATA) extension/optischema_engine/*.py '$(DESTDIR)$(ENGINE_BASE)/$(EXTVERSION)/optischema_engine/'
	for v in $(OLD_VERSIONS); do \
	  d='$(DESTDIR)$(ENGINE_BASE)'/$$( [ "$$v" = 0.1.0 ] || echo "$$v/" )optischema_engine; \
	  rm -rf "$$d" && $(MKDIR_P) "$$d" && \
	  sed -e "s|@EXTVERSION@|$(EXTVERSION)|g" -e "s|@OLDVERSION@|$$v|g" extension/retired_engine.py > "$$d/__init__.py"; \
	done

.PHONY: deps install-engine install-checked demo test bench bench-scale bench-tpch cluster-start cluster-stop

deps:
	scripts/deps.sh

# make install, or, when this user cannot write to PostgreSQL's directories
# and what is installed there is not this build, the exact command to run.
install-checked: deps
	@if [ -w '$(datadir)/extension' ]; then $(MAKE) --no-print-directory install >/dev/null; \
	else $(MAKE) --no-print-directory all >/dev/null; \
	  for f in $(DATA_built); do diff -q $$f '$(datadir)/extension/'$$(basename $$f) >/dev/null 2>&1 || stale=1; done; \
	  diff -rq --exclude=__pycache__ extension/optischema_engine '$(ENGINE_BASE)/$(EXTVERSION)/optischema_engine' >/dev/null 2>&1 || stale=1; \
	  if [ -n "$$stale" ]; then \
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

# The scale benchmark at 200 tables / 2,000 statements (bench/scale_bench.py; make bench
# runs it at 50): loading and replaying take a few minutes on 2 cores.
bench-scale: install-checked
	$(BENCH_ENV) scripts/cluster.sh start
	$(BENCH_ENV) .venv/bin/python -m bench.scale_bench 200

# TPC-H (bench/tpch.py): its own target, not run by `make bench` (loading SF1 takes a
# minute, the workload and the advice a few more, --real about 10). Its own cluster too:
# the 1 GB database is kept there between runs, and make bench's capture benchmark
# resets pg_stat_statements. Options: make bench-tpch TPCH_ARGS='--real' (-h lists them).
TPCH_ENV = OPTISCHEMA_PGPORT=55434 OPTISCHEMA_PGDATA=$${TMPDIR:-/tmp}/optischema-$$(id -un)/tpch
bench-tpch: install-checked
	@.venv/bin/tpchgen-cli --version >/dev/null 2>&1 || .venv/bin/python -m pip install --quiet -e '.[bench]'
	$(TPCH_ENV) scripts/cluster.sh start
	$(TPCH_ENV) .venv/bin/python -m bench.tpch $(TPCH_ARGS)

# Two commands on a fresh machine: `make demo` and `make test`.
# The demo loads its world as of now (every date moved by one amount; the extract stays the
# seed's own), so its open queue is today's, however long after the world's end it runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements.lock
# The docs site (mkdocs.yml); the theme's notices about MkDocs' future are not warnings.
DOCS_ENV := DISABLE_MKDOCS_2_WARNING=true NO_MKDOCS_2_WARNING=1

.PHONY: demo serve test docs lint lock typecheck format bench clean

$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c $(LOCK) -e '.[dev,docs]'
	# The audit's cross-check (tests only): aequitas 1.1 pins pandas<3, yet its group and
	# disparity tables work on pandas 3, so it goes in without its pins.
	$(BIN)/pip install --quiet -c $(LOCK) altair==6.3.0 seaborn==0.13.2 validators==0.36.0
	$(BIN)/pip install --quiet --no-deps aequitas==1.1.0
	touch $(STAMP)

# Re-resolve every dependency from pyproject.toml in a scratch environment and pin the result.
lock:
	rm -rf var/lock-venv
	$(PYTHON) -m venv var/lock-venv
	var/lock-venv/bin/pip install --quiet --upgrade pip
	var/lock-venv/bin/pip install --quiet '.[dev,docs]'
	{ sed -n '1,3p' $(LOCK); var/lock-venv/bin/pip freeze --exclude-editable | grep -v '^triage'; } > $(LOCK).new
	mv $(LOCK).new $(LOCK)
	rm -rf var/lock-venv

demo: $(STAMP)
	$(BIN)/triage synth --out var/extract --report
	$(BIN)/triage db upgrade
	$(BIN)/triage link train --extract var/extract
	$(BIN)/triage load var/extract --as-of now
	$(BIN)/triage train --data var/extract
	$(BIN)/triage users demo
	@echo "Serving on http://127.0.0.1:8000 (pages: sign in with a demo account above; API docs at http://127.0.0.1:8000/docs)"
	$(BIN)/triage serve --host 127.0.0.1 --port 8000

serve: $(STAMP)
	@echo "Serving on http://127.0.0.1:8000 (pages at /, API docs at /docs)"
	$(BIN)/triage serve --host 127.0.0.1 --port 8000

test: lint typecheck
	$(DOCS_ENV) $(BIN)/mkdocs build --strict --quiet
	$(BIN)/pytest

# Style, then the layers: imports run one way (core <- features <- models <- explain <- api
# <- command line) and no package's modules import each other in a cycle (pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

docs: $(STAMP)
	@echo "Serving the docs on http://127.0.0.1:8001 (rebuilt as you edit)"
	$(DOCS_ENV) $(BIN)/mkdocs serve --dev-addr 127.0.0.1:8001

typecheck: $(STAMP)
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/pip install --quiet -c $(LOCK) -e '.[dev,docs,bench]'
	$(BIN)/python bench/synth_bench.py
	$(BIN)/python bench/features_bench.py
	$(BIN)/python bench/engines_bench.py
	$(BIN)/python bench/online_bench.py
	$(BIN)/python bench/score_bench.py
	$(BIN)/python bench/train_bench.py
	$(BIN)/python bench/explain_bench.py
	$(BIN)/python bench/fairness_bench.py
	test -x var/bench-recordlinkage/bin/python || { $(PYTHON) -m venv var/bench-recordlinkage \
		&& var/bench-recordlinkage/bin/pip install --quiet 'recordlinkage==0.16' 'pandas<3' pyarrow; }
	test -f var/extract-1m/identity_records.parquet || $(BIN)/triage synth --referrals 1000000 --out var/extract-1m
	$(BIN)/python bench/linkage_bench.py --extract var/extract-1m --peer-records 1000000
	command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python bench/api_bench.py
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python bench/pages_bench.py

clean:
	rm -rf var .pytest_cache

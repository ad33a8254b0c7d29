# Every target sets itself up on a fresh machine: the virtualenv is created and filled on demand.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
EXTRAS ?= qdrant,pinecone,weaviate,sochdb,milvus,pgvector,chroma,lancedb,parquet,notebook,dask

.PHONY: install browser demo test test-nojit test-slow test-live bench lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -U pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[$(EXTRAS)]' --group dev
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

# The browser tests (tests/notebook/test_lab_browser.py) drive JupyterLab in the system Chromium
# (Playwright's own download needs the internet). Installed here only when missing, as root, with
# apt-get; otherwise (or if it fails) those tests skip and print the install command.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	      || echo "chromium could not be installed: the browser tests will skip"; \
	  else echo "no chromium (install: apt-get install -y chromium): the browser tests will skip"; fi; }

DEMO_ID ?= demo

demo: install  ## 02 and 03 headless on the embedded default: executed notebooks, PNGs and report.html in papermill-runs/$(DEMO_ID)/
	$(VENV)/bin/vmkit run-notebook 02_migrate --id $(DEMO_ID)
	$(VENV)/bin/vmkit run-notebook 03_validation_report --id $(DEMO_ID)
	$(VENV)/bin/vmkit status --id $(DEMO_ID) --state papermill-runs/state.db

test: lint browser  ## lint (ruff, mypy, the import contract), the whole suite, then core to migration again without the JIT
	$(PY) -m pytest -m "not slow" --durations=15
	NUMBA_DISABLE_JIT=1 $(PY) -m pytest -q tests/core tests/state tests/planning tests/migration

test-slow: install  ## long soak and crash-loop runs
	$(PY) -m pytest -m slow

test-live: install  ## connector contract and live tests against the services named in the environment (docs/live-tests.md); the others are skipped with the reason
	$(PY) -m pytest -m live -rs tests/connectors

bench: install  ## benchmarks: each prints its figures beside a baseline from the same run
	$(PY) bench/bench_kernel.py
	$(PY) bench/bench_qdrant_local.py
	$(PY) bench/bench_pinecone_pipeline.py
	$(PY) bench/bench_synthetic_scale.py
	$(PY) bench/bench_weaviate_sample.py
	$(PY) bench/bench_weaviate_tenants.py
	$(PY) bench/bench_milvus_load.py
	$(PY) bench/bench_pgvector_load.py
	$(PY) bench/bench_local_engines.py
	$(PY) bench/bench_parquet.py

lint: install  ## ruff, mypy and the import contract (layers, one package per database)
	$(VENV)/bin/ruff check vmkit tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) demo-data .vmkit .pytest_cache

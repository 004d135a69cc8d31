# The two commands: `make run` starts the whole service, `make test` runs the tests.
# Both set themselves up (virtualenv, packages, local PostgreSQL and Redis when
# DATABASE_URL / REDIS_URL are unset).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
PROCESSES ?= web stream worker scheduler

.PHONY: run test bench install install-test migrate clean

$(STAMP): requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11 or newer is needed ($(PYTHON) is older)"; exit 2; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

$(TEST_STAMP): $(STAMP) requirements-test.txt
	$(PY) -m pip install --quiet -r requirements-test.txt
	@touch $@

install: $(STAMP)
install-test: $(TEST_STAMP)

run: $(STAMP)
	@$(PY) tools/devenv.py run --purpose run -- sh -c '\
	  set -e; export PATH="$(CURDIR)/$(VENV)/bin:$$PATH"; \
	  python -m scoreboard migrate; \
	  echo "API on http://127.0.0.1:$${PORT:-8000}  (OpenAPI: /api/openapi.json; Ctrl-C stops everything)"; \
	  exec honcho start -f Procfile -p $${PORT:-8000} $(PROCESSES)'

test: $(TEST_STAMP)
	@bash tools/system_packages.sh
	@$(PY) tools/devenv.py run --purpose test -- sh -c '\
	  export PATH="$(CURDIR)/$(VENV)/bin:$$PATH"; \
	  python -m pytest $(PYTEST_ARGS)'

bench: $(TEST_STAMP)
	@bash tools/system_packages.sh
	@$(PY) tools/devenv.py run --purpose test -- $(PY) bench/run.py $(BENCH_ARGS)

migrate: $(STAMP)
	@$(PY) tools/devenv.py run --purpose run -- $(PY) -m scoreboard migrate

clean:
	rm -rf $(VENV) .pytest_cache

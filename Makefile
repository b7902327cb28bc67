# The README's two commands are `make demo` and `make test`; each sets itself up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
DEMO_IMAGES ?= 300
PYTEST_ARGS ?=
# Real gpu-queue workers refining rounds: they run in a pytest process of their own, because
# the Celery producer pools that earlier tests switch between brokers leave them a closed pool.
OWN_PROCESS_TESTS := tests/studies/test_rounds_worker.py

.PHONY: install demo test lint format lock bench chromium clean rehearsal

$(BIN)/.installed: requirements.lock requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements-dev.lock
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/python manage.py demo --images $(DEMO_IMAGES) --port $(PORT)

# seed 001 on the production stack with a burst of simulated workers and injected faults
# (README, "Launch rehearsal"); needs PostgreSQL on 127.0.0.1:5432 and redis-server on PATH.
REHEARSAL_ARGS ?=
rehearsal: install
	$(BIN)/python manage.py rehearse $(REHEARSAL_ARGS)

# Installs Debian's Chromium for the browser tests when it is missing and we may (root + apt).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get install -y -q chromium >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; } || \
	    echo "Could not install chromium: browser tests will skip"; \
	  else echo "chromium not found: browser tests will skip (apt-get install chromium)"; fi; }

test: install chromium
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest --ignore=$(OWN_PROCESS_TESTS) $(PYTEST_ARGS)
	$(BIN)/python -m pytest $(OWN_PROCESS_TESTS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Re-pins every dependency from requirements*.in (needs the package index).
lock:
	rm -rf .lockenv && $(PYTHON) -m venv .lockenv
	.lockenv/bin/pip install --quiet -r requirements-dev.in
	$(PYTHON) scripts/write_locks.py .lockenv/bin/pip
	rm -rf .lockenv

bench: install
	$(BIN)/python benchmarks/import_coco.py

clean:
	rm -rf $(VENV) data .pytest_cache

# Two commands do everything on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
export DJANGO_SETTINGS_MODULE := crm.settings

.PHONY: run dev test test-fast test-load fuzz lint format install browser bench screenshot clean

$(VENV)/.installed: requirements.lock .python-version
	@python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else "Python >= 3.12 is needed (Django 6). With pyenv, .python-version selects 3.12; otherwise install 3.12 and put it first on PATH.")'
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet --require-hashes -r requirements.lock
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(VENV)/.installed node_modules/.installed

# Serve with gunicorn + whitenoise, like production, on an embedded SQLite database, with the
# background worker (webhooks, automation, periodic jobs) and the event pump beside it.
run: install
	$(PY) manage.py migrate --no-input
	$(PY) manage.py seed_demo
	$(PY) manage.py seed_automation
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} DJANGO_PLAIN_STATIC=0 $(PY) manage.py collectstatic --no-input -v0
	@echo "Demo logins: admin / manager / rep / rep2, password: $${DEMO_PASSWORD:-pipeline-demo}"
	@echo "Open http://$(HOST):$(PORT)/"
	@echo "Serving with gunicorn + the task worker + the event pump; Ctrl-C stops all three."
	HOST=$(HOST) PORT=$(PORT) VENV=$(VENV) scripts/serve.sh

# Django's development server with auto-reload.
dev: install
	$(PY) manage.py migrate --no-input
	$(PY) manage.py seed_demo
	$(PY) manage.py seed_automation
	$(PY) manage.py runserver $(HOST):$(PORT)

# Debian's Chromium for the browser tests (Playwright cannot download its own here).
browser:
	@command -v chromium >/dev/null || { \
		echo "Installing Debian's chromium for the browser tests"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) manage.py makemigrations --check --dry-run -v0

# Whole files per worker: module-scoped fixtures (a gunicorn, a seeded database) run once.
# (--dist loadgroup would do that per xdist_group, but with pytest 9 xdist cannot tag the
# test ids, so the groups were split and each concurrency run happened twice.)
test: install browser lint
	$(VENV)/bin/pytest -n 2 --dist loadfile -m "not load" $(PYTEST_ARGS)

# Long load runs kept out of `make test`: a 45,000-row import against gunicorn while
# others post notes (about 4 minutes per database on this machine).
test-load: install
	$(VENV)/bin/pytest -n 0 -m load $(PYTEST_ARGS)

# Without the browser tests and the slow ones (fuzzing, concurrency), for a quick loop.
test-fast: install
	$(VENV)/bin/pytest -n 2 --dist loadfile -m "not e2e and not slow" $(PYTEST_ARGS)

# The fuzz tests with 2,000 examples per endpoint (`make test` tries 100 fresh ones).
fuzz: install
	FUZZ_PROFILE=fuzz $(VENV)/bin/pytest -n 2 --dist load tests/test_fuzz.py $(PYTEST_ARGS)

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install
	$(PY) scripts/bench.py
	$(PY) scripts/bench_api.py
	$(PY) scripts/bench_automation.py

screenshot: install browser
	$(PY) scripts/screenshot.py

clean:
	rm -rf $(VENV) node_modules staticfiles db.sqlite3 db.sqlite3-*

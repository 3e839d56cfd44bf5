# The front door: `make run` serves the product on embedded defaults; `make test` runs the suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip -q --disable-pip-version-check
# The production environment exactly as the image installs it (requirements/base.txt, nothing
# else): the end-to-end tests run their Celery worker and web server processes on it.
PROD_VENV := .venv-prod

TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/jia_payments
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: run test venv lint format bench migrate clean localstripe lock migrations-check

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# requirements/*.txt are locks (every package, transitive ones included, pinned with hashes),
# compiled from the requirements/*.in that people edit: `make lock` after changing an .in file.
$(VENV)/.installed-dev: $(VENV)/bin/python requirements/dev.txt
	$(PIP) install --require-hashes -r requirements/dev.txt
	touch $@

$(PROD_VENV)/.installed: requirements/base.txt
	$(PYTHON) -m venv $(PROD_VENV)
	$(PROD_VENV)/bin/pip -q --disable-pip-version-check install --require-hashes -r requirements/base.txt
	touch $@

venv: $(VENV)/.installed-dev

LOCK := $(VENV)/bin/uv pip compile --quiet --universal --generate-hashes --python-version 3.11 \
	--custom-compile-command "make lock"

lock: $(VENV)/.installed-dev
	$(LOCK) requirements/base.in -o requirements/base.txt
	$(LOCK) requirements/dev.in -o requirements/dev.txt

# Embedded defaults: SQLite in var/, local-memory cache, eager Celery, events kept in the outbox,
# and the fake Stripe (localstripe on 127.0.0.1:8420) running beside the server while it runs.
run: $(VENV)/.installed-dev
	DEBUG=true LOG_FORMAT=console $(PY) manage.py migrate --no-input
	DEBUG=true LOG_FORMAT=console $(PY) manage.py loaddata catalog pricing_zones
	DEBUG=true LOG_FORMAT=console $(PY) manage.py ensure_dev_staff
	$(PY) -m testsupport.localstripe --port 8420 > var/localstripe.log 2>&1 & stripe_pid=$$!; \
	trap 'kill $$stripe_pid 2>/dev/null' EXIT INT TERM; \
	DEBUG=true LOG_FORMAT=console $(PY) manage.py runserver 127.0.0.1:8000

# The admin browser test drives Debian's Chromium (Playwright cannot download its own browser here).
CHROMIUM := /usr/bin/chromium

$(CHROMIUM):
	apt-get update && apt-get install -y chromium

test: $(VENV)/.installed-dev $(PROD_VENV)/.installed $(CHROMIUM) lint migrations-check
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
		$(PY) testsupport/check_services.py
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
		PRODUCTION_VENV=$(CURDIR)/$(PROD_VENV) $(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Every model change has its migration (on the embedded SQLite default: no server needed).
migrations-check: $(VENV)/.installed-dev
	env -u DATABASE_URL -u POSTGRES_DSN DEBUG=true $(PY) manage.py makemigrations --check --dry-run

format: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(VENV)/.installed-dev
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
		$(PY) -m bench --write $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(PROD_VENV) var staticfiles

# The fake Stripe `make run` points at by default (STRIPE_API_BASE=http://127.0.0.1:8420).
localstripe: $(VENV)/.installed-dev
	$(PY) -m testsupport.localstripe --port 8420

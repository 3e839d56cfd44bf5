# The front door: `make run` serves the product on embedded defaults; `make test` runs the suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip -q --disable-pip-version-check

TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/jia_payments
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: run test venv lint format bench migrate clean localstripe

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

$(VENV)/.installed-base: $(VENV)/bin/python requirements/base.txt
	$(PIP) install -r requirements/base.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed-base requirements/dev.txt
	$(PIP) install -r requirements/dev.txt
	touch $@

venv: $(VENV)/.installed-dev

# Embedded defaults: SQLite in var/, local-memory cache, eager Celery, events kept in the outbox,
# and the fake Stripe (localstripe on 127.0.0.1:8420) running beside the server while it runs,
# sending its webhooks to the server (signed with a development secret), as a Stripe account would.
RUN_PORT ?= 8000
LOCALSTRIPE_PORT ?= 8420
RUN_ENV := DEBUG=true LOG_FORMAT=console STRIPE_API_BASE=http://127.0.0.1:$(LOCALSTRIPE_PORT)

run: $(VENV)/.installed-dev
	$(RUN_ENV) $(PY) manage.py migrate --no-input
	$(RUN_ENV) $(PY) manage.py loaddata catalog pricing_zones
	$(RUN_ENV) $(PY) manage.py ensure_dev_staff
	$(RUN_ENV) $(PY) manage.py dev_token --all
	$(PY) -m testsupport.localstripe --port $(LOCALSTRIPE_PORT) > var/localstripe.log 2>&1 & stripe_pid=$$!; \
	trap 'kill $$stripe_pid 2>/dev/null' EXIT INT TERM; \
	$(RUN_ENV) $(PY) manage.py stripe_dev_webhook --base-url http://127.0.0.1:$(RUN_PORT) && \
	$(RUN_ENV) $(PY) manage.py runserver 127.0.0.1:$(RUN_PORT)

# The admin browser test drives Debian's Chromium (Playwright cannot download its own browser here).
CHROMIUM := /usr/bin/chromium

$(CHROMIUM):
	apt-get update && apt-get install -y chromium

test: $(VENV)/.installed-dev $(CHROMIUM)
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
		$(PY) testsupport/check_services.py
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
		$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(VENV)/.installed-dev
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
		$(PY) -m bench --write $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var staticfiles

# The fake Stripe `make run` points at by default (STRIPE_API_BASE=http://127.0.0.1:8420).
localstripe: $(VENV)/.installed-dev
	$(PY) -m testsupport.localstripe --port 8420

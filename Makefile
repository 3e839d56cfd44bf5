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

.PHONY: run test venv lint format bench migrate clean localstripe lock migrations-check proto proto-release

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
# and the fake Stripe (localstripe on 127.0.0.1:8420, its objects kept in var/ beside the database
# that refers to them) running beside the server while it runs,
# sending its webhooks to the server (signed with a development secret), as a Stripe account would.
# The gRPC API is served beside HTTP on GRPC_ADDRESS (127.0.0.1:8081).
RUN_PORT ?= 8000
LOCALSTRIPE_PORT ?= 8420
# What selects a service or a secret is left out of the shell's environment: a developer's exported
# REDIS_URL would make tasks go to a broker no worker of `make run` reads (a purchase never granted).
RUN_UNSET := DATABASE_URL POSTGRES_DSN REDIS_URL REDIS_ADDR CELERY_BROKER_URL CELERY_TASK_ALWAYS_EAGER \
	EVENTS_BROKERS EVENTS_PROVIDER STRIPE_SECRET STRIPE_WEBHOOK_SECRET AUTH_PUBLIC_KEY_PEM AUTH_JWKS_PATH
RUN_ENV := env $(addprefix -u ,$(RUN_UNSET)) DEBUG=true LOG_FORMAT=console \
	STRIPE_API_BASE=http://127.0.0.1:$(LOCALSTRIPE_PORT)

run: $(VENV)/.installed-dev
	$(RUN_ENV) $(PY) manage.py migrate --no-input
	$(RUN_ENV) $(PY) manage.py loaddata catalog pricing_zones
	$(RUN_ENV) $(PY) manage.py ensure_dev_staff --base-url http://127.0.0.1:$(RUN_PORT)
	$(RUN_ENV) $(PY) manage.py dev_token --all
	$(PY) -m testsupport.localstripe --port $(LOCALSTRIPE_PORT) --store var/localstripe.pickle \
		> var/localstripe.log 2>&1 & stripe_pid=$$!; \
	$(RUN_ENV) $(PY) manage.py grpcserver & grpc_pid=$$!; \
	trap 'kill $$stripe_pid $$grpc_pid 2>/dev/null' EXIT INT TERM; \
	$(RUN_ENV) $(PY) manage.py stripe_dev_webhook --base-url http://127.0.0.1:$(RUN_PORT) && \
	$(RUN_ENV) $(PY) manage.py runserver 127.0.0.1:$(RUN_PORT)

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
	$(PY) -m testsupport.localstripe --port 8420 --store var/localstripe.pickle

# The gRPC contract: regenerate the checked-in Python code after editing proto/ (a test fails
# while it is stale), and record a released contract (buf breaking then guards it).
proto: $(VENV)/.installed-dev
	$(VENV)/bin/buf lint
	$(PY) proto/generate.py

proto-release: proto
	$(VENV)/bin/buf build -o proto/released.binpb

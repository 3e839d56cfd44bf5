"""The one settings module. Every value comes from the environment (django-environ).

Unset, each setting falls back to the embedded default that works on a laptop with nothing
installed: SQLite, local-memory cache, Celery eager, events kept in the outbox, Stripe pointed at
a local fake. With DEBUG=false the process refuses to start when a secret it needs is missing.
"""

import logging
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

APP_NAME = env.str("APP_NAME", default="jia-payments")
DEBUG = env.bool("DEBUG", default=False)


def _required_in_production(name: str, embedded_default: str) -> str:
    """A secret production must set; the embedded default serves only a DEBUG process."""
    value = env.str(name, default="")
    if value:
        return value
    if DEBUG:
        return embedded_default
    raise ImproperlyConfigured(
        f"{name} is not set. It is required when DEBUG is false (production); "
        f"set {name} in the environment, or set DEBUG=true for local development."
    )


SECRET_KEY = _required_in_production("SECRET_KEY", "insecure-development-key-" + "x" * 40)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# --- Applications -------------------------------------------------------------------------

INSTALLED_APPS = [
    "backoffice.site.BackofficeAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "djstripe",
    "jia_payments.core",
    "pricing",
    "entitlements",
    "payments",
    "backoffice",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "jia_payments.core.api.middleware.ProblemDetailsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "jia_payments.core.api.middleware.SessionMiddleware",
    "jia_payments.core.api.middleware.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "jia_payments.core.api.middleware.AuthenticationMiddleware",
    "jia_payments.core.api.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "jia_payments.urls"
WSGI_APPLICATION = "jia_payments.wsgi.application"
ASGI_APPLICATION = "jia_payments.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------
# DATABASE_URL, or POSTGRES_DSN as an alias; unset: a SQLite file (DEBUG only).

_database_url = env.str("DATABASE_URL", default="") or env.str("POSTGRES_DSN", default="")
if not _database_url:
    _database_url = _required_in_production("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}")
DATABASES = {"default": env.db_url_config(_database_url)}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # POSTGRES_MAX_CONNS sizes psycopg's pool per process (gunicorn worker, celery worker).
    _max_conns = env.int("POSTGRES_MAX_CONNS", default=0)
    if _max_conns:
        DATABASES["default"]["CONN_MAX_AGE"] = 0
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1,
            "max_size": _max_conns,
            "timeout": 10,
        }
    # Statements run on a server-binding cursor (the entitlement list's page) are prepared after this
    # many runs on a connection; Django's own cursors bind on the client and are never prepared.
    # Empty: never, for a transaction-pooling pgbouncer without max_prepared_statements (< 1.21).
    _prepare_threshold = env.str("POSTGRES_PREPARE_THRESHOLD", default="5")
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = (
        int(_prepare_threshold) if _prepare_threshold else None
    )
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # WAL lets the dev server read while a request writes; NORMAL sync is safe with WAL.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
    }
    # The embedded dev database cannot build one unique index "with nulls not distinct"
    # (entitlement_unkeyed_active_unique); PostgreSQL, the only production database, enforces it.
    SILENCED_SYSTEM_CHECKS = ["models.W047"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (Redis via django-redis; unset: local memory) -----------------------------------


def _redis_url() -> str:
    url = env.str("REDIS_URL", default="")
    if url:
        return url
    addr = env.str("REDIS_ADDR", default="")
    if not addr:
        return ""
    password = env.str("REDIS_PASSWORD", default="")
    auth = f":{password}@" if password else ""
    return f"redis://{auth}{addr}/{env.int('REDIS_DB', default=0)}"


REDIS_URL = _redis_url()
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": APP_NAME,
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": env.float("REDIS_CONNECT_TIMEOUT", default=0.5),
                "SOCKET_TIMEOUT": env.float("REDIS_SOCKET_TIMEOUT", default=0.5),
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery (Redis broker; unset: eager, in process) -----------------------------------------

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "memory://")
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
# The queue tasks go to and workers take from: deployments sharing one Redis need their own.
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="celery")
CELERY_TASK_ACKS_LATE = True
# A task whose worker process died mid-run (SIGKILL, OOM) is put back on the queue, not dropped
# as failed; every task is idempotent, so running it again has its effect once.
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# A message taken by a worker that died whole (not only a pool process) comes back after this
# long (Redis transport). Above the longest countdown a task is given (Stripe event retries wait
# up to STRIPE_EVENT_RETRY_BACKOFF_MAX_SECONDS, 1800 s): below it, a waiting retry would be
# delivered again early.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT_SECONDS", default=3600)
}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE: dict = {}

# --- Authentication of API callers (Better Auth JWTs) --------------------------------------

AUTH_PUBLIC_KEY_PEM = env.str("AUTH_PUBLIC_KEY_PEM", default="").replace("\\n", "\n")
AUTH_JWKS_PATH = env.str("AUTH_JWKS_PATH", default="")
AUTH_JWT_ALGORITHMS = env.list("AUTH_JWT_ALGORITHMS", default=["EdDSA"])
AUTH_JWT_ISSUER = env.str("AUTH_JWT_ISSUER", default="")
AUTH_JWT_AUDIENCE = env.str("AUTH_JWT_AUDIENCE", default="")
AUTH_JWT_LEEWAY_SECONDS = env.int("AUTH_JWT_LEEWAY_SECONDS", default=30)
# The development key pair (`make run`, `manage.py dev_token`); never read when DEBUG is false.
AUTH_DEV_KEY_PATH = env.path("AUTH_DEV_KEY_PATH", default=BASE_DIR / "var" / "dev_auth_ed25519.pem")

# --- Billing (Stripe; unset: localstripe on 127.0.0.1) --------------------------------------

BILLING_PROVIDER = env.str("BILLING_PROVIDER", default="stripe")
STRIPE_SECRET = _required_in_production("STRIPE_SECRET", "sk_test_" + "0" * 24 + "localstripe")
STRIPE_PUBLISHABLE_KEY = env.str("STRIPE_PUBLISHABLE_KEY", default="pk_test_" + "0" * 24 + "localstripe")
STRIPE_API_BASE = env.str(
    "STRIPE_API_BASE",
    default="http://127.0.0.1:8420" if STRIPE_SECRET.endswith("localstripe") else "",
)
# With the local fake Stripe, a development secret that `manage.py stripe_dev_webhook` gives it.
STRIPE_WEBHOOK_SECRET = env.str(
    "STRIPE_WEBHOOK_SECRET",
    default="whsec_development_localstripe" if STRIPE_SECRET.endswith("localstripe") else "",
)

# dj-stripe mirrors Stripe objects for staff; it reads these names.
STRIPE_LIVE_MODE = STRIPE_SECRET.startswith("sk_live_") or STRIPE_SECRET.startswith("rk_live_")
STRIPE_LIVE_SECRET_KEY = STRIPE_SECRET if STRIPE_LIVE_MODE else ""
STRIPE_TEST_SECRET_KEY = "" if STRIPE_LIVE_MODE else STRIPE_SECRET
DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"
DJSTRIPE_USE_NATIVE_JSONFIELD = True
DJSTRIPE_WEBHOOK_VALIDATION = "verify_signature"
DJSTRIPE_WEBHOOK_TOLERANCE = 300

# --- Domain events (outbox -> Kafka; unset: kept in the outbox) -----------------------------

EVENTS_BROKERS = env.list("EVENTS_BROKERS", default=[])
EVENTS_PROVIDER = env.str("EVENTS_PROVIDER", default="kafka" if EVENTS_BROKERS else "outbox")
EVENTS_TOPIC = env.str("EVENTS_TOPIC", default="payments")
EVENTS_SOURCE = env.str("EVENTS_SOURCE", default=f"/{APP_NAME}")
if EVENTS_PROVIDER not in {"kafka", "log", "outbox"}:
    raise ImproperlyConfigured(f"EVENTS_PROVIDER must be kafka, log or outbox, not {EVENTS_PROVIDER!r}")
if EVENTS_PROVIDER == "kafka" and not EVENTS_BROKERS:
    raise ImproperlyConfigured("EVENTS_PROVIDER=kafka needs EVENTS_BROKERS (host:port,host:port)")
# The relay (jia_payments/core/outbox): rows per claim, how long the broker may take to acknowledge
# a batch, the backoff while it is down, how often beat sweeps, how long sent rows are kept, and
# how long after a commit the relay it asks for starts (the commits of that window share one run).
EVENTS_BATCH_SIZE = env.int("EVENTS_BATCH_SIZE", default=500)
EVENTS_PUBLISH_TIMEOUT_SECONDS = env.float("EVENTS_PUBLISH_TIMEOUT_SECONDS", default=15.0)
EVENTS_BACKOFF_MAX_SECONDS = env.float("EVENTS_BACKOFF_MAX_SECONDS", default=60.0)
EVENTS_SWEEP_SECONDS = env.float("EVENTS_SWEEP_SECONDS", default=5.0)
EVENTS_RETENTION_DAYS = env.float("EVENTS_RETENTION_DAYS", default=7.0)
EVENTS_RELAY_DELAY_SECONDS = env.float("EVENTS_RELAY_DELAY_SECONDS", default=0.1)
# Refusals that retrying cannot cure (a message over the broker's size limit) before a row is dead.
EVENTS_MAX_ATTEMPTS = env.int("EVENTS_MAX_ATTEMPTS", default=5)
CELERY_IMPORTS = ["jia_payments.core.outbox.tasks"]
CELERY_BEAT_SCHEDULE["core.relay_events"] = {
    "task": "core.relay_events",
    "schedule": EVENTS_SWEEP_SECONDS,
    "options": {"expires": EVENTS_SWEEP_SECONDS},
}
CELERY_BEAT_SCHEDULE["core.prune_events"] = {"task": "core.prune_events", "schedule": 3600.0}

# --- REST API -----------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "jia_payments.core.api.auth.BetterAuthTokenAuthentication",
        "jia_payments.core.api.auth.StaffSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["jia_payments.core.api.permissions.IsAuthenticatedCaller"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "jia_payments.core.api.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["jia_payments.core.api.parsers.BoundedJSONParser"],
    "DEFAULT_PAGINATION_CLASS": "jia_payments.core.api.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 20,
    "EXCEPTION_HANDLER": "jia_payments.core.api.errors.problem_details_handler",
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "jia_payments.core.api.negotiation.ContentNegotiation",
    "DEFAULT_SCHEMA_CLASS": "jia_payments.core.api.openapi.AutoSchema",
    "DEFAULT_METADATA_CLASS": "jia_payments.core.api.metadata.Metadata",
    "UNAUTHENTICATED_USER": None,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "jia-payments API",
    "DESCRIPTION": "Payments, plans, regional prices, entitlements and checkout of the Jia Family App.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "OAS_VERSION": "3.1.0",
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI's assets come from the installed drf-spectacular-sidecar package, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"persistAuthorization": True},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "jia_payments.core.api.openapi.add_links",  # create -> the operations on what it created
    ],
    "ENUM_NAME_OVERRIDES": {
        "PaymentStatusEnum": "payments.models.Payment.Status",
        "PaymentMethodEnum": "payments.models.Payment.Method",
        "ZoneEnum": "pricing.models.PricingZone.Zone",
        "BillingCycleEnum": "pricing.models.Plan.BillingCycle",
    },
}

# --- Internationalisation, static files ----------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

FIXTURE_DIRS = [BASE_DIR / "fixtures"]

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        # Hashed, compressed names in production (run collectstatic); plain names otherwise.
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if env.bool("STATIC_MANIFEST", default=not DEBUG)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Files browsers ask for at the site's root (/favicon.ico), served by whitenoise as static files are.
WHITENOISE_ROOT = BASE_DIR / "backoffice" / "site_root"

DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=256 * 1024)

# --- Production hardening (check --deploy clean when DEBUG is false) ----------------------

# HTTPS is known to be in front only when a TLS-terminating proxy is declared
# (SECURE_PROXY_SSL_HEADER, e.g. "HTTP_X_FORWARDED_PROTO,https"): only then do the HTTPS redirect
# and secure-only cookies default on, so a plain-HTTP server (compose on http://localhost:8000)
# answers instead of redirecting to an https:// address nothing listens on.
_proxy_ssl_header = env.str("SECURE_PROXY_SSL_HEADER", default="")
if _proxy_ssl_header:
    SECURE_PROXY_SSL_HEADER = tuple(_proxy_ssl_header.split(",", 1))
_behind_tls = bool(_proxy_ssl_header) and not DEBUG
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=_behind_tls)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=_behind_tls)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=_behind_tls)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- Logging (structured) ---------------------------------------------------------------------
# JSON lines by default (LOG_FORMAT=json); LOG_FORMAT=console for people (`make run` sets it).
# request_id comes from X-Request-ID (or is generated), is returned in the response and travels
# with the Celery tasks a request enqueues (django-structlog).

from jia_payments.core.ops.logs import configure_structlog, logging_config  # noqa: E402

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
LOG_FORMAT = env.str("LOG_FORMAT", default="json").lower()
LOGGING = logging_config(level=LOG_LEVEL, log_format=LOG_FORMAT)
configure_structlog()

# One line per request: `request_finished` (with the caller, status and duration), written by
# jia_payments.core.api.request_logging (which records the request metrics too); the line at the
# start only at DEBUG. gunicorn's access line is off by default for the same reason.
# django-structlog carries the request id into Celery tasks.
INSTALLED_APPS += ["django_structlog"]
MIDDLEWARE.insert(0, "jia_payments.core.api.request_logging.RequestLogMiddleware")
DJANGO_STRUCTLOG_CELERY_ENABLED = True
# Its `task_enqueued` (in the request) and `task_started` (in the worker) lines only at DEBUG: a
# task's one line is its `task_succeeded` / `task_failed`, with the request id it came from.
DJANGO_STRUCTLOG_CELERY_TASK_START_LOG_LEVEL = logging.DEBUG

# --- Health checks --------------------------------------------------------------------------
# /healthz: the process answers. /readyz: database, Redis, Celery broker, Kafka when configured;
# each probe gives up after READINESS_TIMEOUT seconds, the answer comes within that + 1 s.
# Both are answered before host validation and the HTTPS redirect (probes use the pod address).

INSTALLED_APPS += ["health_check"]
MIDDLEWARE.insert(0, "jia_payments.core.ops.health.ProbeMiddleware")
READINESS_TIMEOUT = env.float("READINESS_TIMEOUT", default=0.8)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=5)
    )

# --- API rate limits ------------------------------------------------------------------------
# Counted in the default cache (Redis in production) by jia_payments.core.api.throttling. Rates are
# "N/s", "N/min", "N/hour" or "N/day"; THROTTLE_NUM_PROXIES = how many proxies add X-Forwarded-For.

REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] = [
    "jia_payments.core.api.throttling.AnonRateThrottle",
    "jia_payments.core.api.throttling.UserRateThrottle",
    "jia_payments.core.api.throttling.ServiceRateThrottle",
    "jia_payments.core.api.throttling.WriteRateThrottle",
]
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {
    "anon": env.str("THROTTLE_ANON", default="300/min"),
    "user": env.str("THROTTLE_USER", default="600/min"),
    "service": env.str("THROTTLE_SERVICE", default="6000/min"),
    "write": env.str("THROTTLE_WRITE", default="60/min"),
}
REST_FRAMEWORK["NUM_PROXIES"] = env.int("THROTTLE_NUM_PROXIES", default=0)

# --- Idempotency keys (API creates) -------------------------------------------------------
# Kept at least this long (API.md: 24 h), then pruned by the beat task below.
IDEMPOTENCY_KEY_TTL_HOURS = env.int("IDEMPOTENCY_KEY_TTL_HOURS", default=24)
# A key whose request is still in progress after this long is taken by the next request with it
# (its process died); well above the request timeout (GUNICORN_TIMEOUT, 30 s).
IDEMPOTENCY_LEASE_SECONDS = env.float("IDEMPOTENCY_LEASE_SECONDS", default=300.0)
CELERY_BEAT_SCHEDULE["core.prune_idempotency_keys"] = {
    "task": "core.prune_idempotency_keys",
    "schedule": 3600.0,
}

# --- Entitlements (cache, expiry sweeper) ---------------------------------------------------

ENTITLEMENTS_CACHE_ALIAS = env.str("ENTITLEMENTS_CACHE_ALIAS", default="default")
# Upper bound on a cache entry's life; entries also never outlive the earliest expiry inside.
ENTITLEMENTS_CACHE_MAX_TTL = env.float("ENTITLEMENTS_CACHE_MAX_TTL", default=300.0)
# After a Redis error, checks skip the cache (answer from the database) for this long.
ENTITLEMENTS_CACHE_RETRY_SECONDS = env.float("ENTITLEMENTS_CACHE_RETRY_SECONDS", default=5.0)
ENTITLEMENTS_SWEEP_SECONDS = env.float("ENTITLEMENTS_SWEEP_SECONDS", default=60.0)
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"].update(
    {
        "EntitlementStatusEnum": "entitlements.models.Entitlement.Status",
        "FamilyMemberRoleEnum": "entitlements.models.FamilyMember.Role",
    }
)
# `make bench` only: mounts /api/v1/_bench/constant/, the framework ceiling the bench compares with.
BENCH_ENDPOINTS = env.bool("BENCH_ENDPOINTS", default=False)
CELERY_BEAT_SCHEDULE["entitlements-expire-due"] = {
    "task": "entitlements.expire_due",
    "schedule": ENTITLEMENTS_SWEEP_SECONDS,
}

# --- Stripe checkout, webhooks, refunds (payments app) ------------------------------------
# The SDK retries a failed call itself (idempotency keys make that safe) before the caller sees
# "try again later"; webhook events are processed by a Celery task that retries with backoff.

STRIPE_MAX_NETWORK_RETRIES = env.int("STRIPE_MAX_NETWORK_RETRIES", default=2)
STRIPE_TIMEOUT_SECONDS = env.float("STRIPE_TIMEOUT_SECONDS", default=20.0)
# `payment_method` values whose payments are charged through a Stripe PaymentIntent.
STRIPE_PAYMENT_METHODS = env.list("STRIPE_PAYMENT_METHODS", default=["credit_card", "debit_card", "wallet"])
# The uuid in the webhook URL (/stripe/webhook/<uuid>/); unset: derived from STRIPE_WEBHOOK_SECRET.
STRIPE_WEBHOOK_UUID = env.str("STRIPE_WEBHOOK_UUID", default="")
STRIPE_EVENT_MAX_RETRIES = env.int("STRIPE_EVENT_MAX_RETRIES", default=8)
STRIPE_EVENT_RETRY_BACKOFF_SECONDS = env.float("STRIPE_EVENT_RETRY_BACKOFF_SECONDS", default=5.0)
STRIPE_EVENT_RETRY_BACKOFF_MAX_SECONDS = env.float("STRIPE_EVENT_RETRY_BACKOFF_MAX_SECONDS", default=1800.0)
# Stripe retries a webhook for 3 days; reconciliation looks that far back for events never received.
STRIPE_RECONCILE_LOOKBACK_HOURS = env.int("STRIPE_RECONCILE_LOOKBACK_HOURS", default=72)
STRIPE_RECONCILE_EVERY_SECONDS = env.int("STRIPE_RECONCILE_EVERY_SECONDS", default=900)
DJSTRIPE_WEBHOOK_EVENT_CALLBACK = "payments.stripe.webhooks.enqueue_webhook_event"
CELERY_BEAT_SCHEDULE["payments.reconcile-stripe-events"] = {
    "task": "payments.tasks.reconcile_stripe_events",
    "schedule": STRIPE_RECONCILE_EVERY_SECONDS,
}
# The trusted edge header carrying an end user's country (e.g. CF-IPCountry); unset: none.
CHECKOUT_COUNTRY_HEADER = env.str("CHECKOUT_COUNTRY_HEADER", default="")
# A past_due subscription keeps access this many days after its last paid period's end.
SUBSCRIPTION_GRACE_DAYS = env.int("SUBSCRIPTION_GRACE_DAYS", default=3)

# --- Metrics: GET /metrics, Prometheus text ------------------------------------------------------
# django-prometheus (requests by view and status, DB queries, cache gets) and the business metrics
# of jia_payments.core.ops.metrics. Under gunicorn every worker counts into PROMETHEUS_MULTIPROC_DIR
# (gunicorn.conf.py sets and cleans it) and any worker's scrape sums them all.
# Who may read it: METRICS_TOKEN set = callers with "Authorization: Bearer <METRICS_TOKEN>";
# unset = nobody when DEBUG is false (404), anyone on a DEBUG server.

METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
if env.str("PROMETHEUS_MULTIPROC_DIR", default=""):
    # prometheus_client writes there from the first metric defined: a missing directory would
    # stop every process (a manage.py command included) at start-up.
    Path(env.str("PROMETHEUS_MULTIPROC_DIR")).mkdir(parents=True, exist_ok=True)
INSTALLED_APPS += ["django_prometheus"]
# The request series are recorded by the request log middleware (one clock for the line and the
# metrics); GET /metrics is answered by jia_payments.core.ops.health.ProbeMiddleware, before it counts.
_BUCKETS = "0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10 30 inf"  # seconds, the request latency histograms
PROMETHEUS_LATENCY_BUCKETS = tuple(float(b) for b in _BUCKETS.split())
# Database and cache backends that count their calls (the same drivers underneath).
_INSTRUMENTED_DB = {
    # django-prometheus' backend; its check before reusing a connection polls the socket, no SELECT 1
    "django.db.backends.postgresql": "jia_payments.core.ops.postgresql",
    "django.db.backends.sqlite3": "django_prometheus.db.backends.sqlite3",
}
DATABASES["default"]["ENGINE"] = _INSTRUMENTED_DB.get(
    DATABASES["default"]["ENGINE"], DATABASES["default"]["ENGINE"]
)
if CACHES["default"]["BACKEND"] == "django_redis.cache.RedisCache":
    CACHES["default"]["BACKEND"] = "django_prometheus.cache.backends.redis.RedisCache"

# --- Audit trail -----------------------------------------------------------------------------
# django-auditlog records who changed what (before -> after) and why; jia_payments.core.audit.trail
# names the caller (admin user, or the API's service/staff token) and the reason given.

INSTALLED_APPS += ["auditlog"]
MIDDLEWARE.insert(
    MIDDLEWARE.index("jia_payments.core.api.middleware.AuthenticationMiddleware") + 1,
    "jia_payments.core.audit.trail.AuditMiddleware",
)
AUDITLOG_CID_GETTER = "jia_payments.core.audit.trail.correlation_id"
# Reverse relations are excluded: not columns of the row. auditlog recorded a reverse foreign
# key's manager as text on every create ("refunds: None → payments.Refund.None") and read a
# reverse one-to-one (checkout_session: a query, on every save) only to find it unchanged.
AUDITLOG_INCLUDE_TRACKING_MODELS = (
    {"model": "pricing.Feature", "exclude_fields": ["updated_at", "entitlements"]},
    {
        "model": "pricing.Plan",
        "exclude_fields": ["updated_at", "checkout_sessions", "entitlements", "families", "subscriptions"],
        "m2m_fields": {"features"},
    },
    {"model": "pricing.PricingZone", "exclude_fields": ["updated_at"]},
    {"model": "entitlements.Entitlement", "exclude_fields": ["updated_at"]},
    {"model": "entitlements.Family", "exclude_fields": ["updated_at", "entitlements", "members"]},
    {"model": "entitlements.FamilyMember"},
    {"model": "payments.Payment", "exclude_fields": ["updated_at", "checkout_session", "refunds"]},
    {"model": "payments.Refund", "exclude_fields": ["updated_at"]},
    {"model": "payments.Subscription", "exclude_fields": ["updated_at", "duplicates"]},
)

# --- gRPC (manage.py grpcserver) ---------------------------------------------------------------
# The original service's contract (proto/) beside the REST API. The image listens on [::]:8081.
GRPC_ADDRESS = env.str("GRPC_ADDRESS", default="127.0.0.1:8081")
GRPC_MAX_WORKERS = env.int("GRPC_MAX_WORKERS", default=16)
# SIGTERM: health goes NOT_SERVING at once; calls in flight get this long to finish.
GRPC_GRACE_SECONDS = env.float("GRPC_GRACE_SECONDS", default=10.0)
# How often the health service probes the database and the cache.
GRPC_HEALTH_INTERVAL = env.float("GRPC_HEALTH_INTERVAL", default=5.0)
# Set: the server's Prometheus metrics on this port (same access rule as /metrics: METRICS_TOKEN).
GRPC_METRICS_PORT = env.int("GRPC_METRICS_PORT", default=0)

# --- Pricing zones --------------------------------------------------------------------------
# The range a zone's multiplier may take (the model, the admin, the API and the importer check it).
PRICING_MULTIPLIER_MIN = env.str("PRICING_MULTIPLIER_MIN", default="0.05")
PRICING_MULTIPLIER_MAX = env.str("PRICING_MULTIPLIER_MAX", default="1.50")

"""How the test database is built: the third-party apps below get their tables straight from their
models (dj-stripe's migrations take about 4 minutes on a fresh PostgreSQL, rendering its many model
states); every app of ours is still built by its own migrations."""

THIRD_PARTY_BUILT_FROM_MODELS = ["djstripe", "auth", "contenttypes", "admin", "sessions", "auditlog"]

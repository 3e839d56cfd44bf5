#!/bin/sh
# The image's one entrypoint: docker/entrypoint.sh ROLE [ARGS...]
#
#   web            wait for the database, migrate (one replica at a time: a PostgreSQL advisory
#                  lock; MIGRATE_ON_START=false skips it, and only the system checks run), then
#                  gunicorn -c gunicorn.conf.py: a system check error (core.E005, no token key)
#                  stops it there
#   worker         wait for the database and its migrations, then the Celery worker
#                  (CELERY_METRICS_PORT set: it serves its metrics there)
#   beat           wait for the database, then Celery beat (schedule state in /tmp)
#   grpc           wait for the database and its migrations, then manage.py grpcserver on
#                  GRPC_ADDRESS ([::]:8081 in the image; GRPC_METRICS_PORT set: its metrics there)
#   collectstatic  static files with the production storage (hashed names + manifest, compressed),
#                  as the image build runs it; needs no secret and no database
#   anything else  run as a command (e.g. `python manage.py createsuperuser`)
#
# ARGS are passed on to gunicorn / celery. DB_WAIT_TIMEOUT (60 s) bounds the wait for the database.
set -eu

role="${1:-web}"
[ "$#" -gt 0 ] && shift

# The image's HEALTHCHECK (docker/healthcheck.py without a role) checks what this container runs.
case "$role" in
    web|worker|beat|grpc) printf '%s\n' "$role" > "${CONTAINER_ROLE_FILE:-/tmp/jia-payments-role}" ;;
esac

# Start-up commands count nothing: their database queries are not the server's.
manage() {
    env -u PROMETHEUS_MULTIPROC_DIR python manage.py "$@"
}

wait_for_db() {
    manage wait_for_db --timeout "${DB_WAIT_TIMEOUT:-60}" "$@"
}

# Prometheus multiprocess mode: every process of this container counts in one directory, emptied
# of a previous run's files (only prometheus_client's *.db: the path may be an operator's choice).
metrics_dir() {
    PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-/tmp/prometheus-$role}"
    export PROMETHEUS_MULTIPROC_DIR
    mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
    find "$PROMETHEUS_MULTIPROC_DIR" -maxdepth 1 -type f -name '*.db' -delete
}

case "$role" in
    web)
        wait_for_db
        if [ "${MIGRATE_ON_START:-true}" = "true" ]; then
            manage migrate_locked
        else
            manage check
        fi
        metrics_dir
        exec gunicorn -c gunicorn.conf.py "$@"
        ;;
    worker)
        wait_for_db --migrations
        metrics_dir
        exec celery -A jia_payments worker --loglevel "${LOG_LEVEL:-INFO}" "$@"
        ;;
    beat)
        wait_for_db
        exec celery -A jia_payments beat --loglevel "${LOG_LEVEL:-INFO}" \
            --schedule /tmp/celerybeat-schedule "$@"
        ;;
    grpc)
        wait_for_db --migrations
        metrics_dir
        exec python manage.py grpcserver "$@"
        ;;
    collectstatic)
        # DEBUG=true only spares the build the production secrets; STATIC_MANIFEST=true is what a
        # DEBUG=false process reads (whitenoise's CompressedManifestStaticFilesStorage).
        DEBUG=true STATIC_MANIFEST=true exec env -u PROMETHEUS_MULTIPROC_DIR \
            python manage.py collectstatic --no-input "$@"
        ;;
    *)
        exec "$role" "$@"
        ;;
esac

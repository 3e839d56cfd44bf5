"""Fixtures every app's tests share: callers with real signed tokens, API clients."""

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from testsupport.tokens import TokenIssuer


def pytest_configure(config):
    """dj-stripe's migrations take about 4 minutes on a fresh PostgreSQL (rendering its many model
    states); the test database gets its tables, and those of the Django apps it points at,
    straight from their models instead (the same schema, in seconds). Every app of ours is still
    built by its own migrations."""
    from django.conf import settings

    from testsupport.schema import THIRD_PARTY_BUILT_FROM_MODELS

    settings.MIGRATION_MODULES = {
        **getattr(settings, "MIGRATION_MODULES", {}),
        **dict.fromkeys(THIRD_PARTY_BUILT_FROM_MODELS),
    }


@pytest.fixture(scope="session")
def token_issuer():
    return TokenIssuer()


@pytest.fixture(scope="session", autouse=True)
def _verify_tokens_with_test_key(token_issuer):
    """Every test verifies API tokens against this session's Ed25519 key, as production would."""
    with override_settings(AUTH_PUBLIC_KEY_PEM=token_issuer.public_pem, AUTH_JWKS_PATH=""):
        yield


@pytest.fixture
def api_client_for(token_issuer):
    """api_client_for("user_1") / api_client_for("svc", role="service") / role="admin" for staff."""

    def make(user_id: str | None = None, *, role: str | None = None) -> APIClient:
        client = APIClient()
        if user_id is not None:
            client.credentials(HTTP_BETTER_AUTH_TOKEN=token_issuer.token(user_id, role=role))
        return client

    return make


@pytest.fixture
def anon_client():
    return APIClient()


@pytest.fixture
def user_client(api_client_for):
    return api_client_for("user_alice")


@pytest.fixture
def service_client(api_client_for):
    return api_client_for("svc_family_app", role="service")


@pytest.fixture
def staff_client(api_client_for):
    return api_client_for("staff_bob", role="admin")


@pytest.fixture
def as_staff(client):
    """as_staff("sue", "support") / as_staff("root", superuser=True): the test client logged in
    as a new staff user in those admin groups (the groups the migrations create)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    def login(username: str, *groups: str, superuser: bool = False):
        user = get_user_model().objects.create_user(username, is_staff=True, is_superuser=superuser)
        user.groups.add(*Group.objects.filter(name__in=groups))
        client.force_login(user)
        return client

    return login


# --- Logs carry no secrets -------------------------------------------------------------------
# Every test's log output, formatted as production formats it, is searched for the credentials
# the test could have handled: the API tokens minted this session, the Django and Stripe secrets,
# a webhook signing secret, test card numbers and Stripe event bodies.


@pytest.fixture(autouse=True)
def _logs_carry_no_secrets(token_issuer):
    from django.core.signals import setting_changed

    from testsupport.logcapture import capture_logs, secret_values, secrets_in

    overridden = set()

    def remember(*, setting, value, **kwargs):  # secrets a test sets with override_settings
        if "SECRET" in setting and isinstance(value, str):
            overridden.add(value)

    setting_changed.connect(remember, weak=False, dispatch_uid="logs_carry_no_secrets")
    try:
        with capture_logs() as logs:
            yield
    finally:
        setting_changed.disconnect(dispatch_uid="logs_carry_no_secrets")
    leaked = secrets_in(logs.text, secret_values(token_issuer.issued) | overridden)
    assert not leaked, f"secrets in the logs of this test: {leaked}"


# --- Domain events: a real Kafka-protocol broker (tansu) for the whole session ---------------


@pytest.fixture(scope="session")
def tansu():
    """The session's broker (testsupport/tansu.py). Tests that stop it must start it again."""
    from testsupport.tansu import TansuBroker

    with TansuBroker() as broker:
        yield broker


@pytest.fixture
def kafka_events(tansu, settings):
    """Events relayed to a fresh topic on the session's broker: EVENTS_PROVIDER=kafka for this
    test. `kafka_events.read(min_messages=N)` gives [(key, envelope, headers)] in topic order
    per partition. Relays run in process (Celery eager) on commit, so use
    django_db(transaction=True) to see them happen."""
    import json
    import uuid

    from jia_payments.core.outbox import backoff, publishers

    class KafkaEvents:
        broker = tansu
        topic = f"events-test-{uuid.uuid4().hex[:12]}"

        def read(self, *, min_messages: int = 0, timeout: float = 20.0) -> list[tuple]:
            records = self.broker.read_topic(self.topic, min_messages=min_messages, timeout=timeout)
            return [(r.key.decode(), json.loads(r.value), dict(r.headers)) for r in records]

    events = KafkaEvents()
    if not tansu.running:
        tansu.start()
    tansu.create_topic(events.topic)
    settings.EVENTS_PROVIDER = "kafka"
    settings.EVENTS_BROKERS = [tansu.bootstrap_servers]
    settings.EVENTS_TOPIC = events.topic
    settings.EVENTS_PUBLISH_TIMEOUT_SECONDS = 3.0
    settings.EVENTS_BACKOFF_MAX_SECONDS = 2.0
    publishers.kafka_publisher.reset()
    backoff.clear()
    yield events
    publishers.kafka_publisher.reset()
    backoff.clear()


# --- Stripe: every test talks to a local fake Stripe, never to api.stripe.com ---------------


@pytest.fixture(scope="session")
def localstripe(tmp_path_factory):
    """localstripe on 127.0.0.1 (extended: testsupport/localstripe_ext.py), for the session."""
    from testsupport.localstripe import LocalStripe

    with LocalStripe(log_path=tmp_path_factory.getbasetemp() / "localstripe.log") as server:
        yield server


@pytest.fixture(scope="session", autouse=True)
def _stripe_is_localstripe(localstripe):
    from testsupport.localstripe import API_KEY, WEBHOOK_SECRET

    with override_settings(
        STRIPE_SECRET=API_KEY,
        STRIPE_TEST_SECRET_KEY=API_KEY,
        STRIPE_API_BASE=localstripe.url,
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
    ):
        yield


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Each test starts with no request counted against the API rate limits (they count in the
    shared Redis per caller and clock window: the same test user across tests hit 429)."""
    from django.core.cache import cache

    if hasattr(cache, "delete_pattern"):  # django-redis (locmem is per process and fresh anyway)
        cache.delete_pattern("throttle:*")


# --- gRPC --------------------------------------------------------------------------------------


@pytest.fixture
def as_user(token_issuer):
    """gRPC call metadata for a caller: as_user("user_1"), as_user("svc", role="service")."""
    from testsupport.grpc import auth

    def metadata(user_id: str, role: str | None = None, **extra: str) -> list[tuple[str, str]]:
        return auth(token_issuer.token(user_id, role=role), **extra)

    return metadata


@pytest.fixture
def grpc_channel(db):
    """A channel to the app's gRPC server in this process; its calls run in the test's transaction."""
    from testsupport.grpc import serving

    with serving(share_connection=True) as (_, channel):
        yield channel


@pytest.fixture
def grpc_server(transactional_db):
    """The app's gRPC server in this process, calls in parallel on their own connections."""
    from testsupport.grpc import serving

    with serving() as served:
        yield served


@pytest.fixture
def grpcserver_process(transactional_db, token_issuer, localstripe, tmp_path):
    """`manage.py grpcserver` in its own process on the test database (tokens of this session,
    Stripe played by the session's localstripe)."""
    from testsupport.grpcserver import GrpcServerProcess
    from testsupport.localstripe import API_KEY

    env = {
        "AUTH_PUBLIC_KEY_PEM": token_issuer.public_pem,
        "STRIPE_SECRET": API_KEY,
        "STRIPE_API_BASE": localstripe.url,
    }
    server = GrpcServerProcess(env=env, log_path=tmp_path / "grpc.log")
    try:
        yield server.start()
    finally:
        server.stop()


# --- Traces: OpenTelemetry with the SDK's in-memory exporter, for one test --------------------


@pytest.fixture
def traces():
    """Tracing on in this process for the test (testsupport/tracing.py `traced`): the exporter,
    `traces.get_finished_spans()`. Use django_db(transaction=True): connections are reopened."""
    from testsupport.tracing import traced

    with traced() as exporter:
        yield exporter

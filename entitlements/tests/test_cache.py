"""The per-user Redis cache: zero SQL on a hit, never a stale answer, and Redis down is survivable."""

import logging
import uuid
from datetime import timedelta

import pytest
from django.core.cache import caches
from django.utils import timezone

from entitlements import cache, services
from entitlements.models import Entitlement, Family
from entitlements.selectors import access_rows, entitlement_check, entitlement_check_many, load_access_rows
from entitlements.tests.factories import plan_with
from testsupport.processes import free_port

pytestmark = pytest.mark.django_db


def _days(n: float):
    return timezone.now() + timedelta(days=n)


def _answer(user_id: str, feature_code: str = "calendar") -> tuple:
    answer = entitlement_check(user_id=user_id, feature_code=feature_code)
    return answer["has_access"], answer["reason"], answer["expires_at"]


@pytest.fixture
def bystander(committed):
    """Another user with a cached answer: no write below may evict it."""
    plan = plan_with(["calendar"], id="bystander_plan")
    with committed():
        services.entitlements_grant_plan(user_id="bystander", plan=plan, subscription_id="s_bystander")
    entitlement_check(user_id="bystander", feature_code="calendar")
    return "bystander"


# --- hits, misses and lifetimes ----------------------------------------------------------------


def test_a_hit_costs_no_sql_and_a_miss_at_most_two(django_assert_num_queries, django_assert_max_num_queries):
    plan = plan_with(["calendar", "vault"], max_users=3)
    services.entitlements_grant_plan(user_id="owner", plan=plan, subscription_id="s1")
    services.family_member_add(family_id=Family.objects.get().pk, user_id="kid")

    with django_assert_max_num_queries(2):
        cold = entitlement_check(user_id="kid", feature_code="calendar")
    with django_assert_num_queries(0):
        warm = entitlement_check(user_id="kid", feature_code="calendar")
    with django_assert_num_queries(0):
        batch = entitlement_check_many(user_id="kid", feature_codes=["calendar", "vault", "nope"])

    assert cold == warm == batch["calendar"]
    assert warm["has_access"] is True
    assert cache.stats.snapshot() == {"hits": 2, "misses": 1, "errors": 0, "invalidations": 0}


def test_the_miss_of_a_user_without_rows_is_cached_too(django_assert_num_queries):
    entitlement_check(user_id="nobody", feature_code="calendar")
    with django_assert_num_queries(0):
        assert entitlement_check(user_id="nobody", feature_code="calendar")["reason"] == "no_entitlement"


def _entry_pttl_ms(user_id: str) -> int:
    backend = caches["default"]
    return backend.client.get_client().pttl(backend.make_key(cache.entry_key(user_id)))


def test_an_entry_never_outlives_the_earliest_expiry_inside_it():
    plan = plan_with(["calendar"])
    soon = timezone.now() + timedelta(seconds=40)
    services.entitlements_grant_plan(user_id="u1", plan=plan, subscription_id="s1", expires_at=_days(30))
    services.entitlements_grant_plan(user_id="u1", plan=plan, subscription_id="s2", expires_at=soon)
    entitlement_check(user_id="u1", feature_code="calendar")
    assert 0 < _entry_pttl_ms("u1") <= 40_000


def test_entries_without_expiry_live_at_most_the_configured_maximum(settings):
    settings.ENTITLEMENTS_CACHE_MAX_TTL = 120
    plan = plan_with(["calendar"], billing_cycle="one_time")
    services.entitlements_grant_plan(user_id="u1", plan=plan, payment_id=uuid.uuid4())
    entitlement_check(user_id="u1", feature_code="calendar")
    assert 110_000 < _entry_pttl_ms("u1") <= 120_000


def test_expired_rows_do_not_shorten_the_lifetime():
    plan = plan_with(["calendar"])
    services.entitlements_grant_plan(
        user_id="u1", plan=plan, subscription_id="old", starts_at=_days(-60), expires_at=_days(-30)
    )
    entitlement_check(user_id="u1", feature_code="calendar")
    assert _entry_pttl_ms("u1") > 250_000


def test_an_answer_read_before_a_write_cannot_be_cached_after_its_invalidation():
    plan = plan_with(["calendar"])
    found = cache.lookup("u1")  # a reader misses and notes the generation ...
    old_rows = load_access_rows(user_id="u1")  # ... and reads the database before the write commits
    services.entitlements_grant_plan(user_id="u1", plan=plan, subscription_id="s1")
    cache.invalidate_users({"u1"})  # the write's after-commit invalidation
    cache.store("u1", found.token, old_rows, None)  # the slow reader stores what it read

    assert entitlement_check(user_id="u1", feature_code="calendar")["has_access"] is True


def test_a_store_under_a_token_a_write_has_replaced_writes_nothing():
    found = cache.lookup("u1")  # the reader's token, from before the write
    cache.invalidate_users({"u1"})
    cache.store("u1", found.token, (), None)
    django_cache = caches["default"]
    assert cache.redis_client_of(django_cache).get(django_cache.make_key(cache.entry_key("u1"))) is None

    current = cache.lookup("u1")
    cache.store("u1", current.token, (), None)
    assert cache.lookup("u1") == cache.Lookup(rows=(), token=current.token)


def test_the_first_read_of_a_user_gives_them_a_generation_token():
    django_cache = caches["default"]
    key = django_cache.make_key(cache.generation_key("newcomer"))
    client = cache.redis_client_of(django_cache)
    assert client.get(key) is None
    found = cache.lookup("newcomer")
    assert found.rows is None
    assert client.get(key) == found.token.encode() and len(found.token) == 32
    assert 86_000_000 < client.pttl(key) <= 86_400_000
    assert cache.lookup("newcomer").token == found.token


def test_a_write_also_invalidates_the_entries_of_earlier_key_versions():
    """Workers still on the code of an earlier KEY_VERSION (a rolling deploy) read those keys."""
    django_cache = caches["default"]
    client = cache.redis_client_of(django_cache)
    for version in cache.EARLIER_KEY_VERSIONS:
        client.set(django_cache.make_key(cache.generation_key("u1", version)), "old-token")
        client.set(django_cache.make_key(cache.entry_key("u1", version)), b"an old answer")

    cache.invalidate_users({"u1"})

    for version in cache.EARLIER_KEY_VERSIONS:
        assert client.get(django_cache.make_key(cache.entry_key("u1", version))) is None
        token = client.get(django_cache.make_key(cache.generation_key("u1", version)))
        assert token not in (None, b"old-token")


# --- every kind of write invalidates exactly the affected users --------------------------------


def _plan():
    return plan_with(["calendar"], max_users=4)


def _family_with_kid(committed):
    with committed():
        rows = services.entitlements_grant_plan(
            user_id="owner", plan=_plan(), subscription_id="s1", expires_at=_days(9)
        )
        family = Family.objects.get()
        services.family_member_add(family_id=family.pk, user_id="kid")
    return {"family": family, "row": rows[0]}


def _granted(committed, **kwargs):
    options = {"subscription_id": "s1", "expires_at": _days(9), **kwargs}
    with committed():
        [row] = services.entitlements_grant_plan(user_id="u1", plan=_plan(), **options)
    return {"row": row}


def _cases():
    def grant(ctx):
        services.entitlements_grant_plan(user_id="u1", plan=_plan(), subscription_id="s1")

    def create(ctx):
        plan = _plan()
        services.entitlement_create(user_id="u1", feature_code="calendar", plan_id=plan.pk)

    def renew(ctx):
        services.entitlements_grant_plan(
            user_id="u1", plan=ctx["row"].plan, subscription_id="s1", expires_at=_days(40)
        )

    def cancel_payment(ctx):
        services.entitlements_cancel_for_payment(payment_id=ctx["row"].payment_id, reason="refund")

    def cancel_subscription(ctx):
        services.entitlements_cancel_for_subscription(subscription_id="s1", reason="deleted")

    def cancel_at_period_end(ctx):
        services.entitlements_cancel_for_subscription(subscription_id="s1", reason="x", at=ctx["at"])

    def extend(ctx):
        services.entitlements_extend_subscription(subscription_id="s1", expires_at=ctx["later"])

    def revoke(ctx):
        services.entitlement_revoke(entitlement_id=ctx["row"].pk, reason="abuse")

    def reactivate(ctx):
        services.entitlement_set_status(entitlement_id=ctx["row"].pk, status="active")

    def expire_status(ctx):
        services.entitlement_set_status(entitlement_id=ctx["row"].pk, status="expired")

    def expiry_past(ctx):
        services.entitlement_set_expiry(entitlement_id=ctx["row"].pk, expires_at=ctx["past"])

    def expiry_lifetime(ctx):
        services.entitlement_set_expiry(entitlement_id=ctx["row"].pk, expires_at=None)

    def member_add(ctx):
        services.family_member_add(family_id=ctx["family"].pk, user_id="kid2")

    def member_remove(ctx):
        services.family_member_remove(family_id=ctx["family"].pk, user_id="kid")

    def family_refund(ctx):
        services.entitlements_cancel_for_subscription(subscription_id="s1", reason="deleted")

    def plan_feature_added(ctx):
        plan = ctx["row"].plan
        plan.features.add(plan_with(["vault"]).features.get())
        services.plan_entitlements_sync(plan_id=plan.pk)

    def sweep(ctx):
        services.entitlements_expire_due()

    none, granted, family = (lambda c: {}), _granted, _family_with_kid
    expired = {"has": False, "reason": "expired"}
    active = {"has": True, "reason": "active"}
    revoked = {"has": False, "reason": "revoked"}
    absent = {"has": False, "reason": "no_entitlement"}

    def with_(setup, **extra):
        def run(committed):
            ctx = setup(committed)
            for name, value in extra.items():
                ctx[name] = value() if callable(value) else value
            return ctx

        return run

    def revoked_first(committed):
        ctx = _granted(committed)
        with committed():
            services.entitlement_revoke(entitlement_id=ctx["row"].pk)
        return ctx

    def lapsed(committed):
        return _granted(committed, starts_at=_days(-40), expires_at=_days(-1))

    return [
        ("grant", none, grant, {"u1": (absent, active)}),
        ("create", none, create, {"u1": (absent, active)}),
        ("renew", lapsed, renew, {"u1": (expired, active)}),
        (
            "cancel_payment",
            with_(lambda c: _granted(c, payment_id=uuid.uuid4())),
            cancel_payment,
            {"u1": (active, revoked)},
        ),
        ("cancel_subscription", granted, cancel_subscription, {"u1": (active, revoked)}),
        (
            "cancel_at_period_end",
            with_(granted, at=lambda: _days(2)),
            cancel_at_period_end,
            {"u1": (active, {"has": True, "expires": "at"})},
        ),
        (
            "extend",
            with_(granted, later=lambda: _days(60)),
            extend,
            {"u1": (active, {"has": True, "expires": "later"})},
        ),
        ("revoke", granted, revoke, {"u1": (active, revoked)}),
        ("reactivate", revoked_first, reactivate, {"u1": (revoked, active)}),
        ("status_expired", granted, expire_status, {"u1": (active, expired)}),
        ("expiry_past", with_(granted, past=lambda: _days(-1)), expiry_past, {"u1": (active, expired)}),
        ("expiry_lifetime", granted, expiry_lifetime, {"u1": (active, {"has": True, "expires": None})}),
        ("member_add", family, member_add, {"kid2": (absent, active)}),
        ("member_remove", family, member_remove, {"kid": (active, absent), "owner": (active, active)}),
        ("family_cancelled", family, family_refund, {"kid": (active, revoked), "owner": (active, revoked)}),
        ("plan_feature_added", granted, plan_feature_added, {"u1": (absent, active)}),
        ("sweeper", lapsed, sweep, {"u1": (expired, expired)}),
    ]


CASES = _cases()


def _matches(answer: dict, expected: dict, ctx: dict) -> bool:
    if "reason" in expected and answer["reason"] != expected["reason"]:
        return False
    if "expires" in expected:
        want = ctx[expected["expires"]] if expected["expires"] else None
        if answer["expires_at"] != want:
            return False
    return answer["has_access"] == expected["has"]


@pytest.mark.parametrize(
    ("setup", "write", "expectations"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_no_stale_answer_after_each_kind_of_write(
    setup, write, expectations, committed, bystander, django_assert_num_queries
):
    ctx = setup(committed)
    feature = "vault" if write.__name__ == "plan_feature_added" else "calendar"
    for user_id, (before, _) in expectations.items():
        answer = entitlement_check(user_id=user_id, feature_code=feature)
        assert _matches(answer, before, ctx), (user_id, answer)
        with django_assert_num_queries(0):  # now cached
            entitlement_check(user_id=user_id, feature_code=feature)

    with committed():
        write(ctx)

    for user_id, (_, after) in expectations.items():
        answer = entitlement_check(user_id=user_id, feature_code=feature)
        assert _matches(answer, after, ctx), (user_id, answer)
        assert answer == entitlement_check(user_id=user_id, feature_code=feature)
    with django_assert_num_queries(0):  # nobody else was evicted
        assert entitlement_check(user_id=bystander, feature_code="calendar")["has_access"] is True


def test_nothing_is_invalidated_before_commit(committed):
    plan = _plan()
    entitlement_check(user_id="u1", feature_code="calendar")
    with committed():
        services.entitlements_grant_plan(user_id="u1", plan=plan, subscription_id="s1")
        assert entitlement_check(user_id="u1", feature_code="calendar")["has_access"] is False
    assert entitlement_check(user_id="u1", feature_code="calendar")["has_access"] is True


# --- Redis down ----------------------------------------------------------------------------


@pytest.fixture
def redis_down(settings):
    settings.CACHES = {
        **settings.CACHES,
        "default": {**settings.CACHES["default"], "LOCATION": f"redis://127.0.0.1:{free_port()}/0"},
    }


def test_redis_down_answers_from_the_database_and_logs_a_warning(redis_down, caplog, committed):
    plan = _plan()
    with committed():  # invalidation fails too, and is logged, not raised
        services.entitlements_grant_plan(user_id="u1", plan=plan, subscription_id="s1")

    with caplog.at_level(logging.WARNING, logger="entitlements.cache"):
        first = entitlement_check(user_id="u1", feature_code="calendar")
        again = entitlement_check_many(user_id="u1", feature_codes=["calendar"])

    assert first["has_access"] is True
    assert again["calendar"] == first
    assert any(r.levelno == logging.WARNING and "unavailable" in r.getMessage() for r in caplog.records)
    assert cache.stats.snapshot()["errors"] >= 1


def test_redis_down_skips_the_cache_for_a_while_then_tries_again(redis_down, settings):
    entitlement_check(user_id="u1", feature_code="calendar")
    errors = cache.stats.snapshot()["errors"]
    entitlement_check(user_id="u1", feature_code="calendar")
    assert cache.stats.snapshot()["errors"] == errors  # the breaker kept us off Redis
    cache.breaker.open_until = 0
    entitlement_check(user_id="u1", feature_code="calendar")
    assert cache.stats.snapshot()["errors"] == errors + 1


def test_the_rows_behind_an_answer_are_the_databases(committed):
    plan = _plan()
    with committed():
        services.entitlements_grant_plan(user_id="u1", plan=plan, subscription_id="s1")
    assert access_rows(user_id="u1") == load_access_rows(user_id="u1")
    assert access_rows(user_id="u1") == load_access_rows(user_id="u1")  # from the cache this time
    assert Entitlement.objects.count() == 1


def test_redis_down_nothing_500s_over_http(redis_down, user_client, service_client, committed, caplog):
    """The whole request path (rate limits, metrics, the check) with Redis gone: answers, no 500."""
    plan = _plan()
    with committed():
        services.entitlements_grant_plan(user_id="user_alice", plan=plan, subscription_id="s1")

    with caplog.at_level(logging.WARNING):
        single = user_client.get("/api/v1/entitlements/check/", {"feature_code": "calendar"})
        batch = user_client.post(
            "/api/v1/entitlements/check/", {"feature_codes": ["calendar", "vault"]}, format="json"
        )
        listed = service_client.get("/api/v1/entitlements/", {"user_id": "user_alice"})

    assert (single.status_code, batch.status_code, listed.status_code) == (200, 200, 200)
    assert single.json()["has_access"] is True and single.json()["reason"] == "active"
    assert batch.json()["results"]["calendar"] == single.json()
    assert batch.json()["results"]["vault"]["reason"] == "no_entitlement"
    assert listed.json()["count"] == 1
    assert any("unavailable" in r.getMessage() for r in caplog.records if r.name == "entitlements.cache")


def test_a_user_id_too_long_or_not_plain_for_a_cache_key_is_hashed():
    from entitlements.cache import CACHE_SAFE_USER_ID_LENGTH, entry_key, generation_key

    plain = "u" * CACHE_SAFE_USER_ID_LENGTH
    assert entry_key(plain).endswith(":" + plain)
    for user_id in ("u" * (CACHE_SAFE_USER_ID_LENGTH + 1), "user 1", "u" * 255):
        key = entry_key(user_id)
        assert user_id not in key and key.split(":")[-1].startswith("h.")
        assert generation_key(user_id) != key
    assert entry_key("u" * 200) != entry_key("u" * 201)


# --- Redis restarted while checks run (a private redis-server, never the shared one) ---------


class PrivateRedis:
    """redis-server on a free port of 127.0.0.1, in memory only, that the test can kill and restart."""

    def __init__(self, tmp_path):
        self.port, self.dir, self.process = free_port(), tmp_path, None

    def start(self):
        import subprocess
        import time

        import redis

        self.process = subprocess.Popen(
            ["/usr/bin/redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client, deadline = redis.Redis(port=self.port), time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                return client.ping()
            except redis.ConnectionError:
                time.sleep(0.05)
        raise AssertionError("private redis-server did not start")

    def kill(self):
        self.process.kill()
        self.process.wait()

    def keys(self) -> int:
        import redis

        return redis.Redis(port=self.port).dbsize()


REQUESTS_PER_PHASE = 40


def test_redis_restarted_during_checks_every_answer_is_right_and_the_cache_comes_back(
    user_client, committed, settings, tmp_path
):
    requests_per_phase = REQUESTS_PER_PHASE
    private = PrivateRedis(tmp_path)
    private.start()
    settings.CACHES = {
        **settings.CACHES,
        "default": {**settings.CACHES["default"], "LOCATION": f"redis://127.0.0.1:{private.port}/0"},
    }
    settings.ENTITLEMENTS_CACHE_RETRY_SECONDS = 0.2
    plan = _plan()
    with committed():
        services.entitlements_grant_plan(user_id="user_alice", plan=plan, subscription_id="s1")
    answers = []
    try:
        for phase in ("up", "down", "up again"):
            if phase == "down":
                private.kill()
            elif phase == "up again":
                private.start()
                cache.breaker.open_until = 0
            for _ in range(requests_per_phase):
                response = user_client.get("/api/v1/entitlements/check/", {"feature_code": "calendar"})
                answers.append((phase, response.status_code, response.json().get("has_access")))
            if phase == "up again":
                cached_after_restart = private.keys()
    finally:
        if private.process.poll() is None:
            private.kill()
    made = len(answers)
    right = sum(1 for _, status, access in answers if (status, access) == (200, True))
    down = [(status, access) for phase, status, access in answers if phase == "down"]
    print(
        f"\nredis restart: {made} checks, {right} right (200, has_access), {made - right} failed or wrong; "
        f"{sum(1 for a in down if a == (200, True))} of {len(down)} answered from the database while "
        f"redis was down; {cached_after_restart} keys cached after the restart"
    )
    assert (made, right) == (3 * requests_per_phase, 3 * requests_per_phase)  # none failed, none wrong
    assert cached_after_restart > 0  # back on the cache, without a restart of the app

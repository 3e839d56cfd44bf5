"""Reads: the explained access check (single and batch), a user's entitlements, family members
and who may see or manage a family.

The check works on "access rows", a compact tuple per entitlement the user holds directly or
through a family; they are what the per-user cache stores (`entitlements.cache`).
"""

import collections
import functools
import json
import math
import uuid
from datetime import UTC, datetime
from typing import NamedTuple

from django.db import connection
from django.db.models import Count, Q
from django.utils import timezone
from psycopg.types.datetime import TimestamptzLoader

from entitlements import cache, metrics
from entitlements.errors import InvalidEntitlementInput, NotFamilyOwner, NotYourself
from entitlements.models import Entitlement, Family, FamilyMember
from jia_payments.core.api.errors import NotFound
from jia_payments.core.ops import tracing

ACTIVE, CANCELLED = Entitlement.Status.ACTIVE.value, Entitlement.Status.CANCELLED.value


class AccessRow(NamedTuple):
    entitlement_id: str
    feature_code: str
    plan_id: str
    family_id: str | None
    status: str
    expires_at: float | None  # POSIX seconds; None = lifetime
    ended_at: float  # when a row that no longer grants access stopped granting it
    usage_limits: dict


def _uuid_text(value) -> str:
    """A raw row's uuid as the API shows every id (dashed): SQLite hands back 32 bare hex digits."""
    return str(value if isinstance(value, uuid.UUID) else uuid.UUID(value))


def _ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, tz=UTC)


_ACCESS_ROW_COLUMNS = (
    "id",
    "feature",
    "plan",
    "family",
    "status",
    "expires_at",
    "updated_at",
    "usage_limits",
)


@functools.cache
def _access_rows_sql(vendor: str) -> str:
    entitlement = Entitlement._meta
    columns = ", ".join(entitlement.get_field(name).column for name in _ACCESS_ROW_COLUMNS)
    where = _visible_rows_sql(vendor, status=False)
    return f"SELECT {columns} FROM {entitlement.db_table} WHERE {where}"  # noqa: S608 (names from the models)


def _read_timestamps_in_c(cursor) -> None:
    """psycopg's own timestamptz loader for this cursor (in C, from psycopg's binary build)
    instead of Django's subclass of it in Python, which only sets the time zone: the rows keep
    POSIX seconds, which do not depend on the zone."""
    if connection.vendor == "postgresql":
        cursor.cursor.adapters.register_loader("timestamptz", TimestamptzLoader)


def load_access_rows(*, user_id: str) -> tuple[AccessRow, ...]:
    """One SQL query: the rows the user holds directly or through a family (each row once).

    Plain SQL on the cache-miss path: building the same query with the ORM cost more CPU than
    running it.
    """
    with connection.cursor() as cursor:
        _read_timestamps_in_c(cursor)
        cursor.execute(_access_rows_sql(connection.vendor), [user_id, user_id])
        found = cursor.fetchall()
    rows = []
    for pk, feature, plan, family, status, expires_at, updated_at, limits in found:
        expires = _ts(expires_at)
        ended = updated_at.timestamp() if status == CANCELLED or expires is None else expires
        if isinstance(limits, str | bytes):
            limits = json.loads(limits)
        family = family and _uuid_text(family)
        rows.append(AccessRow(_uuid_text(pk), feature, plan, family, status, expires, ended, limits or {}))
    return tuple(rows)


def _ttl(rows: tuple[AccessRow, ...], now: float) -> float | None:
    """Seconds until the earliest future expiry of a granting row (None: nothing expires)."""
    upcoming = [r.expires_at for r in rows if r.status == ACTIVE and r.expires_at and r.expires_at > now]
    return min(upcoming) - now if upcoming else None


def access_rows(*, user_id: str) -> tuple[AccessRow, ...]:
    """The user's access rows: from the cache (no SQL), or from the database and then cached."""
    found = cache.lookup(user_id, AccessRow._make)
    if found.rows is not None:
        return found.rows
    rows = load_access_rows(user_id=user_id)
    cache.store(user_id, found.token, rows, _ttl(rows, timezone.now().timestamp()))
    return rows


def _merge_limits(granting: list[AccessRow]) -> dict:
    """The most generous limit wins: the larger number; null (unlimited) or true beats any value."""
    merged: dict = {}
    for row in granting:
        for name, value in row.usage_limits.items():
            if name not in merged:
                merged[name] = value
                continue
            current = merged[name]
            if current is None or value is None:
                merged[name] = None
            elif isinstance(current, bool) or isinstance(value, bool):
                merged[name] = bool(current) or bool(value)
            elif isinstance(current, int | float) and isinstance(value, int | float):
                merged[name] = max(current, value)
    return merged


def _in_answer_order(row: AccessRow) -> tuple:
    """Of rows alike (the same expiry, the same end), the user's own first, then the lowest id: the
    rows come in no order, and the answer's source and limits' key order must not follow it."""
    return row.family_id is not None, row.entitlement_id


def _answer(user_id: str, feature_code: str, rows, now: float) -> dict:
    return _feature_answer(user_id, feature_code, [r for r in rows if r.feature_code == feature_code], now)


def _feature_answer(user_id: str, feature_code: str, mine: list[AccessRow], now: float) -> dict:
    """The answer for one feature from the user's rows of that feature."""
    if not mine:
        return {
            "user_id": user_id,
            "feature_code": feature_code,
            "has_access": False,
            "reason": "no_entitlement",
            "expires_at": None,
            "usage_limits": {},
            "source": None,
        }
    if len(mine) > 1:
        mine = sorted(mine, key=_in_answer_order)
    granting = [r for r in mine if r.status == ACTIVE and (r.expires_at is None or r.expires_at > now)]
    if granting:
        best = max(granting, key=lambda r: math.inf if r.expires_at is None else r.expires_at)
        return {
            "user_id": user_id,
            "feature_code": feature_code,
            "has_access": True,
            "reason": "active",
            "expires_at": _dt(best.expires_at),
            "usage_limits": _merge_limits(granting),
            "source": {
                "entitlement_id": best.entitlement_id,
                "plan_id": best.plan_id,
                "family_id": best.family_id,
            },
        }
    latest = max(mine, key=lambda r: r.ended_at)
    reason, expires_at = ("revoked", None) if latest.status == CANCELLED else ("expired", latest.expires_at)
    return {
        "user_id": user_id,
        "feature_code": feature_code,
        "has_access": False,
        "reason": reason,
        "expires_at": _dt(expires_at),
        "usage_limits": {},
        "source": None,
    }


def entitlement_check(*, user_id: str, feature_code: str) -> dict:
    """Does the user have the feature, and why (API.md "Entitlements")."""
    answer = _answer(user_id, feature_code, access_rows(user_id=user_id), timezone.now().timestamp())
    metrics.entitlement_checked(answer["reason"])
    tracing.set_attributes(
        {
            "entitlement.feature_code": feature_code,
            "entitlement.has_access": answer["has_access"],
            "entitlement.reason": answer["reason"],
        }
    )
    return answer


def entitlement_check_many(*, user_id: str, feature_codes: list[str]) -> dict[str, dict]:
    """The check for many features from one cache read, the rows sorted by feature once."""
    rows, now = access_rows(user_id=user_id), timezone.now().timestamp()
    by_feature: dict[str, list[AccessRow]] = {}
    for row in rows:
        by_feature.setdefault(row.feature_code, []).append(row)
    answers = {code: _feature_answer(user_id, code, by_feature.get(code, []), now) for code in feature_codes}
    reasons = collections.Counter(answer["reason"] for answer in answers.values())
    for reason, n in reasons.items():
        metrics.entitlement_checked(reason, n)
    tracing.set_attributes(
        {
            "entitlement.checked": len(answers),
            "entitlement.granted": reasons["active"],
        }
    )
    return answers


class EntitlementRow(NamedTuple):
    """An entitlement as a list page reads it: the values a model instance would hold, by its
    attribute names (`feature_id`, `family_id`: the foreign keys' values), without building one.
    EntitlementSerializer renders it as it renders the instance."""

    id: uuid.UUID
    user_id: str
    family_id: uuid.UUID | None
    feature_id: str
    plan_id: str
    subscription_id: str
    status: str
    granted_at: datetime
    expires_at: datetime | None
    usage_limits: dict
    metadata: dict
    created_at: datetime
    updated_at: datetime


def _visible_rows_sql(vendor: str, *, status: bool) -> str:
    """WHERE: the rows the user holds directly or through a family they belong to (params: the
    user id twice, then the status when `status`).

    On PostgreSQL the family ids are an array the subquery fills once, so the two conditions are
    one BitmapOr of two index scans; `family_id IN (subquery)` ORed with `user_id = %s` made it
    scan the whole table.
    """
    members = FamilyMember._meta.db_table
    families = f"SELECT family_id FROM {members} WHERE user_id = %s"  # noqa: S608 (names from the models)
    in_families = (
        f"family_id = ANY(ARRAY({families}))" if vendor == "postgresql" else f"family_id IN ({families})"
    )
    return f"(user_id = %s OR {in_families})" + (" AND status = %s" if status else "")


_list_sql: dict[tuple, str] = {}


def _list_query(vendor: str, *, status: bool, count: bool) -> str:
    key = (vendor, status, count)
    if key not in _list_sql:
        meta = Entitlement._meta
        where = _visible_rows_sql(vendor, status=status)
        if count:
            _list_sql[key] = f"SELECT COUNT(*) FROM {meta.db_table} WHERE {where}"  # noqa: S608
        else:
            columns = ", ".join(meta.get_field(name).column for name in EntitlementRow._fields)
            _list_sql[key] = (
                f"SELECT {columns}, COUNT(*) OVER () AS listed_rows FROM {meta.db_table} "  # noqa: S608
                f"WHERE {where} ORDER BY granted_at DESC, id DESC LIMIT %s OFFSET %s"
            )
    return _list_sql[key]


_list_converters: dict[str, tuple] = {}


def _row_converters() -> tuple[tuple[int, object, list], ...]:
    """Per column of EntitlementRow that needs one, (index, column, converters): what the ORM
    applies to that field's raw value on this database (JSON text parsed; on SQLite uuids and
    times from text too)."""
    vendor = connection.vendor
    if vendor not in _list_converters:
        meta, found = Entitlement._meta, []
        for index, name in enumerate(EntitlementRow._fields):
            column = meta.get_field(name).get_col(meta.db_table)
            converters = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
            if converters:
                found.append((index, column, converters))
        _list_converters[vendor] = tuple(found)
    return _list_converters[vendor]


def _entitlement_rows(found: list[tuple]) -> list[EntitlementRow]:
    """The raw rows (EntitlementRow's columns first) as EntitlementRows, their values converted as
    the ORM converts them."""
    converters, rows = _row_converters(), []
    for raw in found:
        values = list(raw[: len(EntitlementRow._fields)])
        for index, column, converts in converters:
            for convert in converts:
                values[index] = convert(values[index], column, connection)
        rows.append(EntitlementRow._make(values))
    return rows


def _load_timestamps_in_c(cursor) -> None:
    """On PostgreSQL, timestamps read by psycopg's own (C) loader: Django's registers a Python
    subclass of it that only sets the time zone (the session's, UTC, which psycopg's sets too),
    and parsing a page's timestamps in Python cost more than the rest of reading it."""
    if connection.vendor == "postgresql":
        from psycopg.types.datetime import TimestamptzLoader

        cursor.cursor.adapters.register_loader("timestamptz", TimestamptzLoader)


def _list_cursor():
    """On PostgreSQL a server-binding cursor (the page's statement sent as it is, its parameters
    apart: no query text built in Python; prepared once per connection when the settings allow;
    untraced processes only)."""
    return getattr(connection, "server_binding_cursor", connection.cursor)()


class EntitlementList:
    """A user's entitlements, those through a family included, newest first, read a page at a
    time (`counted_page`, what `LimitOffsetPagination` asks for): the page and the count of all of
    them in one query, instead of the family ids, a COUNT and the page; the page's rows as
    EntitlementRows, no model instances."""

    def __init__(self, *, user_id: str, status: str | None = None):
        self.user_id, self.status = user_id, status or None

    def _params(self) -> list:
        return [self.user_id, self.user_id] + ([self.status] if self.status else [])

    def counted_page(self, *, limit: int, offset: int) -> tuple[list[EntitlementRow], int]:
        vendor, status = connection.vendor, self.status is not None
        with _list_cursor() as cursor:
            _load_timestamps_in_c(cursor)
            cursor.execute(_list_query(vendor, status=status, count=False), [*self._params(), limit, offset])
            found = cursor.fetchall()
            if found:
                return _entitlement_rows(found), found[0][-1]
            if offset == 0:
                return [], 0
            # past the last page: no row to carry the count
            cursor.execute(_list_query(vendor, status=status, count=True), self._params())
            return [], cursor.fetchone()[0]


def entitlement_list(*, user_id: str, status: str | None = None) -> EntitlementList:
    """The user's entitlements, those through a family included, newest first."""
    return EntitlementList(user_id=user_id, status=status)


def entitlement_subject(*, user_id: str | None, caller_id: str, privileged: bool) -> str:
    """The user a read of access is about: the caller themself, or (service and staff callers,
    `privileged`) the `user_id` they must name. An end user naming someone else is NotYourself."""
    if user_id is None:
        if privileged:
            raise InvalidEntitlementInput(
                "The request has invalid fields.",
                errors={"user_id": ["Required for service and staff callers."]},
            )
        return caller_id
    if not privileged and user_id != caller_id:
        raise NotYourself("You may only ask about yourself.")
    return user_id


def family_find(*, family_id) -> Family | None:
    """The family, or None if there is none (`family_for_caller` is the checked lookup)."""
    return Family.objects.filter(pk=family_id).first()


def family_for_caller(*, family_id, user_id: str, privileged: bool, manage: bool = False) -> Family:
    """The family, if this caller may see it (members) or manage it (`manage`: the owner).

    Service and staff callers (`privileged`) see and manage every family. A family the caller
    may not see is NotFound, as if it did not exist; a member who may see it but not manage it
    is NotFamilyOwner (403).
    """
    family = family_find(family_id=family_id)
    if family is None:
        raise NotFound("No such family.")
    if privileged or family.owner_user_id == user_id:
        return family
    if not family_is_member(family=family, user_id=user_id):
        raise NotFound("No such family.")
    if manage:
        raise NotFamilyOwner("Only the family owner may change its members.")
    return family


def family_is_member(*, family: Family, user_id: str) -> bool:
    return family.owner_user_id == user_id or family.members.filter(user_id=user_id).exists()


def family_members(*, family: Family):
    return family.members.order_by("added_at", "id")


def family_user_ids(*, family_ids) -> set[str]:
    """Everyone who sees these families' rows: members (owners are members) and owners."""
    family_ids = {f for f in family_ids if f}
    if not family_ids:
        return set()
    members = FamilyMember.objects.filter(family_id__in=family_ids).values_list("user_id", flat=True)
    owners = Family.objects.filter(id__in=family_ids).values_list("owner_user_id", flat=True)
    return set(members) | set(owners)


def entitlements_granted_by(*, payment_id=None, subscription_id: str = ""):
    """The active rows a payment (or the subscription it paid) granted: what refunding all of it
    takes away."""
    rows = Q(payment_id=payment_id) if payment_id else Q(pk__in=[])
    if subscription_id:
        rows |= Q(subscription_id=subscription_id)
    return (
        Entitlement.objects.filter(rows, status=ACTIVE).select_related("plan").order_by("user_id", "feature")
    )


class ConsideredRow(NamedTuple):
    row: AccessRow
    counts: bool
    why: str
    through_family: bool


def entitlement_explain(*, user_id: str, feature_code: str) -> dict:
    """The access check as the API runs it, and every row it looked at with why it counts or not.

    `answer` comes through the cache like any check; `fresh` is the same check on the rows read
    now from the database: when they differ, the cache is stale.
    """
    answer = entitlement_check(user_id=user_id, feature_code=feature_code)
    rows, now = load_access_rows(user_id=user_id), timezone.now().timestamp()
    fresh = _answer(user_id, feature_code, rows, now)
    source = (answer["source"] or {}).get("entitlement_id")
    considered = []
    for row in sorted(rows, key=lambda r: (r.feature_code != feature_code, r.feature_code, r.entitlement_id)):
        if row.feature_code != feature_code:
            counts, why = False, f"another feature ({row.feature_code})"
        elif row.status == CANCELLED:
            counts, why = False, "cancelled"
        elif row.status != ACTIVE:
            counts, why = False, f"{row.status}"
        elif row.expires_at is not None and row.expires_at <= now:
            counts, why = False, f"expired on {_dt(row.expires_at):%Y-%m-%d %H:%M} UTC"
        else:
            ends = "lifetime" if row.expires_at is None else f"until {_dt(row.expires_at):%Y-%m-%d %H:%M} UTC"
            counts, why = (
                True,
                f"grants access ({ends})" + (": the answer's source" if row.entitlement_id == source else ""),
            )
        considered.append(ConsideredRow(row, counts, why, row.family_id is not None))
    families = list(FamilyMember.objects.filter(user_id=user_id).values_list("family_id", "role"))
    return {
        "answer": answer,
        "fresh": fresh,
        "cache_agrees": answer == fresh,
        "rows": considered,
        "families": families,
    }


def entitlements_active_per_plan() -> list[dict]:
    """Rows that grant access now, per plan, most first, in one aggregate query:
    `{plan_id, name, rows, holders}` (holders: distinct users holding them)."""
    granting = Entitlement.objects.filter(status=ACTIVE).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now())
    )
    per_plan = (
        granting.values("plan_id", "plan__name")
        .annotate(rows=Count("id"), holders=Count("user_id", distinct=True))
        .order_by("-rows", "plan_id")
    )
    return [
        {"plan_id": row["plan_id"], "name": row["plan__name"], "rows": row["rows"], "holders": row["holders"]}
        for row in per_plan
    ]

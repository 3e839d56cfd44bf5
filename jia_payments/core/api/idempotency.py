"""`Idempotency-Key` for every API create (API.md "Conventions"), stored in PostgreSQL per caller.

Use it on a DRF handler method:

    class PaymentList(APIView):
        @idempotent
        def post(self, request): ...

- No header: the request runs as usual. A header that is empty, longer than 255 characters or not
  printable ASCII is 400.
- The first request with a key claims the row `(caller, key)` (`core.IdempotencyKey`); a 2xx answer
  is stored with it. Another request with that key and the same method, path and body gets the
  stored status and body again (header `Idempotent-Replayed: true`) without a second effect; with a
  different method, path or body it is 422 `idempotency_key_reused`. A non-2xx answer (bad input,
  refused) changed nothing and is not stored: the key stays free for a corrected request.
- `atomic=True` (default): the claim, the view's writes and the stored answer commit in one
  transaction. A concurrent request with the same key waits on the row's unique index until the
  first commits, then replays its answer (or, if the first failed, runs itself): exactly one effect,
  and a crash can never leave a half-done key. Use it for views that only write to the database.
- `atomic=False`: for views that call out of the process (Stripe) and so must not hold a
  transaction open. The claim commits first; a concurrent request meanwhile gets 409
  `idempotency_key_in_progress` (retry later). The effect and the stored answer then commit apart,
  so a request cut off between them (process killed, database gone) leaves its key in progress
  with its effect made. Such a view makes its effect under `effect_id(request)` (the payment's,
  refund's or checkout session's own id; Stripe's idempotency key is derived from it, DESIGN.md
  rule 6) and finds it when it is asked again: the retry answers what was made, never a second one.
- The claim keeps its `effect_id` for as long as the key lives, whoever holds it: a claim in
  progress is a lease of `IDEMPOTENCY_LEASE_SECONDS` (300 by default, well above the request
  timeout: gunicorn kills a request after GUNICORN_TIMEOUT, 30 s); once it is over, the same request
  takes the key and runs again under the same `effect_id` (a different request is 422: the first
  may have had its effect). A non-2xx answer or an exception releases the key at once: after a 4xx
  (refused, nothing changed) the key is free as if never used; after a 5xx or an error (Stripe
  unreachable: it may have done its part) the same request runs again under the same `effect_id`,
  a corrected one under a new one. When the database itself is gone the release cannot be written,
  and the key waits for its lease.
- A view whose effect is one statement (`core.inserts`) can have the answer stored by that same
  statement (`answer_rows`): the effect and its answer then commit together, one commit less, and
  no crash can leave the effect made with its key still in progress.
- Keys are kept `IDEMPOTENCY_KEY_TTL_HOURS` (24 by default); older ones no longer replay and are
  deleted by the periodic task `core.prune_idempotency_keys`.
"""

import contextlib
import functools
import hashlib
import json
import re
import uuid
from datetime import timedelta

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from jia_payments.core.api.errors import DomainError, IdempotencyKeyInProgress, IdempotencyKeyReused
from jia_payments.core.api.permissions import principal_of
from jia_payments.core.inserts import RowUpdate, binding_cursor, insert_rows
from jia_payments.core.models import IdempotencyKey

HEADER = "Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"
_META_NAME = "HTTP_IDEMPOTENCY_KEY"
_KEY = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?")
KEY_PATTERN = f"^{_KEY.pattern}$"  # the same rule, as the OpenAPI schema publishes it
_PATH_MAX = IdempotencyKey._meta.get_field("path").max_length
_EFFECT_ID = "_idempotency_effect_id"
_CLAIM = "_idempotency_claim"
_ANSWERED = "_idempotency_answered"  # (the answer, its RowUpdate), made by `answer_rows`


def key_ttl() -> timedelta:
    return timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)


def idempotency_key_from(request) -> str | None:
    raw = request.META.get(_META_NAME)
    if raw is None:
        return None
    if not _KEY.fullmatch(raw):
        raise exceptions.ValidationError(
            {HEADER: ["1 to 255 printable ASCII characters, no leading or trailing space."]}
        )
    return raw


def request_fingerprint(request) -> str:
    """SHA-256 of method, path and the parsed body (key order and whitespace do not matter)."""
    body = json.dumps(request.data, sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder)
    return hashlib.sha256(f"{request.method}\n{request.path}\n{body}".encode()).hexdigest()


def effect_id(request) -> uuid.UUID | None:
    """The id the request's effect is made under (None: no Idempotency-Key, any new id will do)."""
    return getattr(request, _EFFECT_ID, None)


def answer_rows(request, response) -> list[RowUpdate]:
    """The claim's stored answer `response` (a 2xx, rendered), as a row for the statement that makes
    the request's effect (`insert_rows`), or none without a claim. Once that statement has written
    it and the view answers `response`, the answer is not stored a second time."""
    record = getattr(request, _CLAIM, None)
    if record is None or not _is_success(response):
        return []
    row = RowUpdate(record, _answer_changes(response))
    setattr(request, _ANSWERED, (response, row))
    return [row]


def _answered_by_its_effect(request, response) -> bool:
    answered, row = getattr(request, _ANSWERED, (None, None))
    return answered is response and row.found


def idempotent(handler=None, *, atomic: bool = True):
    """Decorate a DRF handler method (`post`, `create`, ...) with Idempotency-Key semantics."""

    def decorate(method):
        @functools.wraps(method)
        def wrapper(view, request, *args, **kwargs):
            return run_idempotently(request, lambda: method(view, request, *args, **kwargs), atomic=atomic)

        wrapper.idempotent = True  # read by the OpenAPI schema (documents the header)
        return wrapper

    return decorate(handler) if handler is not None else decorate


def run_idempotently(request, handler, *, atomic: bool = True) -> Response:
    key = idempotency_key_from(request)
    principal = principal_of(request)
    if key is None or principal is None:
        return handler()
    claim = _Claim(caller=str(principal), key=key, method=request.method, path=request.path[:_PATH_MAX])
    fingerprint = request_fingerprint(request)
    if atomic:
        with transaction.atomic():
            record, claimed = claim.take(fingerprint)
            if not claimed:
                return _answer_for(record, fingerprint)
            _hold(request, record)
            response = handler()
            if _is_success(response):
                if not _answered_by_its_effect(request, response):
                    _store(record, response)
            else:
                transaction.set_rollback(True)  # releases the key; a refused request wrote nothing
            return response
    # Each statement of the claim is atomic by itself and conditional on the row as read (see
    # `_Claim.take`): outside a transaction, the claim is one round trip, not BEGIN, it, COMMIT.
    record, claimed = claim.take(fingerprint)
    if not claimed:
        return _answer_for(record, fingerprint)
    _hold(request, record)
    try:
        response = handler()
    except BaseException as error:
        with contextlib.suppress(DatabaseError):  # the database gone: the key waits for its lease
            _release(record, status=_status_of(error))
        raise
    if _is_success(response):
        if not _answered_by_its_effect(request, response):
            _store(record, response)
    else:
        _release(record, status=response.status_code)
    return response


def _hold(request, record: IdempotencyKey) -> None:
    setattr(request, _EFFECT_ID, record.effect_id)
    setattr(request, _CLAIM, record)


class _Claim:
    def __init__(self, *, caller: str, key: str, method: str, path: str):
        self.caller, self.key, self.method, self.path = caller, key, method, path

    def take(self, fingerprint: str) -> tuple[IdempotencyKey, bool]:
        """(our row, True): new, or a released or lapsed one taken over (`_free`); or (the row
        another request holds or completed, False).

        One `INSERT ... ON CONFLICT DO NOTHING`: no savepoint, no failed statement. When another
        transaction holds an uncommitted row with this key, the insert waits for it to end, then
        either inserts (it rolled back) or does nothing (it committed, and its row is read).
        """
        for _ in range(3):
            record = IdempotencyKey(
                caller=self.caller,
                key=self.key,
                method=self.method,
                path=self.path,
                request_fingerprint=fingerprint,
                state=IdempotencyKey.State.IN_PROGRESS,
                effect_id=uuid.uuid4(),
                created_at=timezone.now(),
            )
            with binding_cursor() as cursor:
                cursor.execute(_claim_sql(), _claim_values(record))
                inserted = cursor.fetchone()
            if inserted is not None:
                record.pk = inserted[0]
                return record, True
            held = IdempotencyKey.objects.filter(caller=self.caller, key=self.key).first()
            if held is None:
                continue  # the holder's row was pruned meanwhile: claim again
            if held.created_at < timezone.now() - key_ttl():
                # Past the key's life: a new request, a new effect. Only the row as read.
                IdempotencyKey.objects.filter(pk=held.pk, created_at=held.created_at).delete()
                continue
            if not _free(held, fingerprint):
                return held, False
            taken = self._take_over(held, fingerprint)
            if taken is not None:
                return taken, True
        raise IdempotencyKeyInProgress("Another request with this Idempotency-Key is in progress.")

    def _take_over(self, held: IdempotencyKey, fingerprint: str) -> IdempotencyKey | None:
        """Take a released key or an expired lease, or None when another request took it first.

        The same request keeps the claim's `effect_id`, so it finds what an earlier run made; a
        corrected request after a release gets a new one. Conditional on the row as read: a holder
        that completes or a rival that takes it meanwhile wins.
        """
        same = held.request_fingerprint == fingerprint
        changes = {
            "state": IdempotencyKey.State.IN_PROGRESS,
            "created_at": timezone.now(),
            "request_fingerprint": fingerprint,
            "effect_id": held.effect_id if same else uuid.uuid4(),
            "method": self.method,
            "path": self.path,
        }
        if not IdempotencyKey.objects.filter(pk=held.pk, created_at=held.created_at, state=held.state).update(
            **changes
        ):
            return None
        for name, value in changes.items():
            setattr(held, name, value)
        return held


_CLAIM_FIELDS = (
    *("caller", "key", "method", "path", "request_fingerprint", "state", "response_body"),
    *("effect_id", "created_at"),
)


def _claim_values(record: IdempotencyKey) -> list:
    """The claim's values as the database takes them (SQLite has no uuid or datetime type)."""
    meta = IdempotencyKey._meta
    return [
        meta.get_field(name).get_db_prep_save(getattr(record, name), connection) for name in _CLAIM_FIELDS
    ]


@functools.cache
def _claim_sql() -> str:
    meta = IdempotencyKey._meta
    quote = connection.ops.quote_name
    columns = ", ".join(quote(meta.get_field(name).column) for name in _CLAIM_FIELDS)
    conflict = ", ".join(quote(meta.get_field(name).column) for name in ("caller", "key"))
    values = ", ".join(["%s"] * len(_CLAIM_FIELDS))
    # Only quoted identifiers from the model are interpolated; every value is a query parameter.
    return (
        f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({values}) "  # noqa: S608
        f"ON CONFLICT ({conflict}) DO NOTHING RETURNING {quote(meta.pk.column)}"
    )


def _free(record: IdempotencyKey, fingerprint: str) -> bool:
    """May this request take the key: released by a refusal, or the same request as one whose
    lease is over (it died mid-flight)? A completed key only replays."""
    if record.state == IdempotencyKey.State.RELEASED:
        return True
    if record.state != IdempotencyKey.State.IN_PROGRESS or record.request_fingerprint != fingerprint:
        return False
    lease = timedelta(seconds=settings.IDEMPOTENCY_LEASE_SECONDS)
    return record.created_at < timezone.now() - lease


def _answer_for(record: IdempotencyKey, fingerprint: str) -> Response:
    if record.request_fingerprint != fingerprint:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was used with a different request; use a new key for a new request."
        )
    if record.state != IdempotencyKey.State.COMPLETED:
        raise IdempotencyKeyInProgress(
            "A request with this Idempotency-Key is still in progress; retry later."
        )
    data = json.loads(record.response_body) if record.response_body else None
    return Response(data, status=record.response_status, headers={REPLAY_HEADER: "true"})


def _is_success(response) -> bool:
    return 200 <= response.status_code < 300


def _status_of(error: BaseException) -> int:
    if isinstance(error, exceptions.APIException):
        return error.status_code
    return error.status if isinstance(error, DomainError) else 500


def _release(record: IdempotencyKey, *, status: int) -> None:
    """The request did not succeed: the key is free again. Refused (4xx), it changed nothing and
    the row goes; failed (5xx, e.g. Stripe unreachable, or an error), it may have made part of its
    effect, so the row stays, released, its `effect_id` kept for the same request."""
    ours = IdempotencyKey.objects.filter(
        pk=record.pk, created_at=record.created_at, state=IdempotencyKey.State.IN_PROGRESS
    )
    if status < 500:
        ours.delete()
    else:
        ours.update(state=IdempotencyKey.State.RELEASED)


def _store(record: IdempotencyKey, response) -> None:
    insert_rows(RowUpdate(record, _answer_changes(response)))


def _answer_changes(response) -> dict:
    return {
        "state": IdempotencyKey.State.COMPLETED.value,
        "response_status": response.status_code,
        "response_body": _body_of(response),
    }


def _body_of(response) -> str:
    """The answer's JSON text: a DRF Response's data rendered, or an answer already rendered
    (`renderers.json_response`)."""
    if not isinstance(response, Response):
        return response.content.decode()
    return JSONRenderer().render(response.data).decode() if response.data is not None else ""


def idempotency_keys_prune(*, older_than: timedelta | None = None) -> int:
    """Delete keys older than the TTL (or `older_than`); returns how many."""
    cutoff = timezone.now() - (older_than if older_than is not None else key_ttl())
    deleted, _ = IdempotencyKey.objects.filter(created_at__lt=cutoff).delete()
    return deleted

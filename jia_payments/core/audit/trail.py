"""The audit trail: who changed what, when, from what to what, and why.

django-auditlog records every save and delete of the models listed in
`settings.AUDITLOG_INCLUDE_TRACKING_MODELS` as a `LogEntry` (before and after of each field).
This module adds what auditlog cannot know by itself:

- who: `AuditMiddleware` keeps the request in a context variable; when an entry is written, the
  caller is read from it: a Django staff user (admin) becomes the entry's `actor`; an API caller
  (a `Principal` from a service or staff token, whose user id is not a Django user) is written to
  `actor_email` and `additional_data["actor"]` as "service:<id>" / "staff:<id>". Work outside a
  request (the expiry sweeper, Stripe webhooks) names itself with `audit_context(actor=...)`;
- why: `audit_context(reason=...)` around a service call puts the reason (grant, revoke, refund)
  into `additional_data["reason"]` of every entry written inside it;
- the writes auditlog does not see: `QuerySet.update()` sends no signal, so services that move a
  row with a conditional UPDATE (state transitions, seat counters, the expiry sweeper's batches)
  call `record_changes()` with the before and after they know, in the same transaction.

The request id of the structured logs is each entry's correlation id (`cid`), so an entry leads to
the log lines of the request that made it.

Work a caller starts and a Celery task finishes (a plan's re-sync after an admin change) keeps its
caller: `task_audit_headers()` (before_task_publish) writes who is acting and why into the task
message's `jia_audit` header, and `task_audit_resume()` (task_prerun) makes the worker's entries
name them; the request id travels with them and stays the entries' `cid`.
"""

import functools
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.db.models import Model

_request: ContextVar = ContextVar("audit_request", default=None)
_context: ContextVar[dict | None] = ContextVar("audit_context", default=None)

SYSTEM = "system"
TASK_HEADER = "jia_audit"
_USER_PK = "_user_pk"  # header key: the pk of the Django user (admin) a task acts for
_USER = "_user"  # context key: that user, looked up once when the task starts; not written as data


class AuditMiddleware:
    """Makes the current request (and so its caller) known to the entries written while it runs."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = _request.set(request)
        try:
            return self.get_response(request)
        finally:
            _request.reset(token)


@contextmanager
def audit_context(*, actor: str | None = None, reason: str | None = None, **extra: Any) -> Iterator[None]:
    """Entries written inside carry this reason (and name `actor` when no request names one).

    Nests: an inner value replaces the outer one for its duration; empty values change nothing.
    """
    given = {"actor": actor, "reason": reason[:500] if reason else reason, **extra}
    token = _context.set(
        {**(_context.get() or {}), **{k: v for k, v in given.items() if v not in (None, "")}}
    )
    try:
        yield
    finally:
        _context.reset(token)


def correlation_id() -> str | None:
    """AUDITLOG_CID_GETTER: the request id of the structured logs (X-Request-ID or generated)."""
    import structlog

    return structlog.contextvars.get_contextvars().get("request_id")


def _django_user(request):
    """The logged-in Django user of the request, also after DRF replaced `request.user`."""
    from django.contrib.auth.models import AbstractBaseUser

    user = getattr(request, "_cached_user", None)  # AuthenticationMiddleware's, once evaluated
    if user is None:
        user = getattr(request, "user", None)
    if isinstance(user, AbstractBaseUser) and user.is_authenticated:
        return user
    return None


def caller() -> dict[str, Any]:
    """The LogEntry fields that say who is acting now: actor, actor_email, remote_addr, and the
    `additional_data` (actor label, role, reason, request)."""
    from jia_payments.core.api.auth import Principal

    context = _context.get() or {}
    request = _request.get()
    fields: dict[str, Any] = {"actor": None, "actor_email": None, "remote_addr": None}
    data: dict[str, Any] = {}
    if request is not None:
        # DRF sets the Principal on the HttpRequest; type() leaves a lazy Django user unevaluated.
        principal = request.__dict__.get("user")
        user = _django_user(request)
        if type(principal) is Principal:
            data["actor"], data["role"] = str(principal), principal.role
        if user is not None:
            fields["actor"] = user
            data.setdefault("actor", user.get_username())
            data.setdefault("role", Principal.STAFF)
        data["request"] = f"{request.method} {request.path}"[:300]
        fields["remote_addr"] = request.META.get("REMOTE_ADDR") or None
    if "actor" not in data:
        data["actor"] = context.get("actor", SYSTEM)
        if request is None:
            fields["actor"] = context.get(_USER)
    data.update({k: v for k, v in context.items() if k not in ("actor", _USER)})
    user = fields["actor"]
    fields["actor_email"] = str(getattr(user, "email", "") or data["actor"])[:254]
    fields["additional_data"] = data
    return fields


def _user(pk):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.filter(pk=pk).first()


def task_audit_headers(headers: dict | None = None, **kwargs) -> None:
    """before_task_publish: a task enqueued by a request or inside `audit_context` carries who is
    acting and why (JSON-safe) in its message, so the worker's audit entries name them."""
    if headers is None or (_request.get() is None and not _context.get()):
        return
    who = caller()
    data = who["additional_data"]
    if data.get("actor") == SYSTEM and who["actor"] is None:
        return
    carried = {k: v for k, v in data.items() if isinstance(v, (str, int, float, bool))}
    if who["actor"] is not None:
        carried[_USER_PK] = who["actor"].pk
    if correlation_id():
        carried["request_id"] = correlation_id()
    headers[TASK_HEADER] = carried


def task_audit_headers_of(task) -> dict:
    """The `jia_audit` header of the running task: a message header (a worker) or one given to
    `apply(headers=...)`."""
    request = task.request
    return (
        getattr(request, TASK_HEADER, None)
        or (getattr(request, "headers", None) or {}).get(TASK_HEADER)
        or {}
    )


_task_tokens: dict[str, Any] = {}


def task_audit_resume(task_id=None, task=None, **kwargs) -> None:
    """task_prerun: the entries the task writes name the caller its message carries."""
    import structlog

    carried = dict(task_audit_headers_of(task)) if task is not None else {}
    request_id = carried.pop("request_id", None)
    if not carried:
        return
    if carried.get(_USER_PK) is not None:
        carried[_USER] = _user(carried[_USER_PK])
    carried.pop(_USER_PK, None)
    bound = None
    if request_id and not correlation_id():  # django-structlog's worker step may have bound it
        bound = structlog.contextvars.bind_contextvars(request_id=str(request_id)[:200])
    _task_tokens[task_id] = (_context.set({**(_context.get() or {}), **carried}), bound)


def task_audit_end(task_id=None, **kwargs) -> None:
    """task_postrun: back to the worker's own context."""
    import structlog

    tokens = _task_tokens.pop(task_id, None)
    if tokens is not None:
        context_token, bound = tokens
        _context.reset(context_token)
        if bound:
            structlog.contextvars.reset_contextvars(**bound)


def fill_log_entry(sender, instance, **kwargs) -> None:
    """pre_save of LogEntry: every entry auditlog writes says who acted and why."""
    if not instance._state.adding:
        return
    who = caller()
    if instance.actor_id is None and who["actor"] is not None:
        instance.actor = who["actor"]
    if not instance.actor_email:
        instance.actor_email = who["actor_email"]
    if instance.remote_addr is None:
        instance.remote_addr = who["remote_addr"]
    instance.additional_data = {**who["additional_data"], **(instance.additional_data or {})}


def creation_entry(instance: Model):
    """The `LogEntry` django-auditlog writes when `instance` is first saved (its `log_create`
    receiver: the diff from nothing, the object's text, the correlation id), filled in as
    `fill_log_entry` fills every entry, and unsaved: for a write that inserts the object's row
    itself, with no save and so no signal (`core.inserts`). Call it once the instance holds what
    its save would write (`NewRow` sets the `auto_now` times). None where auditlog writes none."""
    from auditlog.context import auditlog_disabled
    from auditlog.diff import model_instance_diff
    from auditlog.models import LogEntry
    from auditlog.registry import auditlog
    from django.conf import settings

    if auditlog_disabled.get(False) or not auditlog.contains(type(instance)):
        return None
    use_json = settings.AUDITLOG_STORE_JSON_CHANGES
    changes = model_instance_diff(None, instance, use_json_for_changes=use_json)
    if not changes:
        return None
    entry = _unsaved_entries().log_create(instance, action=LogEntry.Action.CREATE, changes=changes)
    fill_log_entry(LogEntry, entry)
    return entry


@functools.cache
def _unsaved_entries():
    """auditlog's `LogEntry.objects`, whose `create` answers the entry unsaved."""
    from auditlog.models import LogEntry

    class UnsavedEntries(type(LogEntry.objects)):
        def create(self, **fields):
            return self.model(**fields)

    manager = UnsavedEntries()
    manager.model = LogEntry
    return manager


def _text(value) -> str:
    """A value as auditlog writes it in `changes` (its text form; None as "None")."""
    from django.utils.encoding import smart_str

    return smart_str(value)


def record_changes(
    model: type[Model],
    rows: Iterable[tuple[Any, str, dict[str, tuple[Any, Any]]]],
    *,
    action: int | None = None,
    **additional_data: Any,
) -> int:
    """Audit changes made without a model save (a `QuerySet.update()`), in one INSERT.

    `rows`: (primary key, the object's text, {field: (before, after)}). Fields whose before equals
    their after are left out; a row with no change left is not recorded. Answers how many were.
    """
    from auditlog.cid import get_cid
    from auditlog.models import LogEntry
    from django.contrib.contenttypes.models import ContentType

    who = caller()
    data = {**who["additional_data"], **additional_data}
    content_type = ContentType.objects.get_for_model(model)
    cid = get_cid()
    entries = []
    for pk, text, changes in rows:
        diff = {
            field: [_text(before), _text(after)]
            for field, (before, after) in changes.items()
            if _text(before) != _text(after)
        }
        if not diff:
            continue
        entries.append(
            LogEntry(
                content_type=content_type,
                object_pk=str(pk),
                object_id=pk if isinstance(pk, int) else None,
                object_repr=text,
                action=LogEntry.Action.UPDATE if action is None else action,
                changes=diff,
                actor=who["actor"],
                actor_email=who["actor_email"],
                remote_addr=who["remote_addr"],
                additional_data=data,
                cid=cid,
            )
        )
    LogEntry.objects.bulk_create(entries)
    return len(entries)


def entries_for(instance: Model):
    """The audit entries of one object, newest first."""
    from auditlog.models import LogEntry

    return LogEntry.objects.get_for_object(instance).select_related("actor").order_by("-timestamp", "-pk")


def actor_label(entry) -> str:
    """Who made an entry, as staff read it: the admin user, the API caller, or the system job."""
    if entry.actor_id is not None and entry.actor is not None:
        return entry.actor.get_username()
    data = entry.additional_data or {}
    return str(data.get("actor") or entry.actor_email or SYSTEM)


def reason_of(entry) -> str:
    return str((entry.additional_data or {}).get("reason", ""))

"""Structured logs: one JSON object per line (LOG_FORMAT=json, the default) or coloured console lines.

Every line, from structlog or from a plain `logging` logger (Django, Celery, gunicorn), goes through
the same chain: the request/task context (request_id, user_id, task_id; trace_id and span_id
while a trace is recorded), ISO 8601 UTC timestamp,
level, logger name, then `redact` so no token, secret or card number reaches a log sink.
"""

import functools
import logging
import re

import orjson
import structlog

from jia_payments.core.ops.tracing import log_fields as trace_log_fields

REDACTED = "[redacted]"

# Keys whose values are credentials or payment data whatever they hold.
_SENSITIVE_KEY = re.compile(
    r"(authorization|auth[_-]?token|better[_-]auth|token|secret|password|passwd|signature|cookie|"
    r"api[_-]?key|card[_-]?number|cvc|cvv|\bpan\b)",
    re.IGNORECASE,
)
# Values that are credentials wherever they appear, even inside a message or a traceback.
_SENSITIVE_VALUE = re.compile(
    r"eyJ[\w-]{5,}\.[\w-]{5,}\.[\w-]*"  # a JWT (header.payload.signature)
    r"|\b(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{8,}"  # Stripe API keys
    r"|\bwhsec_[0-9A-Za-z]{8,}"  # Stripe webhook signing secrets
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"
)
# 13 to 19 digits, spaces or dashes between them, standing alone: a digit run inside a word (a UUID,
# a hex id, `pi_...`) is part of an id, never a card number, even when its digits pass Luhn.
_CARD_CANDIDATE = re.compile(r"(?<![\w-])(?:\d[ -]?){12,18}\d(?![\w-])")

# Keys that are ours and never sensitive, even when their names look so (e.g. "token_count").
_SAFE_KEYS = frozenset({"event", "logger", "level", "timestamp", "request_id", "user_id", "task_id"})
# Trace and span ids are hex digits only, so they may look like a card number to the value checks.
_TRACE_KEYS = {"trace_id": re.compile(r"[0-9a-f]{32}"), "span_id": re.compile(r"[0-9a-f]{16}")}


def _luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        number = int(char)
        if index % 2:
            number *= 2
            if number > 9:
                number -= 9
        total += number
    return total % 10 == 0


def _mask_card(match: re.Match) -> str:
    digits = re.sub(r"[ -]", "", match.group(0))
    return REDACTED if _luhn_valid(digits) else match.group(0)


# Every credential _SENSITIVE_VALUE finds contains one of these: a text with none is not searched.
_CREDENTIAL_MARKS = ("eyJ", "_live_", "_test_", "whsec_", "-----BEGIN ")
# Short texts recur from line to line (paths, methods, events, addresses, user ids): their redacted
# form is kept; longer ones (messages with values in them, tracebacks) are redacted each time.
_REMEMBERED_UP_TO = 200


def _redact(text: str) -> str:
    if any(mark in text for mark in _CREDENTIAL_MARKS):
        text = _SENSITIVE_VALUE.sub(REDACTED, text)
    return _CARD_CANDIDATE.sub(_mask_card, text)


_redact_remembered = functools.lru_cache(maxsize=4096)(_redact)


def redact_text(text: str) -> str:
    return _redact_remembered(text) if len(text) <= _REMEMBERED_UP_TO else _redact(text)


def _redact_value(value):
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {
            key: REDACTED if _is_sensitive_key(key) else _redact_value(item) for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact_value(item) for item in value]
    return value


@functools.lru_cache(maxsize=4096)
def _is_sensitive_name(key: str) -> bool:
    return key not in _SAFE_KEYS and bool(_SENSITIVE_KEY.search(key))


def _is_sensitive_key(key) -> bool:
    return isinstance(key, str) and _is_sensitive_name(key)


def _is_trace_id(key, value) -> bool:
    pattern = _TRACE_KEYS.get(key)
    return pattern is not None and isinstance(value, str) and pattern.fullmatch(value) is not None


def redact(logger, method_name, event_dict):
    """structlog processor: drop credentials and card numbers from every field of a log line."""
    return {key: _redact_field(key, value) for key, value in event_dict.items()}


def _redact_field(key, value):
    if _is_trace_id(key, value):
        return value
    return REDACTED if _is_sensitive_key(key) else _redact_value(value)


# Applied to structlog's own loggers and, as `foreign_pre_chain`, to plain `logging` records.
SHARED_PROCESSORS = [
    structlog.contextvars.merge_contextvars,
    trace_log_fields,  # trace_id and span_id while a span is active (tracing on)
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
]


def _json_dumps(event_dict, default=None, **kwargs) -> str:
    """orjson, as JSONRenderer's serializer: a line in a fifth of the stdlib encoder's time."""
    return orjson.dumps(event_dict, default=default or str, option=orjson.OPT_NON_STR_KEYS).decode()


def _final_processors(log_format: str) -> list:
    if log_format == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=False)
        return [structlog.stdlib.ProcessorFormatter.remove_processors_meta, redact, renderer]
    return [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        structlog.processors.format_exc_info,
        redact,
        structlog.processors.JSONRenderer(serializer=_json_dumps, default=str),
    ]


def formatter(log_format: str = "json") -> structlog.stdlib.ProcessorFormatter:
    """The logging.Formatter of every handler (also used by gunicorn and the Celery worker)."""
    return structlog.stdlib.ProcessorFormatter(
        processors=_final_processors(log_format),
        foreign_pre_chain=[*SHARED_PROCESSORS, structlog.stdlib.ExtraAdder()],
    )


def logging_config(*, level: str, log_format: str) -> dict:
    """Django's LOGGING: one stderr handler, the formatter above, `level` at the root."""
    if log_format not in ("json", "console"):
        raise ValueError(f"LOG_FORMAT must be 'json' or 'console', not {log_format!r}")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structured": {"()": "jia_payments.core.ops.logs.formatter", "log_format": log_format},
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # django-structlog's request_started/request_finished lines carry these; no duplicates.
            "django": {"handlers": [], "level": level, "propagate": True},  # not Django's own console
            "django.server": {"level": "WARNING"},
            "django.request": {"level": "ERROR"},
            "health_check": {"level": "ERROR"},  # /readyz logs one line naming what failed
            # Stripe's SDK writes two info lines per API call and one per error (the gateway maps
            # errors to the request's answer and logs those operators act on): one line a request.
            "stripe": {"level": "WARNING"},
        },
    }


def configure_structlog() -> None:
    # No record says which thread, process or source line logged it (no formatter here shows
    # them): finding the caller walks the stack on every line.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *SHARED_PROCESSORS,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.UnicodeDecoder(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def use_structured_format(logger: logging.Logger, log_format: str) -> None:
    """Give an already configured logger's handlers our formatter (Celery's, gunicorn's)."""
    for handler in logger.handlers:
        handler.setFormatter(formatter(log_format))

"""Changes `python -m bench stack --toggle NAME` can switch off (the code before them) and on, to
measure one in a single process: each a function taking `on`."""


def _lean(view, on: bool) -> None:
    from rest_framework.views import APIView

    if not on:
        view.dispatch = APIView.dispatch
    elif "dispatch" in vars(view):
        del view.dispatch  # LeanDispatch's again


def lean_dispatch(on: bool) -> None:
    """The entitlement check without DRF's dispatch for a plainly valid token call (off: DRF's)."""
    from entitlements.api import EntitlementCheckView

    _lean(EntitlementCheckView, on)


def lean_list(on: bool) -> None:
    """The same for the entitlement list's GET."""
    from entitlements.api import EntitlementListView

    _lean(EntitlementListView, on)


_after: dict = {}  # the changed code, kept while a toggle has it off


def _throttles_before(self):
    from entitlements.api import WriteRateThrottle

    return [t for t in super(type(self), self).get_throttles() if not isinstance(t, WriteRateThrottle)]


def throttle_parse(on: bool) -> None:
    """A rate string parsed once per string, and the check's write throttle never built (off:
    parsed per request, and all four built, then the write one filtered out)."""
    from entitlements.api import EntitlementCheckView
    from jia_payments.core.api import throttling

    parse = _after.setdefault("parse_rate", throttling._parse_rate)
    get_throttles = _after.setdefault("get_throttles", EntitlementCheckView.get_throttles)
    throttling._parse_rate = parse if on else parse.__wrapped__
    EntitlementCheckView.get_throttles = get_throttles if on else _throttles_before


_SCALARS = (str, int, bool, type(None))


def _renders_as_drf_before(value) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if not all(type(key) is str for key in item):
                return False
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif not isinstance(item, _SCALARS):
            return False
    return True


def renders_check(on: bool) -> None:
    """renders_as_drf checking a container's plain scalars in one pass in C (off: one by one)."""
    from jia_payments.core.api import renderers

    after = _after.setdefault("renders_as_drf", renderers.renders_as_drf)
    renderers.renders_as_drf = after if on else _renders_as_drf_before


def _check_many_before(*, user_id, feature_codes):
    from entitlements import metrics, selectors
    from jia_payments.core.ops import tracing

    rows, now = selectors.access_rows(user_id=user_id), selectors.timezone.now().timestamp()
    answers = {code: _answer_before(user_id, code, rows, now) for code in feature_codes}
    for answer in answers.values():
        metrics.entitlement_checked(answer["reason"])
    tracing.set_attributes(
        {
            "entitlement.checked": len(answers),
            "entitlement.granted": sum(answer["has_access"] for answer in answers.values()),
        }
    )
    return answers


def _answer_before(user_id, feature_code, rows, now):
    import math

    from entitlements import selectors

    mine = sorted((r for r in rows if r.feature_code == feature_code), key=selectors._in_answer_order)
    granting = [
        r for r in mine if r.status == selectors.ACTIVE and (r.expires_at is None or r.expires_at > now)
    ]
    if granting:
        best = max(granting, key=lambda r: math.inf if r.expires_at is None else r.expires_at)
        return {
            "user_id": user_id,
            "feature_code": feature_code,
            "has_access": True,
            "reason": "active",
            "expires_at": selectors._dt(best.expires_at),
            "usage_limits": selectors._merge_limits(granting),
            "source": {
                "entitlement_id": best.entitlement_id,
                "plan_id": best.plan_id,
                "family_id": best.family_id,
            },
        }
    if mine:
        latest = max(mine, key=lambda r: r.ended_at)
        revoked = latest.status == selectors.CANCELLED
        reason, expires_at = ("revoked", None) if revoked else ("expired", latest.expires_at)
    else:
        reason, expires_at = "no_entitlement", None
    return {
        "user_id": user_id,
        "feature_code": feature_code,
        "has_access": False,
        "reason": reason,
        "expires_at": selectors._dt(expires_at),
        "usage_limits": {},
        "source": None,
    }


def check_many_by_feature(on: bool) -> None:
    """The batch check's rows grouped by feature once, a feature without rows answered directly, the
    answers counted in the metrics once per reason (off: every feature filtered and sorted from all
    the rows, one counter increment per feature)."""
    from entitlements import selectors

    after = _after.setdefault("entitlement_check_many", selectors.entitlement_check_many)
    selectors.entitlement_check_many = after if on else _check_many_before


def _parse_before(self, stream, media_type=None, parser_context=None):
    import codecs
    import json

    from rest_framework.exceptions import ParseError
    from rest_framework.parsers import get_encoding
    from rest_framework.utils.json import strict_constant

    from jia_payments.core.api import parsers

    encoding = get_encoding(parser_context or {})
    try:
        text = codecs.getreader(encoding)(stream).read()
        data = json.loads(text, parse_constant=strict_constant, object_pairs_hook=parsers._unique_keys)
    except RecursionError:
        raise ParseError("JSON parse error - nested deeper than 32 levels.") from None
    except ValueError as error:
        raise ParseError(f"JSON parse error - {error}") from None
    if parsers.nesting_depth(data) > parsers.MAX_DEPTH:
        raise ParseError("JSON parse error - nested deeper than 32 levels.")
    if parsers.has_text_matching(data, parsers._SURROGATE):
        raise ParseError("JSON parse error - a string holds an unpaired surrogate (\\ud800-\\udfff).")
    return data


def json_parse(on: bool) -> None:
    """The JSON body parsed by one decoder built once, and the depth and surrogate walks only for a
    text that could fail them (off: a decoder per body, both walks on every body)."""
    from jia_payments.core.api.parsers import BoundedJSONParser

    after = _after.setdefault("parse", BoundedJSONParser.parse)
    BoundedJSONParser.parse = after if on else _parse_before


def render_check_limits(on: bool) -> None:
    """The check's answers rendered by orjson after checking only their usage limits (the stored
    JSON in them; the rest the check builds of JSON types) (off: the whole answer walked)."""
    from jia_payments.core.api import renderers

    after = _after.setdefault("json_response", renderers.json_response)

    def whole(request, data, *, built_of_json_types_but=None):
        return after(request, data)

    from entitlements import api

    api.json_response = after if on else whole


def rendered_texts(on: bool) -> None:
    """The check's answers without a timestamp passed on as they are, a batch's shared expiry
    written as text once (off: every answer copied, each timestamp written)."""
    from entitlements import api

    after = _after.setdefault("_rendered", api._rendered)

    def before(answer, texts=None):
        expires_at = answer["expires_at"]
        return {**answer, "expires_at": None if expires_at is None else api.iso_utc(expires_at)}

    api._rendered = after if on else before


def check_and_batch(on: bool) -> None:
    """All of the check's and batch check's own changes above together: rows by feature, one JSON
    decoder and fewer walks, only the usage limits checked before orjson, timestamps' texts once."""
    for toggle in (check_many_by_feature, json_parse, render_check_limits, rendered_texts):
        toggle(on)


def _verify_before(token, key=None):
    import jwt
    from django.conf import settings
    from rest_framework import exceptions

    from jia_payments.core.api import auth

    if len(token) > auth.MAX_TOKEN_LENGTH:
        raise exceptions.AuthenticationFailed("Malformed token.")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as error:
        raise exceptions.AuthenticationFailed("Malformed token.") from error
    key = key or auth._key_for(header)
    options = {"require": ["exp", "sub"], "verify_aud": bool(settings.AUTH_JWT_AUDIENCE)}
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=auth.allowed_algorithms(),
            options=options,
            audience=settings.AUTH_JWT_AUDIENCE or None,
            issuer=settings.AUTH_JWT_ISSUER or None,
            leeway=settings.AUTH_JWT_LEEWAY_SECONDS,
        )
    except (jwt.PyJWTError, ValueError, TypeError) as error:
        raise exceptions.AuthenticationFailed("Invalid or expired token.") from error
    subject = claims.get("sub")
    principal = auth.Principal(user_id=subject, role=auth._ROLE_CLAIMS.get(claims.get("role"), "user"))
    return principal, float(claims["exp"]) + settings.AUTH_JWT_LEEWAY_SECONDS


def token_header_once(on: bool) -> None:
    """A token verified without reading its header first when one key is configured (off: the
    header parsed by PyJWT, then the whole token again by `jwt.decode`)."""
    from jia_payments.core.api import auth

    after = _after.setdefault("_verify", auth._verify)
    auth._verify = after if on else _verify_before


pause = 0.0  # seconds bench.stack's child sleeps before each request


def paused(on: bool) -> None:
    """Not a change of the stack: the process sleeps 2 ms before each request (off: not at all),
    so other processes run between two of its requests, as they do between a server worker's; the
    sleep is no CPU of the process, what it costs the next request (caches refilled) is."""
    global pause
    pause = 0.002 if on else 0.0

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


pause = 0.0  # seconds bench.stack's child sleeps before each request


def paused(on: bool) -> None:
    """Not a change of the stack: the process sleeps 2 ms before each request (off: not at all),
    so other processes run between two of its requests, as they do between a server worker's; the
    sleep is no CPU of the process, what it costs the next request (caches refilled) is."""
    global pause
    pause = 0.002 if on else 0.0

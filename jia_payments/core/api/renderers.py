"""The API's renderers: JSON, and DRF's browsable API for a browser asking for text/html; and
`json_response`, a hot view's answer rendered directly when that gives DRF's bytes."""

import orjson
from django.http import HttpResponse
from rest_framework import renderers
from rest_framework.response import Response


class BrowsableAPIRenderer(renderers.BrowsableAPIRenderer):
    """DRF's browsable API without its filter form: our list views read their filters from
    validated query parameters rather than a `queryset` attribute, and DRF building the form
    called `get_queryset()`, which made every list page a 500."""

    def get_filter_form(self, data, view, request):
        return None


_JSON = "application/json"
# orjson writes JSON's own types as DRF's JSONRenderer (compact, UTF-8) writes them, but for
# floats (`1e-05`: orjson writes `1e-5`) and the two line separators DRF escapes.
_SAME_BYTES_SCALARS = (str, int, bool, type(None))
_SCALAR_TYPES = frozenset(_SAME_BYTES_SCALARS)
_STR = frozenset({str})
_LINE_SEPARATORS = ("\u2028".encode(), "\u2029".encode())


def renders_as_drf(value) -> bool:
    """Whether orjson renders `value` byte for byte as DRF's JSONRenderer: dicts with string keys,
    lists, strings, ints, bools and None (an int past 64 bits makes orjson refuse, see below)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if not _STR.issuperset(map(type, item)):
                return False
            children = item.values()
        elif isinstance(item, list):
            children = item
        elif isinstance(item, _SAME_BYTES_SCALARS):
            continue
        else:
            return False
        # Children of exactly a scalar type are checked here, in one pass in C; any other child
        # (a container, a subclass, a float) is checked as an item of its own.
        if not _SCALAR_TYPES.issuperset(map(type, children)):
            stack.extend(child for child in children if type(child) not in _SCALAR_TYPES)
    return True


def json_response(request, data, *, built_of_json_types_but=None) -> HttpResponse:
    """`Response(data)`, already rendered when JSON was negotiated (plainly: no indent, no other
    renderer) and `data` renders as DRF would render it: the same bytes and Content-Type without
    DRF's Response and its renderer's encoder. Anything else is a DRF Response.

    `built_of_json_types_but`: a caller that built `data` itself of str, int, bool and None values,
    str-keyed dicts and lists, except for the values it lists here (taken from elsewhere: stored
    JSON), has only those checked."""
    renderer = getattr(request, "accepted_renderer", None)
    if (
        type(renderer) is renderers.JSONRenderer
        and request.accepted_media_type == _JSON
        and renderer.compact
        and not renderer.ensure_ascii
        and renders_as_drf(data if built_of_json_types_but is None else built_of_json_types_but)
    ):
        try:
            body = orjson.dumps(data)
        except orjson.JSONEncodeError:  # an int past 64 bits
            return Response(data)
        if _LINE_SEPARATORS[0] in body or _LINE_SEPARATORS[1] in body:
            body = body.replace(_LINE_SEPARATORS[0], b"\\u2028").replace(_LINE_SEPARATORS[1], b"\\u2029")
        # The charset given, Django never parses it out of the Content-Type (the same utf-8).
        return HttpResponse(body, content_type=_JSON, charset="utf-8")
    return Response(data)

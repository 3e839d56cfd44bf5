"""DRF's content negotiation, answering the common cases without parsing the Accept header.

Nearly every API call sends no Accept header, `*/*` or `application/json`; for those, with no
`?format=` and no format suffix, DRF's negotiation always picks the first renderer when it is the
JSON one, with `application/json` as the media type. That answer is given directly (DRF parses
the header into media types and ranks them on every request); anything else is DRF's own code.
"""

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.settings import api_settings

_PLAIN_ACCEPT = frozenset({None, "*/*", "application/json"})
JSON = "application/json"


def plainly_json(request, renderers, format_suffix=None) -> bool:
    """Whether DRF's negotiation picks the first of `renderers` (classes or instances), JSON, with
    `application/json` for this request, without looking further."""
    return (
        not format_suffix
        and bool(renderers)
        and renderers[0].media_type == JSON
        and request.META.get("HTTP_ACCEPT") in _PLAIN_ACCEPT
        and api_settings.URL_FORMAT_OVERRIDE not in request.query_params
    )


class ContentNegotiation(DefaultContentNegotiation):
    def select_renderer(self, request, renderers, format_suffix=None):
        if plainly_json(request, renderers, format_suffix):
            return renderers[0], JSON
        return super().select_renderer(request, renderers, format_suffix)

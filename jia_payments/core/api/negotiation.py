"""DRF's content negotiation, answering the common cases without parsing the Accept header.

Nearly every API call sends no Accept header, `*/*` or `application/json`; for those, with no
`?format=` and no format suffix, DRF's negotiation always picks the first renderer when it is the
JSON one, with `application/json` as the media type. That answer is given directly (DRF parses
the header into media types and ranks them on every request); anything else is DRF's own code.
"""

from rest_framework.negotiation import DefaultContentNegotiation

_PLAIN_ACCEPT = frozenset({None, "*/*", "application/json"})
_JSON = "application/json"


class ContentNegotiation(DefaultContentNegotiation):
    def select_renderer(self, request, renderers, format_suffix=None):
        if (
            not format_suffix
            and renderers
            and renderers[0].media_type == _JSON
            and request.META.get("HTTP_ACCEPT") in _PLAIN_ACCEPT
            and self.settings.URL_FORMAT_OVERRIDE not in request.query_params
        ):
            return renderers[0], _JSON
        return super().select_renderer(request, renderers, format_suffix)

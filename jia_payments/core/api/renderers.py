"""The API's renderers: JSON, and DRF's browsable API for a browser asking for text/html."""

from rest_framework import renderers


class BrowsableAPIRenderer(renderers.BrowsableAPIRenderer):
    """DRF's browsable API without its filter form: our list views read their filters from
    validated query parameters rather than a `queryset` attribute, and DRF building the form
    called `get_queryset()`, which made every list page a 500."""

    def get_filter_form(self, data, view, request):
        return None

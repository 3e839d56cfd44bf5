"""`?limit=&offset=` pagination: default 20, max 100; nonsense values are 400, never clamped."""

import re

from rest_framework import exceptions, pagination

from jia_payments.core.api.renderers import json_response

_WHOLE_NUMBER = re.compile(r"[0-9]{1,12}")
MAX_OFFSET = 10**9


def bounded_int_param(request, name: str, *, default: int, minimum: int, maximum: int) -> int:
    """A whole-number query parameter within [minimum, maximum], or 400 naming the parameter."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    value = int(raw) if _WHOLE_NUMBER.fullmatch(raw) else None
    if value is None or not minimum <= value <= maximum:
        raise exceptions.ValidationError({name: [f"Must be a whole number between {minimum} and {maximum}."]})
    return value


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    """The body is `{"count", "next", "previous", "results"}` (API.md "Lists")."""

    default_limit = 20
    max_limit = 100

    def paginate_queryset(self, queryset, request, view=None):
        """A page of `queryset`; of an object with `counted_page(limit=, offset=) -> (rows, count)`
        instead, that page (one query can read both)."""
        counted_page = getattr(queryset, "counted_page", None)
        if counted_page is None:
            return super().paginate_queryset(queryset, request, view)
        self.request = request
        self.limit = self.get_limit(request)
        self.offset = self.get_offset(request)
        rows, self.count = counted_page(limit=self.limit, offset=self.offset)
        if self.count > self.limit and self.template is not None:
            self.display_page_controls = True
        return rows

    def get_paginated_response(self, data):
        """DRF's answer, rendered by `json_response` (the same bytes, without DRF's renderer when
        they can be had so)."""
        envelope = {
            "count": self.count,
            "next": self.get_next_link(),
            "previous": self.get_previous_link(),
            "results": data,
        }
        return json_response(self.request, envelope)

    def get_limit(self, request):
        return bounded_int_param(
            request, self.limit_query_param, default=self.default_limit, minimum=1, maximum=self.max_limit
        )

    def get_offset(self, request):
        return bounded_int_param(request, self.offset_query_param, default=0, minimum=0, maximum=MAX_OFFSET)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        bounds = {
            self.limit_query_param: {"minimum": 1, "maximum": self.max_limit, "default": self.default_limit},
            self.offset_query_param: {"minimum": 0, "maximum": MAX_OFFSET, "default": 0},
        }
        for parameter in parameters:
            parameter["schema"].update(bounds.get(parameter["name"], {}))
        return parameters

from rest_framework import exceptions, pagination


def _bounded_int(request, name: str, *, default: int, minimum: int, maximum: int | None) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or (maximum is not None and int(raw) > maximum) or int(raw) < minimum:
        upper = f" and {maximum}" if maximum is not None else ""
        raise exceptions.ValidationError({name: [f"Must be a whole number between {minimum}{upper}."]})
    return int(raw)


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    """`?limit=&offset=`; default 20, max 100; nonsense values are 400, not silently clamped."""

    default_limit = 20
    max_limit = 100

    def get_limit(self, request):
        return _bounded_int(
            request, self.limit_query_param, default=self.default_limit, minimum=1, maximum=self.max_limit
        )

    def get_offset(self, request):
        return _bounded_int(request, self.offset_query_param, default=0, minimum=0, maximum=10**9)

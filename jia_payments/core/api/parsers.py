"""The API's one request parser: DRF's JSON parser with a bound on how deeply a body may nest.

No request of the API nests deeper than a few levels (metadata and usage_limits are small JSON
objects). Without a bound, a body of `[[[[...` deep enough makes Python's decoder raise
RecursionError, which would surface as a 500; past MAX_DEPTH the body is a 400 like any other
malformed JSON.
"""

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_DEPTH = 32


def nesting_depth(value) -> int:
    """How many containers deep `value` goes (a scalar is 0), without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


class BoundedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON parse error - nested deeper than {MAX_DEPTH} levels.") from None
        if nesting_depth(data) > MAX_DEPTH:
            raise ParseError(f"JSON parse error - nested deeper than {MAX_DEPTH} levels.")
        return data

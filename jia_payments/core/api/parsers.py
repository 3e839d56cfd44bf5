"""The API's one request parser: strict JSON that every layer behind it can take.

- Nesting is bounded: no request of the API nests deeper than a few levels (metadata and
  usage_limits are small JSON objects). Without a bound, a body of `[[[[...` deep enough makes
  Python's decoder raise RecursionError, which would surface as a 500.
- A key may appear once per object: with the last one winning, a proxy or a logger that reads the
  first value would see another request than the one served.
- No string (key or value) may hold an unpaired surrogate (`"\\ud800"`): JSON's escapes allow one,
  but it is no Unicode character, UTF-8 cannot encode it and PostgreSQL cannot store it, so it
  could only fail later, as a 500. (NUL, valid text that PostgreSQL cannot store either, is refused
  by the fields: jia_payments.core.api.validation.)
- NaN and Infinity are not JSON.

Each is a 400 like any other malformed body, before a view sees the data.
"""

import codecs
import json
import re

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser, get_encoding
from rest_framework.utils.json import strict_constant

MAX_DEPTH = 32
_SURROGATE = re.compile("[\ud800-\udfff]")


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


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise ValueError(f"the key {json.dumps(duplicate)} appears more than once in an object")
    return data


def has_text_matching(value, pattern: re.Pattern) -> bool:
    """Whether any string in `value` (keys included, at any depth) matches `pattern`."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if pattern.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


# One decoder for every body: `json.loads` with arguments builds a decoder and its scanner per call.
_DECODER = json.JSONDecoder(parse_constant=strict_constant, object_pairs_hook=_unique_keys)


def _decoded(text: str):
    """`json.loads(text, parse_constant=strict_constant, object_pairs_hook=_unique_keys)`."""
    if text.startswith("\ufeff"):
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    return _DECODER.decode(text)


class BoundedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = get_encoding(parser_context or {})
        try:
            text = codecs.getreader(encoding)(stream).read()
            data = _decoded(text)
        except RecursionError:
            raise ParseError(f"JSON parse error - nested deeper than {MAX_DEPTH} levels.") from None
        except ValueError as error:  # also UnicodeDecodeError: not text in the declared encoding
            raise ParseError(f"JSON parse error - {error}") from None
        # The walks only for a text that could fail them: each container opens with a bracket,
        # and a surrogate the decoding let through, or one made by a `\u` escape, is in the text.
        if text.count("[") + text.count("{") > MAX_DEPTH and nesting_depth(data) > MAX_DEPTH:
            raise ParseError(f"JSON parse error - nested deeper than {MAX_DEPTH} levels.")
        if (_SURROGATE.search(text) or "\\u" in text) and has_text_matching(data, _SURROGATE):
            raise ParseError("JSON parse error - a string holds an unpaired surrogate (\\ud800-\\udfff).")
        return data

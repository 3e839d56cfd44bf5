"""A hot view's answer rendered directly (`json_response`) is DRF's answer, byte for byte."""

import pytest
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from jia_payments.core.api.renderers import json_response, renders_as_drf

ANSWERS = [
    {"user_id": "u1", "has_access": True, "expires_at": None, "usage_limits": {}, "source": None},
    {"limits": {"max_items": 100, "storage": None, "sync": True}, "codes": ["a", "b"], "n": -3},
    {"text": 'h\u00e9llo \u2028 line \u2029 para \U0001f600 "quoted" \\ \n\t\x01'},
    {"ratio": 0.1, "tiny": 1e-05, "big": 1e16},  # floats: DRF's encoder, not orjson
    {"huge": 2**70, "negative": -(2**64)},  # past 64 bits: DRF's encoder
    {1: "an int key"},
    [1, 2, {"nested": [{"deeper": "x"}]}],
]


class Echo(APIView):
    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes: list = []
    data = None
    direct = True

    def get(self, request):
        return json_response(request, self.data) if self.direct else Response(self.data)


def _served(data, direct: bool, **headers):
    view = Echo.as_view(data=data, direct=direct)
    response = view(APIRequestFactory().get("/echo/", **headers))
    response.render() if hasattr(response, "render") else None
    return response


@pytest.mark.parametrize("data", ANSWERS)
@pytest.mark.parametrize("accept", [None, "*/*", "application/json", "application/json; indent=2"])
def test_the_bytes_and_headers_are_drfs(data, accept):
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    direct, drf = _served(data, True, **headers), _served(data, False, **headers)
    assert direct.status_code == drf.status_code == 200
    assert direct.content == drf.content
    assert direct["Content-Type"] == drf["Content-Type"]
    assert direct.charset == drf.charset
    assert direct.get("Vary") == drf.get("Vary") and direct.get("Allow") == drf.get("Allow")
    if accept is None:
        assert direct.content == JSONRenderer().render(data)


@pytest.mark.parametrize("data", ANSWERS[:3])
def test_plain_answers_skip_drfs_renderer(data):
    assert not isinstance(_served(data, True), Response)


def test_a_browser_still_gets_drfs_browsable_page():
    response = _served(ANSWERS[0], True, HTTP_ACCEPT="text/html")
    assert isinstance(response, Response) and response["Content-Type"].startswith("text/html")


class StrKey(str):
    pass


class IntValue(int):
    pass


# Each with renders_as_drf's verdict: only JSON's own types, exactly as DRF writes them.
VERDICTS = [
    ({"a": 1, "b": "x", "c": True, "d": None, "e": [1, "y", False]}, True),
    ({"nested": {"deeper": [{"deepest": {}}, []]}}, True),
    ({"text": "\u2028 and \u2029"}, True),  # escaped after orjson, as DRF does
    ({"big": 2**70}, True),  # orjson refuses it, json_response falls back then
    ("a string", True),
    (None, True),
    ([], True),
    ({"ratio": 0.5}, False),
    ({"deep": [{"ratio": 1e-05}]}, False),
    ([1, 2, 3.0], False),
    ({1: "an int key"}, False),
    ({"outer": {None: "a None key"}}, False),
    ({StrKey("k"): 1}, False),  # a key must be exactly a str
    ({"v": StrKey("a str subclass")}, True),  # a value may be one (isinstance)
    ({"v": IntValue(3)}, True),
    ({"tuple": (1, 2)}, False),
    ({"set": {1}}, False),
    ({"bytes": b"x"}, False),
    (1.5, False),
    ([{"ok": 1}, {"ok": [None, {"bad": object()}]}], False),
]


@pytest.mark.parametrize(("data", "verdict"), VERDICTS)
def test_which_answers_render_as_drf(data, verdict):
    assert renders_as_drf(data) is verdict

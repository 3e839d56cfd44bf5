"""The content negotiation's shortcut picks what DRF's own negotiation picks, for every Accept."""

import pytest
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.test import APIRequestFactory

from jia_payments.core.api.negotiation import ContentNegotiation

ACCEPTS = [
    None,
    "*/*",
    "application/json",
    "",
    "text/html",
    "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "application/json; indent=4",
    "application/json;q=0.5, text/html",
    "application/problem+json",
    "application/*",
    "image/png",
]


def _choice(negotiation, accept, query, suffix):
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    request = Request(APIRequestFactory().get("/api/v1/entitlements/check/" + query, **headers))
    renderers = [renderer() for renderer in api_settings.DEFAULT_RENDERER_CLASSES]
    try:
        renderer, media_type = negotiation.select_renderer(request, renderers, suffix)
    except NotAcceptable:
        return "406"
    return type(renderer), media_type


@pytest.mark.parametrize("accept", ACCEPTS)
@pytest.mark.parametrize("query", ["", "?feature_code=x", "?format=json", "?format=api", "?format="])
@pytest.mark.parametrize("suffix", [None, "json", "api"])
def test_same_renderer_and_media_type_as_drf(accept, query, suffix):
    ours = _choice(ContentNegotiation(), accept, query, suffix)
    assert ours == _choice(DefaultContentNegotiation(), accept, query, suffix)


def test_the_api_uses_it():
    assert api_settings.DEFAULT_CONTENT_NEGOTIATION_CLASS is ContentNegotiation

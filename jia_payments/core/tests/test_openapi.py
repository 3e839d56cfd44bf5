"""The OpenAPI schema validates, documents auth, errors and Idempotency-Key; Swagger UI needs no CDN."""

import re

import pytest
import yaml
from django.contrib.staticfiles import finders
from django.core.management import call_command

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    from drf_spectacular.generators import SchemaGenerator

    with django_db_blocker.unblock():
        return SchemaGenerator().get_schema(request=None, public=True)


def test_manage_spectacular_validate_is_clean(tmp_path, capsys):
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    assert "Warning" not in capsys.readouterr().err
    document = yaml.safe_load(target.read_text())
    assert document["openapi"] == "3.1.0"


def test_schema_is_served(anon_client):
    response = anon_client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    assert response.json()["info"]["title"] == "jia-payments API"


def test_auth_headers_are_documented(schema):
    schemes = schema["components"]["securitySchemes"]
    assert schemes["betterAuthToken"] == {
        "type": "apiKey",
        "in": "header",
        "name": "better-auth-token",
        "description": schemes["betterAuthToken"]["description"],
    }
    assert schemes["bearerAuth"]["scheme"] == "bearer"
    assert schema["paths"]["/api/v1/payments/"]["post"]["security"] == [
        {"betterAuthToken": []},
        {"bearerAuth": []},
        {"staffSession": []},
    ]
    assert {} in schema["paths"]["/api/v1/plans/"]["get"]["security"]  # public: no token needed


def _operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_every_operation_documents_its_errors_with_examples(schema):
    operations = list(_operations(schema))
    assert len(operations) >= 12
    for path, method, operation in operations:
        responses = operation["responses"]
        for status in ("401", "429", "500"):
            assert status in responses, (path, method, status)
        for status, response in responses.items():
            if status.startswith(("4", "5")):
                content = response["content"][PROBLEM]
                assert content["schema"] == {"$ref": "#/components/schemas/Problem"}
                (example,) = content["examples"].values()
                assert example["value"]["status"] == int(status), (path, method, status)
        if "{" in path:
            assert "404" in responses, (path, method)
        if method in ("post", "put"):
            assert {"400", "413", "415"} <= set(responses), (path, method)


def test_creates_document_idempotency_key(schema):
    for path in ("/api/v1/payments/", "/api/v1/pricing-zones/bulk-upsert/"):
        operation = schema["paths"][path]["post"]
        names = [parameter["name"] for parameter in operation["parameters"]]
        assert "Idempotency-Key" in names
        assert {"409", "422"} <= set(operation["responses"])
        (example,) = operation["responses"]["422"]["content"][PROBLEM]["examples"].values()
        assert example["value"]["code"] == "idempotency_key_reused"


def test_state_machine_conflict_is_documented(schema):
    response = schema["paths"]["/api/v1/payments/{payment_id}/status/"]["post"]["responses"]["409"]
    (example,) = response["content"][PROBLEM]["examples"].values()
    assert example["value"]["code"] == "invalid_transition"


def test_swagger_ui_is_served_from_the_installed_package(anon_client):
    response = anon_client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any("swagger-ui-bundle.js" in asset for asset in assets)
    for asset in assets:
        assert asset.startswith("/static/drf_spectacular_sidecar/"), asset
        assert finders.find(asset.removeprefix("/static/")), asset
    # Nothing is fetched from another host (a CDN): no absolute or protocol-relative URL at all.
    assert not re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html, re.IGNORECASE)


def test_pricing_zone_writes_document_their_reason(schema):
    zone = schema["paths"]["/api/v1/pricing-zones/{iso_code}/"]
    components = schema["components"]["schemas"]
    assert all("reason" in shape["properties"] for shape in components["PricingZonePutRequest"]["anyOf"])
    assert "reason" in [parameter["name"] for parameter in zone["delete"]["parameters"]]
    bulk = schema["paths"]["/api/v1/pricing-zones/bulk-upsert/"]["post"]["requestBody"]
    assert "reason" in components["PricingZoneBulkRequest"]["properties"]
    body = bulk["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    shapes = str(components[body])
    assert "PricingZoneBulkRequest" in shapes and "PricingZoneBulkItemRequest" in shapes  # or a bare list

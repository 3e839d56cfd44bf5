"""OpenAPI (drf-spectacular): the auth schemes, the Idempotency-Key header and every error response.

`AutoSchema` (REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]) adds to each operation the problem-details
responses it can give, each with an example, unless the view documents that status itself:
400 (bodies and query parameters), 401, 403 (unless public), 404 (paths with an id), 413 and 415
(bodies), 409 and 422 (Idempotency-Key), 414 and 431 (request line or headers over the server's
limits), 429, 500 and 503 (the database unreachable). Views add the statuses only they know
(409 `invalid_transition`, `plan_full`) with `extend_schema(responses={409: problem_response(...)})`,
naming the error class, which gives the code and title.

The schema says what the server accepts, so that a 400 always means "the schema forbids this":
request bodies of a `StrictSerializer` have `additionalProperties: false` (unknown fields are
refused), every `StrictCharField` publishes its `schema_pattern` (NUL refused, feature codes,
country and currency codes), and `Idempotency-Key` is the `IdempotencyKey` component (the rule
`idempotency.py` checks). A request the schema allows may still be 404, 409 or 422 (what it names
does not exist or does not fit the data), never 400.
"""

import re
from decimal import Decimal

from drf_spectacular.extensions import (
    OpenApiAuthenticationExtension,
    OpenApiSerializerExtension,
    OpenApiSerializerFieldExtension,
)
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
)
from rest_framework import exceptions as drf
from rest_framework import serializers
from rest_framework.permissions import AllowAny

from jia_payments.core.api.errors import (
    PROBLEM_CONTENT_TYPE,
    SERVER_ERROR_DETAIL,
    DomainError,
    IdempotencyKeyInProgress,
    IdempotencyKeyReused,
    NotFound,
    PayloadTooLarge,
    ServerError,
    ServiceUnavailable,
    code_for,
    identity_of,
    problem,
    problem_of,
    title_for,
)
from jia_payments.core.api.idempotency import HEADER as IDEMPOTENCY_HEADER
from jia_payments.core.api.idempotency import KEY_PATTERN as IDEMPOTENCY_KEY_PATTERN
from jia_payments.core.api.validation import multiplier_forms


class ProblemSerializer(serializers.Serializer):
    """RFC 9457 problem details: the body of every error."""

    type = serializers.URLField(help_text="A URL naming the problem type")
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. invalid, not_found")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text='Validation errors by field: {"amount": ["..."]}',
    )


_EXAMPLES = {
    400: problem_of(DomainError, "The request has invalid fields.", {"amount": ["Must be at least 1."]}),
    401: problem_of(drf.NotAuthenticated, "Authentication credentials were not provided."),
    403: problem_of(drf.PermissionDenied, "You do not have permission to perform this action."),
    404: problem_of(NotFound, "No such resource."),
    409: problem_of(
        IdempotencyKeyInProgress, "A request with this Idempotency-Key is still in progress; retry later."
    ),
    413: problem_of(PayloadTooLarge, "The request body is larger than the server accepts."),
    414: problem(414, code_for(414), title_for(414), "The request line is longer than the server accepts."),
    415: problem_of(drf.UnsupportedMediaType, 'Unsupported media type "text/plain".'),
    422: problem_of(
        IdempotencyKeyReused,
        "This Idempotency-Key was used with a different request; use a new key for a new request.",
    ),
    429: problem_of(drf.Throttled, "Request was throttled. Expected available in 3 seconds."),
    431: problem(431, code_for(431), title_for(431), "A header line is longer than the server accepts."),
    500: problem_of(ServerError, SERVER_ERROR_DETAIL),
    503: problem_of(ServiceUnavailable, "The database is unavailable; try again shortly."),
}


def problem_response(error: type[Exception], detail: str, description: str = "") -> OpenApiResponse:
    """A documented error response of an error class (its code and title), with an example, for
    `extend_schema(responses=...)`."""
    _, code, title = identity_of(error)
    return OpenApiResponse(
        response=ProblemSerializer,
        description=description or title,
        examples=[OpenApiExample(code, value=problem_of(error, detail), response_only=True)],
    )


IDEMPOTENCY_KEY_COMPONENT = "IdempotencyKey"
IDEMPOTENCY_KEY_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": 255,
    "pattern": IDEMPOTENCY_KEY_PATTERN,
    "description": "1 to 255 printable ASCII characters, no leading or trailing space",
}
IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    type={"$ref": f"#/components/schemas/{IDEMPOTENCY_KEY_COMPONENT}"},
    location=OpenApiParameter.HEADER,
    required=False,
    description="Up to 255 printable ASCII characters. The same key with the same body replays the first "
    "answer (header `Idempotent-Replayed: true`); with another body it is 422 `idempotency_key_reused`. "
    "Keys are kept 24 hours, per caller.",
)


class AutoSchema(SpectacularAutoSchema):
    def _handler(self):
        return getattr(self.view, self.method.lower(), None)

    def _is_idempotent(self) -> bool:
        return bool(getattr(self._handler(), "idempotent", False))

    def _is_public(self) -> bool:
        return all(isinstance(permission, AllowAny) for permission in self.view.get_permissions())

    def _unwrap_list_serializer(self, serializer, direction):
        """A list body (or a list in a body) with the list's bounds (allow_empty, max_length)."""
        schema = super()._unwrap_list_serializer(serializer, direction)
        if direction == "request" and isinstance(serializer, serializers.ListSerializer) and schema:
            schema.update(_list_bounds(serializer))
        return schema

    def _get_request_for_media_type(self, serializer, direction="request"):
        schema, required = super()._get_request_for_media_type(serializer, direction)
        # a body of one of several shapes (PolymorphicProxySerializer) is a body all the same
        return schema, required or isinstance(serializer, PolymorphicProxySerializer)

    def get_tags(self):
        """One tag per app (payments, pricing, entitlements, ...), not the URL prefix "v1"."""
        return [self.view.__module__.split(".")[0]]

    def get_override_parameters(self):
        parameters = super().get_override_parameters()
        if self._is_idempotent():
            parameters = [*parameters, IDEMPOTENCY_KEY_PARAMETER]
        return parameters

    def _error_statuses(self, operation: dict) -> list[int]:
        has_body = self.method in ("POST", "PUT", "PATCH")
        has_query = any(p.get("in") == "query" for p in operation.get("parameters", []))
        statuses = [401, 414, 429, 431, 500, 503]
        if has_body or has_query:
            statuses.append(400)
        if not self._is_public():
            statuses.append(403)
        if "{" in self.path:
            statuses.append(404)
        if has_body:
            statuses += [413, 415]
        if self._is_idempotent():
            statuses += [409, 422]
        return sorted(statuses)

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        problem_ref = self.resolve_serializer(ProblemSerializer, "response").ref
        if self._is_idempotent():
            registry.register_on_missing(
                ResolvedComponent(
                    name=IDEMPOTENCY_KEY_COMPONENT,
                    type=ResolvedComponent.SCHEMA,
                    object=IDEMPOTENCY_KEY_COMPONENT,
                    schema=IDEMPOTENCY_KEY_SCHEMA,
                )
            )
        responses = operation.setdefault("responses", {})
        for status in self._error_statuses(operation):
            example = _EXAMPLES[status]
            responses.setdefault(
                str(status),
                {
                    "description": example["title"],
                    "content": {
                        PROBLEM_CONTENT_TYPE: {
                            "schema": problem_ref,
                            "examples": {example["code"]: {"value": example}},
                        }
                    },
                },
            )
        for status, response in responses.items():
            # error bodies are application/problem+json, whatever the view's renderers say
            if status.startswith(("4", "5")) and "content" in response:
                content = response["content"]
                if PROBLEM_CONTENT_TYPE not in content:
                    response["content"] = {PROBLEM_CONTENT_TYPE: next(iter(content.values()))}
        return operation


class StrictCharFieldSchema(OpenApiSerializerFieldExtension):
    """A StrictCharField's schema with the pattern the field checks."""

    target_class = "jia_payments.core.api.validation.StrictCharField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        if self.target.schema_pattern and "enum" not in schema:
            schema["pattern"] = self.target.schema_pattern
        return schema


class JSONObjectFieldSchema(OpenApiSerializerFieldExtension):
    target_class = "jia_payments.core.api.validation.JSONObjectField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        schema = {
            "type": "object",
            "additionalProperties": True,
            "description": f"A JSON object of at most {self.target.max_bytes} bytes, without NUL characters",
        }
        if self.target.help_text:
            schema["description"] = f"{self.target.help_text}. {schema['description']}"
        return schema


class MultiplierFieldSchema(OpenApiSerializerFieldExtension):
    """A multiplier in the configured range (PRICING_MULTIPLIER_MIN/MAX), as text ("0.70", "0.7")
    or a JSON number, at most two decimals: each value it may take, listed."""

    target_class = "jia_payments.core.api.validation.MultiplierField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        from django.conf import settings

        low = Decimal(getattr(settings, "PRICING_MULTIPLIER_MIN", "0.00"))
        high = Decimal(getattr(settings, "PRICING_MULTIPLIER_MAX", "9.99"))
        description = f"{low} to {high}, at most two decimals"
        if direction == "response":
            return {"type": "string", "format": "decimal", "example": "0.70", "description": description}
        forms = multiplier_forms(low, high)
        numbers = sorted({float(form) for form in forms})
        return {
            "anyOf": [{"type": "string", "enum": forms}, {"type": "number", "enum": numbers}],
            "description": f'{description}: "0.70" (or the number 0.7)',
        }


class StrictSerializerSchema(OpenApiSerializerExtension):
    """A StrictSerializer refuses fields it does not declare: `additionalProperties: false` (the
    fields of the resource's representation it takes back unchanged are declared, and ignored).
    Rules between fields (`schema_variants`: one of these must hold) are its `anyOf`."""

    target_class = "jia_payments.core.api.validation.StrictSerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_basic_serializer(self.target, direction)
        for name, field in self.target.fields.items():
            if isinstance(field, serializers.ListSerializer) and name in schema.get("properties", {}):
                schema["properties"][name].update(_list_bounds(field))
        if direction == "request":
            properties = schema.setdefault("properties", {})
            for name in sorted(self.target.echoed_fields):
                properties.setdefault(name, {"description": "Accepted and ignored (read-only)"})
            schema["additionalProperties"] = False
            if self.target.schema_variants:
                return {
                    "type": "object",
                    "description": schema.get("description", ""),
                    "required": schema.get("required", []),
                    "anyOf": [_with_variant(schema, variant) for variant in self.target.schema_variants],
                    "additionalProperties": True,  # the branches refuse unknown fields
                }
        return schema


def _list_bounds(field: serializers.ListSerializer) -> dict:
    bounds = {} if field.allow_empty else {"minItems": 1}
    if field.max_length is not None:
        bounds["maxItems"] = field.max_length
    return bounds


def _with_variant(schema: dict, variant: dict) -> dict:
    """The whole object schema with one variant's constraints merged into its properties."""
    merged = {key: value for key, value in schema.items() if key != "description"}
    merged["properties"] = {
        name: {**field, **variant.get("properties", {}).get(name, {})}
        for name, field in schema.get("properties", {}).items()
    }
    merged["required"] = sorted({*schema.get("required", []), *variant.get("required", [])})
    return merged


def add_links(result, generator, request, public):
    """POSTPROCESSING_HOOKS: OpenAPI links from each create (a POST answering 201) to the
    operations under the created thing's path, so a client (or schemathesis' stateful phase)
    knows where the new id goes: a path parameter the create's path has comes from its request,
    another from the answer's field of that name, else its `id`."""
    paths = result.get("paths", {})
    schemas = result.get("components", {}).get("schemas", {})
    for path, item in paths.items():
        created = item.get("post", {}).get("responses", {}).get("201")
        if not created:
            continue
        ref = created.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref", "")
        fields = schemas.get(ref.rsplit("/", 1)[-1], {}).get("properties", {})
        links = {}
        for target, operations in paths.items():
            if not (target.startswith(path) and target[len(path) : len(path) + 1] == "{"):
                continue
            parameters = {}
            for name in re.findall(r"{(\w+)}", target):
                if f"{{{name}}}" in path:
                    parameters[name] = f"$request.path.{name}"
                else:
                    parameters[name] = f"$response.body#/{name if name in fields else 'id'}"
            for operation in operations.values():
                links[operation["operationId"]] = {
                    "operationId": operation["operationId"],
                    "parameters": parameters,
                }
        if links:
            created["links"] = links
    return result


class BetterAuthTokenScheme(OpenApiAuthenticationExtension):
    target_class = "jia_payments.core.api.auth.BetterAuthTokenAuthentication"
    name = ["betterAuthToken", "bearerAuth"]

    def get_security_requirement(self, auto_schema):
        return [{"betterAuthToken": []}, {"bearerAuth": []}]  # either header

    def get_security_definition(self, auto_schema):
        return [
            {
                "type": "apiKey",
                "in": "header",
                "name": "better-auth-token",
                "description": "A Better Auth JWT (EdDSA by default). Claim `sub` is the user id; "
                '`role: "service"` is a backend service, `role: "admin"` is staff.',
            },
            {"type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "The same token."},
        ]


class StaffSessionScheme(OpenApiAuthenticationExtension):
    target_class = "jia_payments.core.api.auth.StaffSessionAuthentication"
    name = "staffSession"

    def get_security_definition(self, auto_schema):
        from django.conf import settings

        return {
            "type": "apiKey",
            "in": "cookie",
            "name": settings.SESSION_COOKIE_NAME,
            "description": "A logged-in Django staff user (admin); unsafe methods need the CSRF token.",
        }

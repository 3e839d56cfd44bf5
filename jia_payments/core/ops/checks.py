"""System checks of the core configuration (run by every manage.py command and at start-up)."""

from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from django.conf import settings
from django.core import checks

from jia_payments.core.api.auth import ASYMMETRIC_ALGORITHMS, _verification_keys

_ALGORITHMS_BY_KEY_TYPE = (
    ((ed25519.Ed25519PublicKey, ed448.Ed448PublicKey), {"EdDSA", "Ed25519"}),
    ((rsa.RSAPublicKey,), {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}),
    ((ec.EllipticCurvePublicKey,), {"ES256", "ES384", "ES512"}),
)


def _algorithms_for(key) -> set[str]:
    key = getattr(key, "key", key)  # a PyJWK wraps the cryptography key
    return next((names for types, names in _ALGORITHMS_BY_KEY_TYPE if isinstance(key, types)), set())


@checks.register(checks.Tags.security)
def check_token_verification(app_configs, **kwargs):
    """Only public-key algorithms verify tokens, and the configured key must load and fit them."""
    refused = [name for name in settings.AUTH_JWT_ALGORITHMS if name not in ASYMMETRIC_ALGORITHMS]
    if refused:
        return [
            checks.Error(
                f"AUTH_JWT_ALGORITHMS contains {', '.join(refused)}: only public-key algorithms "
                f"({', '.join(sorted(ASYMMETRIC_ALGORITHMS))}) may verify API tokens.",
                id="core.E001",
            )
        ]
    if not settings.AUTH_JWT_ALGORITHMS:
        return [checks.Error("AUTH_JWT_ALGORITHMS is empty.", id="core.E002")]
    if not (settings.AUTH_PUBLIC_KEY_PEM or settings.AUTH_JWKS_PATH) and not settings.DEBUG:
        return [
            checks.Error(
                "No token verification key: set AUTH_PUBLIC_KEY_PEM (the issuer's public key, PEM) "
                "or AUTH_JWKS_PATH (a JWKS file). Without one every API token is refused (401).",
                id="core.E005",
            )
        ]
    try:
        keys = _verification_keys()
    except Exception as error:  # noqa: BLE001 (any failure to load is reported, not raised)
        source = "AUTH_PUBLIC_KEY_PEM" if settings.AUTH_PUBLIC_KEY_PEM else "AUTH_JWKS_PATH"
        return [checks.Error(f"{source} cannot be loaded as a public key: {error}", id="core.E003")]
    configured = set(settings.AUTH_JWT_ALGORITHMS)
    unusable = [
        kid or "AUTH_PUBLIC_KEY_PEM" for kid, key in keys.items() if not _algorithms_for(key) & configured
    ]
    if unusable:
        return [
            checks.Error(
                f"No algorithm of AUTH_JWT_ALGORITHMS ({', '.join(sorted(configured))}) fits the key(s) "
                f"{', '.join(map(str, unusable))}: every token would be refused.",
                id="core.E004",
            )
        ]
    return []

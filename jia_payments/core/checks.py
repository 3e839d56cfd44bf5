"""System checks of the core configuration (run by every manage.py command and at start-up)."""

from django.conf import settings
from django.core import checks

from jia_payments.core.auth import ASYMMETRIC_ALGORITHMS


@checks.register(checks.Tags.security)
def check_token_algorithms(app_configs, **kwargs):
    """Only public-key algorithms may verify tokens: an HMAC or `none` entry is refused."""
    refused = [name for name in settings.AUTH_JWT_ALGORITHMS if name not in ASYMMETRIC_ALGORITHMS]
    errors = []
    if refused:
        errors.append(
            checks.Error(
                f"AUTH_JWT_ALGORITHMS contains {', '.join(refused)}: only public-key algorithms "
                f"({', '.join(sorted(ASYMMETRIC_ALGORITHMS))}) may verify API tokens.",
                id="core.E001",
            )
        )
    if not settings.AUTH_JWT_ALGORITHMS:
        errors.append(checks.Error("AUTH_JWT_ALGORITHMS is empty.", id="core.E002"))
    return errors

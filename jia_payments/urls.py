from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from jia_payments.core.ops import health, metrics
from payments.stripe.webhooks import StripeWebhookView

# Most requests first: Django tries the patterns in order, and every include passed on costs its
# whole list of tried patterns. The apps' paths do not overlap, so the order changes no match.
api_v1 = [
    path("", include("entitlements.urls")),
    path("", include("payments.urls")),
    path("", include("pricing.urls")),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    # dj-stripe's webhook view, stricter about timestamps (payments/stripe/webhooks.py); same URL and name
    path("stripe/webhook/<uuid:uuid>/", StripeWebhookView.as_view(), name="stripe-webhook"),
    path("stripe/", include("djstripe.urls", namespace="djstripe")),
]

# Operations: probes are answered by jia_payments.core.ops.health.ProbeMiddleware before
# these routes; the routes keep them reversible and visible in one place.
urlpatterns += [
    path("healthz", health.liveness, name="healthz"),
    path("readyz", health.readiness, name="readyz"),
    # answered by jia_payments.core.ops.health.ProbeMiddleware first (token, no host check)
    path("metrics", metrics.metrics_view, name="prometheus-metrics"),
]

handler400 = "jia_payments.core.api.errors.bad_request_view"
handler403 = "backoffice.errors.permission_denied_view"
handler404 = "jia_payments.core.api.errors.not_found_view"
handler500 = "jia_payments.core.api.errors.server_error_view"

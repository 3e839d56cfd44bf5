from django.urls import path, re_path

from pricing import api

urlpatterns = [
    path("plans/", api.PlanListView.as_view(), name="plan-list"),
    path("plans/<slug:plan_id>/", api.PlanDetailView.as_view(), name="plan-detail"),
    path("prices/", api.PriceListView.as_view(), name="price-list"),
    path("pricing-zones/", api.PricingZoneListView.as_view(), name="pricing-zone-list"),
    path(
        "pricing-zones/bulk-upsert/", api.PricingZoneBulkUpsertView.as_view(), name="pricing-zone-bulk-upsert"
    ),
    re_path(
        r"^pricing-zones/(?P<iso_code>[A-Za-z]{2})/$",
        api.PricingZoneDetailView.as_view(),
        name="pricing-zone-detail",
    ),
]

from django.conf import settings
from django.urls import path

from entitlements import api, grants_api

urlpatterns = [
    path("entitlements/check/", api.EntitlementCheckView.as_view(), name="entitlements-check"),
    path("entitlements/", api.EntitlementListView.as_view(), name="entitlements"),
    path("entitlements/grants/", grants_api.PlanGrantListView.as_view(), name="entitlement-grants"),
    path("entitlements/grants/<str:grant_id>/", grants_api.PlanGrantView.as_view(), name="entitlement-grant"),
    path(
        "entitlements/<str:entitlement_id>/status/",
        api.EntitlementStatusView.as_view(),
        name="entitlement-status",
    ),
    path(
        "entitlements/<str:entitlement_id>/expiry/",
        api.EntitlementExpiryView.as_view(),
        name="entitlement-expiry",
    ),
    path("families/<str:family_id>/members/", api.FamilyMembersView.as_view(), name="family-members"),
    path(
        "families/<str:family_id>/members/<str:user_id>/",
        api.FamilyMemberView.as_view(),
        name="family-member",
    ),
]

if settings.BENCH_ENDPOINTS:  # `make bench` only: the framework's ceiling, same auth
    urlpatterns.append(path("_bench/constant/", api.BenchConstantView.as_view(), name="bench-constant"))

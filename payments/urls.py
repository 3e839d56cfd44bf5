from django.urls import path

from payments import api, checkout_api, subscriptions_api

urlpatterns = [
    path("payments/", api.PaymentListCreateView.as_view(), name="payment-list"),
    path("payments/<uuid:payment_id>/", api.PaymentDetailView.as_view(), name="payment-detail"),
    path("payments/<uuid:payment_id>/status/", api.PaymentStatusView.as_view(), name="payment-status"),
    path(
        "payments/<uuid:payment_id>/refund/", checkout_api.PaymentRefundView.as_view(), name="payment-refund"
    ),
    path("checkout/sessions/", checkout_api.CheckoutSessionListView.as_view(), name="checkout-session-list"),
    path(
        "checkout/sessions/<uuid:pk>/",
        checkout_api.CheckoutSessionDetailView.as_view(),
        name="checkout-session-detail",
    ),
    path("subscriptions/", subscriptions_api.SubscriptionListView.as_view(), name="subscription-list"),
    path(
        "subscriptions/<str:subscription_id>/",
        subscriptions_api.SubscriptionDetailView.as_view(),
        name="subscription-detail",
    ),
    path(
        "subscriptions/<str:subscription_id>/change/",
        subscriptions_api.SubscriptionChangeView.as_view(),
        name="subscription-change",
    ),
    path(
        "subscriptions/<str:subscription_id>/cancel/",
        subscriptions_api.SubscriptionCancelView.as_view(),
        name="subscription-cancel",
    ),
    path(
        "subscriptions/<str:subscription_id>/resume/",
        subscriptions_api.SubscriptionResumeView.as_view(),
        name="subscription-resume",
    ),
    path(
        "billing-portal/sessions/",
        subscriptions_api.BillingPortalSessionView.as_view(),
        name="billing-portal",
    ),
]

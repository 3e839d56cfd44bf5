from django.urls import path

from payments.api import checkout, payments, refunds, subscriptions

urlpatterns = [
    path("payments/", payments.PaymentListCreateView.as_view(), name="payment-list"),
    path("payments/<uuid:payment_id>/", payments.PaymentDetailView.as_view(), name="payment-detail"),
    path("payments/<uuid:payment_id>/status/", payments.PaymentStatusView.as_view(), name="payment-status"),
    path("payments/<uuid:payment_id>/refund/", refunds.PaymentRefundView.as_view(), name="payment-refund"),
    path("checkout/sessions/", checkout.CheckoutSessionListView.as_view(), name="checkout-session-list"),
    path(
        "checkout/sessions/<uuid:pk>/",
        checkout.CheckoutSessionDetailView.as_view(),
        name="checkout-session-detail",
    ),
    path("subscriptions/", subscriptions.SubscriptionListView.as_view(), name="subscription-list"),
    path(
        "subscriptions/<str:subscription_id>/",
        subscriptions.SubscriptionDetailView.as_view(),
        name="subscription-detail",
    ),
    path(
        "subscriptions/<str:subscription_id>/change/",
        subscriptions.SubscriptionChangeView.as_view(),
        name="subscription-change",
    ),
    path(
        "subscriptions/<str:subscription_id>/cancel/",
        subscriptions.SubscriptionCancelView.as_view(),
        name="subscription-cancel",
    ),
    path(
        "subscriptions/<str:subscription_id>/resume/",
        subscriptions.SubscriptionResumeView.as_view(),
        name="subscription-resume",
    ),
    path(
        "billing-portal/sessions/",
        subscriptions.BillingPortalSessionView.as_view(),
        name="billing-portal",
    ),
]

from django.urls import path

from payments import api, checkout_api

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
]

from django.urls import path

from payments.api import checkout, payments, refunds

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
]

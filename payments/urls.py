from django.urls import path

from payments.checkout_api import CheckoutSessionDetailView, CheckoutSessionListView, PaymentRefundView

urlpatterns: list = [
    path("checkout/sessions/", CheckoutSessionListView.as_view(), name="checkout-session-list"),
    path("checkout/sessions/<uuid:pk>/", CheckoutSessionDetailView.as_view(), name="checkout-session-detail"),
    path("payments/<uuid:pk>/refund/", PaymentRefundView.as_view(), name="payment-refund"),
]

from django.urls import path

from payments import api

urlpatterns = [
    path("payments/", api.PaymentListCreateView.as_view(), name="payment-list"),
    path("payments/<uuid:payment_id>/", api.PaymentDetailView.as_view(), name="payment-detail"),
    path("payments/<uuid:payment_id>/status/", api.PaymentStatusView.as_view(), name="payment-status"),
]

"""The old service's grpcurl examples, run as its users ran them, against a live `grpcserver`."""

import json

from django.core.management import call_command

from payments.models import Payment
from payments.tests.payloads import GOOD


def answer(result) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_old_examples_with_grpcurl(grpcserver_process, token_issuer):
    server = grpcserver_process
    customer = token_issuer.token("customer_123")
    service = token_issuer.token("svc_family_app", role="service")
    assert server.grpcurl("list").stdout.split() == [
        "entitlement.v1.EntitlementService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "payment.v1.PaymentService",
        "pricing.v1.PricingService",
    ]
    assert answer(server.grpcurl("grpc.health.v1.Health/Check")) == {"status": "SERVING"}

    created = answer(server.grpcurl("payment.v1.PaymentService/CreatePayment", token=customer, data=GOOD))
    payment = Payment.objects.get()
    assert created == {
        "payment": {
            **GOOD,
            "amount": "1999",  # int64 in protobuf's JSON mapping
            "id": str(payment.id),
            "status": "pending",
            "external_payment_id": payment.external_payment_id,
            "metadata": {},
            "created_at": created["payment"]["created_at"],
            "updated_at": created["payment"]["updated_at"],
        }
    }
    assert payment.external_payment_id.startswith("pi_")  # charged through (fake) Stripe
    got = answer(
        server.grpcurl("payment.v1.PaymentService/GetPayment", token=customer, data={"id": str(payment.id)})
    )
    assert got == created
    by_customer = answer(
        server.grpcurl(
            "payment.v1.PaymentService/GetPaymentsByCustomer",
            token=customer,
            data={"customer_id": "customer_123", "limit": 10, "offset": 0},
        )
    )
    assert by_customer == {"payments": [created["payment"]], "total": "1"}
    listed = answer(
        server.grpcurl(
            "payment.v1.PaymentService/ListPayments", token=service, data={"limit": 10, "offset": 0}
        )
    )
    assert listed == by_customer
    moved = answer(
        server.grpcurl(
            "payment.v1.PaymentService/UpdatePaymentStatus",
            token=service,
            data={"id": str(payment.id), "status": "completed"},
        )
    )
    assert (moved["success"], moved["payment"]["status"]) == (True, "completed")
    refused = server.grpcurl(
        "payment.v1.PaymentService/UpdatePaymentStatus",
        token=customer,
        data={"id": str(payment.id), "status": "failed"},
    )
    assert "Code: PermissionDenied" in refused.stderr


def test_an_entitlement_check_with_grpcurl(grpcserver_process, token_issuer):
    call_command("loaddata", "catalog", verbosity=0)
    check = answer(
        grpcserver_process.grpcurl(
            "entitlement.v1.EntitlementService/CheckEntitlement",
            token=token_issuer.token("customer_123"),
            data={"feature_code": "ad_free"},
        )
    )
    assert check == {
        "user_id": "customer_123",
        "feature_code": "ad_free",
        "reason": "no_entitlement",
        "usage_limits": {},
    }

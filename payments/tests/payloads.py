"""Request bodies the payments API tests share, and the answers to them."""

GOOD = {
    "amount": 1999,
    "currency": "USD",
    "payment_method": "credit_card",
    "customer_id": "customer_123",
    "order_id": "order_123",
    "description": "Test payment",
}


def created_from_good(payment, moment=lambda value: value) -> dict:
    """The payment GOOD created (`payment`, the row), as the API answers it; `moment` writes a
    time as the transport does (REST: ISO 8601 text; gRPC, read back with `plain`: a datetime)."""
    return {
        "id": str(payment.id),
        "amount": 1999,
        "currency": "USD",
        "status": "pending",
        "payment_method": "credit_card",
        "customer_id": "customer_123",
        "order_id": "order_123",
        "description": "Test payment",
        "external_payment_id": payment.external_payment_id,
        "failure_reason": "",
        "metadata": {},
        "created_at": moment(payment.created_at),
        "updated_at": moment(payment.updated_at),
    }

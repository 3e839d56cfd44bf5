"""Request bodies the payments API tests share."""

GOOD = {
    "amount": 1999,
    "currency": "USD",
    "payment_method": "credit_card",
    "customer_id": "customer_123",
    "order_id": "order_123",
    "description": "Test payment",
}

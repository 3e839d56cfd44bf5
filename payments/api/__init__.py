"""REST API v1 of payments (API.md "Payments"): one module of serializers and views per resource,
routed in payments/urls.py. Views parse, call one service or selector, and render."""

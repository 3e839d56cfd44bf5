"""Cases the REST and gRPC tests share: one rule, the same answer through either transport."""

# A check's fields (REST: the query) that are refused, and the field errors said.
BAD_CHECKS = [
    ({}, {"feature_code": ["This field is required."]}),
    (
        {"feature_code": "Bad Code"},
        {"feature_code": ["A feature code: lower-case letters, digits, '-' and '_'."]},
    ),
    ({"feature_code": "x" * 65}, {"feature_code": ["Ensure this field has no more than 64 characters."]}),
    (
        {"feature_code": "a", "user_id": "u" * 256},
        {"user_id": ["Ensure this field has no more than 255 characters."]},
    ),
]

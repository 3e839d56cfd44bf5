"""Cases the REST and gRPC tests share: one rule, the same answer through either transport."""

# A price query's fields that are refused, and the field errors said.
BAD_PRICE_QUERIES = [
    ({}, {"country": ["This field is required."]}),
    ({"country": "ZZ"}, {"country": ["'ZZ' is not an ISO 3166-1 alpha-2 country code."]}),
    ({"country": "India"}, {"country": ["'INDIA' is not an ISO 3166-1 alpha-2 country code."]}),
]

import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Plan(_message.Message):
    __slots__ = ("id", "name", "description", "feature_codes", "billing_cycle", "price_cents", "currency", "max_users", "usage_limits")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    FEATURE_CODES_FIELD_NUMBER: _ClassVar[int]
    BILLING_CYCLE_FIELD_NUMBER: _ClassVar[int]
    PRICE_CENTS_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    MAX_USERS_FIELD_NUMBER: _ClassVar[int]
    USAGE_LIMITS_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    description: str
    feature_codes: _containers.RepeatedScalarFieldContainer[str]
    billing_cycle: str
    price_cents: int
    currency: str
    max_users: int
    usage_limits: _struct_pb2.Struct
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., feature_codes: _Optional[_Iterable[str]] = ..., billing_cycle: _Optional[str] = ..., price_cents: _Optional[int] = ..., currency: _Optional[str] = ..., max_users: _Optional[int] = ..., usage_limits: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Price(_message.Message):
    __slots__ = ("plan_id", "country", "zone", "zone_name", "multiplier", "base_price_cents", "price_cents", "currency")
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    ZONE_FIELD_NUMBER: _ClassVar[int]
    ZONE_NAME_FIELD_NUMBER: _ClassVar[int]
    MULTIPLIER_FIELD_NUMBER: _ClassVar[int]
    BASE_PRICE_CENTS_FIELD_NUMBER: _ClassVar[int]
    PRICE_CENTS_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    plan_id: str
    country: str
    zone: str
    zone_name: str
    multiplier: str
    base_price_cents: int
    price_cents: int
    currency: str
    def __init__(self, plan_id: _Optional[str] = ..., country: _Optional[str] = ..., zone: _Optional[str] = ..., zone_name: _Optional[str] = ..., multiplier: _Optional[str] = ..., base_price_cents: _Optional[int] = ..., price_cents: _Optional[int] = ..., currency: _Optional[str] = ...) -> None: ...

class PricingZone(_message.Message):
    __slots__ = ("id", "country", "iso_code", "zone", "zone_name", "world_bank_classification", "gni_per_capita_threshold", "pricing_multiplier", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    ISO_CODE_FIELD_NUMBER: _ClassVar[int]
    ZONE_FIELD_NUMBER: _ClassVar[int]
    ZONE_NAME_FIELD_NUMBER: _ClassVar[int]
    WORLD_BANK_CLASSIFICATION_FIELD_NUMBER: _ClassVar[int]
    GNI_PER_CAPITA_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    PRICING_MULTIPLIER_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    country: str
    iso_code: str
    zone: str
    zone_name: str
    world_bank_classification: str
    gni_per_capita_threshold: str
    pricing_multiplier: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., country: _Optional[str] = ..., iso_code: _Optional[str] = ..., zone: _Optional[str] = ..., zone_name: _Optional[str] = ..., world_bank_classification: _Optional[str] = ..., gni_per_capita_threshold: _Optional[str] = ..., pricing_multiplier: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListPlansRequest(_message.Message):
    __slots__ = ("limit", "offset")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    limit: int
    offset: int
    def __init__(self, limit: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class ListPlansResponse(_message.Message):
    __slots__ = ("plans", "total")
    PLANS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    plans: _containers.RepeatedCompositeFieldContainer[Plan]
    total: int
    def __init__(self, plans: _Optional[_Iterable[_Union[Plan, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class GetPricesRequest(_message.Message):
    __slots__ = ("country", "plan_id")
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    country: str
    plan_id: str
    def __init__(self, country: _Optional[str] = ..., plan_id: _Optional[str] = ...) -> None: ...

class GetPricesResponse(_message.Message):
    __slots__ = ("prices",)
    PRICES_FIELD_NUMBER: _ClassVar[int]
    prices: _containers.RepeatedCompositeFieldContainer[Price]
    def __init__(self, prices: _Optional[_Iterable[_Union[Price, _Mapping]]] = ...) -> None: ...

class GetPricingZoneRequest(_message.Message):
    __slots__ = ("iso_code",)
    ISO_CODE_FIELD_NUMBER: _ClassVar[int]
    iso_code: str
    def __init__(self, iso_code: _Optional[str] = ...) -> None: ...

class GetPricingZoneResponse(_message.Message):
    __slots__ = ("zone",)
    ZONE_FIELD_NUMBER: _ClassVar[int]
    zone: PricingZone
    def __init__(self, zone: _Optional[_Union[PricingZone, _Mapping]] = ...) -> None: ...

class ListPricingZonesRequest(_message.Message):
    __slots__ = ("zone", "country", "iso_code", "limit", "offset")
    ZONE_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    ISO_CODE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    zone: str
    country: str
    iso_code: str
    limit: int
    offset: int
    def __init__(self, zone: _Optional[str] = ..., country: _Optional[str] = ..., iso_code: _Optional[str] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class ListPricingZonesResponse(_message.Message):
    __slots__ = ("zones", "total")
    ZONES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    zones: _containers.RepeatedCompositeFieldContainer[PricingZone]
    total: int
    def __init__(self, zones: _Optional[_Iterable[_Union[PricingZone, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

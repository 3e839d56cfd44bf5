import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Entitlement(_message.Message):
    __slots__ = ("id", "user_id", "family_id", "feature_code", "plan_id", "subscription_id", "status", "granted_at", "expires_at", "usage_limits", "metadata", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    FAMILY_ID_FIELD_NUMBER: _ClassVar[int]
    FEATURE_CODE_FIELD_NUMBER: _ClassVar[int]
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    GRANTED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    USAGE_LIMITS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    user_id: str
    family_id: str
    feature_code: str
    plan_id: str
    subscription_id: str
    status: str
    granted_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    usage_limits: _struct_pb2.Struct
    metadata: _struct_pb2.Struct
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., user_id: _Optional[str] = ..., family_id: _Optional[str] = ..., feature_code: _Optional[str] = ..., plan_id: _Optional[str] = ..., subscription_id: _Optional[str] = ..., status: _Optional[str] = ..., granted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., usage_limits: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class EntitlementSource(_message.Message):
    __slots__ = ("entitlement_id", "plan_id", "family_id")
    ENTITLEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    FAMILY_ID_FIELD_NUMBER: _ClassVar[int]
    entitlement_id: str
    plan_id: str
    family_id: str
    def __init__(self, entitlement_id: _Optional[str] = ..., plan_id: _Optional[str] = ..., family_id: _Optional[str] = ...) -> None: ...

class EntitlementCheck(_message.Message):
    __slots__ = ("user_id", "feature_code", "has_access", "reason", "expires_at", "usage_limits", "source")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    FEATURE_CODE_FIELD_NUMBER: _ClassVar[int]
    HAS_ACCESS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    USAGE_LIMITS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    feature_code: str
    has_access: bool
    reason: str
    expires_at: _timestamp_pb2.Timestamp
    usage_limits: _struct_pb2.Struct
    source: EntitlementSource
    def __init__(self, user_id: _Optional[str] = ..., feature_code: _Optional[str] = ..., has_access: _Optional[bool] = ..., reason: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., usage_limits: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., source: _Optional[_Union[EntitlementSource, _Mapping]] = ...) -> None: ...

class CheckEntitlementRequest(_message.Message):
    __slots__ = ("feature_code", "user_id")
    FEATURE_CODE_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    feature_code: str
    user_id: str
    def __init__(self, feature_code: _Optional[str] = ..., user_id: _Optional[str] = ...) -> None: ...

class CheckEntitlementResponse(_message.Message):
    __slots__ = ("user_id", "feature_code", "has_access", "reason", "expires_at", "usage_limits", "source")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    FEATURE_CODE_FIELD_NUMBER: _ClassVar[int]
    HAS_ACCESS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    USAGE_LIMITS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    feature_code: str
    has_access: bool
    reason: str
    expires_at: _timestamp_pb2.Timestamp
    usage_limits: _struct_pb2.Struct
    source: EntitlementSource
    def __init__(self, user_id: _Optional[str] = ..., feature_code: _Optional[str] = ..., has_access: _Optional[bool] = ..., reason: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., usage_limits: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., source: _Optional[_Union[EntitlementSource, _Mapping]] = ...) -> None: ...

class BatchCheckEntitlementsRequest(_message.Message):
    __slots__ = ("user_id", "feature_codes")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    FEATURE_CODES_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    feature_codes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, user_id: _Optional[str] = ..., feature_codes: _Optional[_Iterable[str]] = ...) -> None: ...

class BatchCheckEntitlementsResponse(_message.Message):
    __slots__ = ("user_id", "results")
    class ResultsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: EntitlementCheck
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[EntitlementCheck, _Mapping]] = ...) -> None: ...
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    results: _containers.MessageMap[str, EntitlementCheck]
    def __init__(self, user_id: _Optional[str] = ..., results: _Optional[_Mapping[str, EntitlementCheck]] = ...) -> None: ...

class ListUserEntitlementsRequest(_message.Message):
    __slots__ = ("user_id", "status", "limit", "offset")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    status: str
    limit: int
    offset: int
    def __init__(self, user_id: _Optional[str] = ..., status: _Optional[str] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class ListUserEntitlementsResponse(_message.Message):
    __slots__ = ("entitlements", "total")
    ENTITLEMENTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    entitlements: _containers.RepeatedCompositeFieldContainer[Entitlement]
    total: int
    def __init__(self, entitlements: _Optional[_Iterable[_Union[Entitlement, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class CreateEntitlementRequest(_message.Message):
    __slots__ = ("user_id", "feature_code", "plan_id", "family_id", "subscription_id", "expires_at", "usage_limits", "metadata", "reason", "idempotency_key")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    FEATURE_CODE_FIELD_NUMBER: _ClassVar[int]
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    FAMILY_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    USAGE_LIMITS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    feature_code: str
    plan_id: str
    family_id: str
    subscription_id: str
    expires_at: _timestamp_pb2.Timestamp
    usage_limits: _struct_pb2.Struct
    metadata: _struct_pb2.Struct
    reason: str
    idempotency_key: str
    def __init__(self, user_id: _Optional[str] = ..., feature_code: _Optional[str] = ..., plan_id: _Optional[str] = ..., family_id: _Optional[str] = ..., subscription_id: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., usage_limits: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., reason: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class CreateEntitlementResponse(_message.Message):
    __slots__ = ("entitlement",)
    ENTITLEMENT_FIELD_NUMBER: _ClassVar[int]
    entitlement: Entitlement
    def __init__(self, entitlement: _Optional[_Union[Entitlement, _Mapping]] = ...) -> None: ...

class UpdateEntitlementStatusRequest(_message.Message):
    __slots__ = ("id", "status", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    status: str
    reason: str
    def __init__(self, id: _Optional[str] = ..., status: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class UpdateEntitlementStatusResponse(_message.Message):
    __slots__ = ("entitlement",)
    ENTITLEMENT_FIELD_NUMBER: _ClassVar[int]
    entitlement: Entitlement
    def __init__(self, entitlement: _Optional[_Union[Entitlement, _Mapping]] = ...) -> None: ...

class UpdateEntitlementExpiryRequest(_message.Message):
    __slots__ = ("id", "expires_at", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    expires_at: _timestamp_pb2.Timestamp
    reason: str
    def __init__(self, id: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class UpdateEntitlementExpiryResponse(_message.Message):
    __slots__ = ("entitlement",)
    ENTITLEMENT_FIELD_NUMBER: _ClassVar[int]
    entitlement: Entitlement
    def __init__(self, entitlement: _Optional[_Union[Entitlement, _Mapping]] = ...) -> None: ...

"""Protobuf messages <-> the plain data the REST serializers take and give.

Requests become dicts of the fields that are set (proto3 has no "missing" for a scalar: its zero
value counts as not given, so the serializer's own required-field rule applies), Structs become
dicts, Timestamps ISO 8601 text. Answers are the REST serializers' data, parsed into the response
message: the same names, values and formats as REST by construction.
"""

import uuid

from google.protobuf import json_format, struct_pb2, timestamp_pb2
from google.protobuf.descriptor import FieldDescriptor

from jia_payments.core.api.errors import NotFound
from jia_payments.core.api.pagination import LimitOffsetPagination


def _value(field: FieldDescriptor, value):
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        if isinstance(value, struct_pb2.Struct):
            return json_format.MessageToDict(value)
        if isinstance(value, timestamp_pb2.Timestamp):
            return value.ToJsonString()
        return to_dict(value)
    return value


def to_dict(message, *, exclude: tuple[str, ...] = ()) -> dict:
    data = {}
    for field, value in message.ListFields():
        if field.name in exclude:
            continue
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            data[field.name] = {
                key: _value(field.message_type.fields_by_name["value"], v) for key, v in value.items()
            }
        elif field.is_repeated:
            data[field.name] = [_value(field, item) for item in value]
        else:
            data[field.name] = _value(field, value)
    return data


def to_message(message_class, data):
    return _keep_empty_objects(json_format.ParseDict(data, message_class(), ignore_unknown_fields=True), data)


def _keep_empty_objects(message, data: dict):
    """An empty object (`"metadata": {}`) stays a set, empty Struct: REST's `{}`, not a missing field."""
    for name, value in data.items():
        field = message.DESCRIPTOR.fields_by_name.get(name)
        if field is None or field.message_type is None or field.is_repeated or not isinstance(value, dict):
            continue
        if not value:
            getattr(message, name).SetInParent()
        elif field.message_type.full_name != "google.protobuf.Struct":
            _keep_empty_objects(getattr(message, name), value)
    return message


def to_messages(message_class, items) -> list:
    return [to_message(message_class, item) for item in items]


class _PageQuery:
    def __init__(self, limit: int, offset: int):
        self.query_params = {}
        if limit:
            self.query_params["limit"] = str(limit)
        if offset:
            self.query_params["offset"] = str(offset)


def page(items, *, limit: int, offset: int) -> tuple[list, int]:
    """REST's `?limit=&offset=` page of `items` (a queryset or list) and the count of all of them:
    limit 1 to 100 (0, unset, means 20), offset 0 and up; anything else is INVALID_ARGUMENT with
    REST's message."""
    paginator = LimitOffsetPagination()
    results = paginator.paginate_queryset(items, _PageQuery(limit, offset))
    return list(results), paginator.count


def uuid_or_not_found(value: str) -> uuid.UUID:
    """An id from a request message: one that is not a UUID names nothing (REST's URLs 404 it)."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound("No such resource.") from None

"""Read-only model serializers whose output is built directly, value for value what DRF builds.

DRF builds a ModelSerializer's fields for every serializer it makes (a deep copy of the declared
ones and one field per model field, from the model's metadata) and then asks each field for each
row's value: most of the CPU of a list page or of a create's answer. `DirectRepresentation` works
out once per class, from those same fields, how each one renders, and renders a model instance by
that plan. A field whose rendering it does not know exactly (another field class, a dotted or `*`
source, a custom format or time zone) makes the whole class use DRF's own code; so does anything
that is not an instance of the serializer's model, or of a row type its `Meta.row_types` names (a
named tuple of the values an instance holds, by the instance's attribute names: what DRF's fields
read from it by `getattr` too).

Known renderings (DRF's `to_representation` of each): None stays None; CharField, and a
ChoiceField whose choices are strings: `str(value)`; UUIDField in its default format: `str`;
IntegerField: `int` (BigIntegerField: `str` when it coerces to strings); DateTimeField in ISO 8601
with the project's UTC: the API's timestamp text (`iso_utc`; a naive time taken as UTC, a string as
it is); JSONField (not binary): the value itself.
"""

from datetime import UTC

from django.conf import settings
from rest_framework import serializers
from rest_framework.settings import api_settings

from jia_payments.core.api.timestamps import iso_utc

_UNKNOWN = object()


def _as_is(value):
    return value


def _timestamp(value):
    """DRF's DateTimeField in ISO 8601 with UTC as the current time zone."""
    if isinstance(value, str):
        return value
    return iso_utc(value if value.tzinfo is not None else value.replace(tzinfo=UTC))


def _renderer(field):
    """How `field` renders a (non-None) value, or None when that is not known exactly."""
    kind = type(field)
    if kind is serializers.JSONField and not field.binary:
        return _as_is
    if kind in (serializers.CharField, serializers.UUIDField):
        if kind is serializers.UUIDField and field.uuid_format != "hex_verbose":
            return None
        return str
    if kind is serializers.ChoiceField and all(type(key) is str for key in field.choices):
        return str
    if kind is serializers.IntegerField:
        return int
    if kind is getattr(serializers, "BigIntegerField", None):
        return str if getattr(field, "coerce_to_string", api_settings.COERCE_BIGINT_TO_STRING) else int
    if kind is serializers.DateTimeField:
        output = getattr(field, "format", serializers.empty)
        if output is serializers.empty:
            output = api_settings.DATETIME_FORMAT
        if str(output).lower() != "iso-8601" or hasattr(field, "timezone") or settings.TIME_ZONE != "UTC":
            return None
        return _timestamp
    return None


def _by_plan(plan, instance) -> dict:
    return {
        name: None if (value := getattr(instance, source)) is None else render(value)
        for name, source, render in plan
    }


class DirectRepresentation:
    """Mixin for a read-only ModelSerializer (put it first): instances render by a per-class plan."""

    _plan = _UNKNOWN

    @classmethod
    def _representation_plan(cls, serializer=None):
        if cls.__dict__.get("_plan", _UNKNOWN) is _UNKNOWN:
            plan = []
            for name, field in (serializer or cls()).fields.items():
                render = _renderer(field)
                source = field.source
                if field.write_only:
                    continue
                if render is None or source == "*" or "." in source:
                    plan = None
                    break
                plan.append((name, source, render))
            cls._plan = plan
        return cls._plan

    @classmethod
    def _renders_directly(cls, instance) -> bool:
        kind = type(instance)
        return kind is cls.Meta.model or kind in getattr(cls.Meta, "row_types", ())

    def to_representation(self, instance):
        plan = self._representation_plan(self) if self._renders_directly(instance) else None
        if plan is None:
            return super().to_representation(instance)
        return _by_plan(plan, instance)

    @classmethod
    def many_data(cls, instances) -> list:
        """What `cls(instances, many=True).data` holds, without DRF's list and child serializers
        when every instance renders by the plan."""
        plan = cls._representation_plan()
        if plan is None or not all(cls._renders_directly(instance) for instance in instances):
            return cls(instances, many=True).data
        return [_by_plan(plan, instance) for instance in instances]

"""A URLconf for the core tests: the project's URLs plus small views that exercise the shared layers."""

from django.http import HttpResponse
from django.urls import path
from django.views.decorators.http import require_GET
from rest_framework import generics, serializers, throttling
from rest_framework.response import Response
from rest_framework.views import APIView

from jia_payments.core.api.idempotency import idempotent
from jia_payments.core.api.permissions import IsServiceOrStaff
from jia_payments.core.api.validation import (
    CountryCodeField,
    CurrencyField,
    JSONObjectField,
    MultiplierField,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
)
from jia_payments.urls import *  # noqa: F403
from jia_payments.urls import urlpatterns as project_urlpatterns
from pricing.models import Feature


class ThingIn(StrictSerializer):
    code = StrictCharField(max_length=64)
    amount = StrictIntegerField(min_value=1, max_value=99_999_999, required=False)
    currency = CurrencyField(required=False)
    country = CountryCodeField(required=False)
    multiplier = MultiplierField(required=False)
    metadata = JSONObjectField(required=False)


class ThingOut(serializers.ModelSerializer):
    class Meta:
        model = Feature
        fields = ["code", "name"]


def _create(request):
    data = ThingIn(data=request.data)
    data.is_valid(raise_exception=True)
    feature = Feature.objects.create(code=data.validated_data["code"], name="thing")
    return Response({**ThingOut(feature).data, "echo": data.validated_data}, status=201)


class Things(generics.ListAPIView):
    queryset = Feature.objects.order_by("code")
    serializer_class = ThingOut

    @idempotent
    def post(self, request):
        return _create(request)


class SlowThings(APIView):
    @idempotent(atomic=False)
    def post(self, request):
        if request.data.get("code") == "explode":
            raise RuntimeError("boom")
        return _create(request)


class WhoAmI(APIView):
    def get(self, request):
        return Response({"user_id": request.user.user_id, "role": request.user.role})


@require_GET
def django_get_only(request):
    return HttpResponse("ok")


def django_boom(request):
    raise RuntimeError("secret internals")


class Boom(APIView):
    def get(self, request):
        raise RuntimeError("secret internals")


class Staffish(APIView):
    permission_classes = [IsServiceOrStaff]

    def get(self, request):
        return Response({"who": str(request.user)})


class OnePerMinute(throttling.SimpleRateThrottle):
    rate = "1/min"
    scope = "test"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


class Throttled(APIView):
    throttle_classes = [OnePerMinute]

    def get(self, request):
        return Response({"ok": True})


urlpatterns = [
    path("api/test/things/", Things.as_view()),
    path("api/test/slow-things/", SlowThings.as_view()),
    path("api/test/boom/", Boom.as_view()),
    path("api/test/django-boom/", django_boom),
    path("api/test/django-get-only/", django_get_only),
    path("api/test/whoami/", WhoAmI.as_view()),
    path("api/test/staffish/", Staffish.as_view()),
    path("api/test/throttled/", Throttled.as_view()),
    *project_urlpatterns,
]

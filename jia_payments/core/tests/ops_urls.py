"""Test-only routes: a small DRF view with the project's default authentication and throttles."""

import structlog
from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from jia_payments.core.tests.tasks import log_probe

logger = structlog.get_logger(__name__)


class EchoView(APIView):
    permission_classes = [AllowAny]

    def get(self, request):
        return Response({"ok": True})

    def post(self, request):
        marker = request.data.get("marker", "")
        logger.info("echo_posted", marker=marker)
        log_probe.delay(marker)
        return Response({"ok": True}, status=201)


urlpatterns = [path("echo/", EchoView.as_view())]

"""The floor: plain Django answering the ceiling's constant JSON, with nothing in front of it.

No middleware, no installed apps, no database, no authentication: what Django itself costs per
request. The bench serves it with `gunicorn -c gunicorn.conf.py bench.floor:application`, the
same server settings as the product, so every scenario can be read as a share of it.
"""

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import HttpResponse
from django.urls import path

BODY = b'{"ok":true}'  # byte for byte what DRF's JSONRenderer sends for the ceiling


def constant(request):
    return HttpResponse(BODY, content_type="application/json")


urlpatterns = [
    path("api/v1/_bench/constant/", constant),
    path("healthz", constant),
]

settings.configure(
    DEBUG=False,
    SECRET_KEY="bench-floor-has-no-secrets-" + "x" * 40,
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
    USE_TZ=True,
)
application = get_wsgi_application()

"""Last line of the one-error-shape rule: no HTML error page ever leaves an /api/ path.

Django answers some errors before or outside a DRF view: an unknown URL, an exception in a plain
view, and, with DEBUG on, its technical 404/500 pages, which bypass handler404/handler500. This
middleware turns any such non-JSON error response on an API path into problem details.
"""

from functools import partial

from django.contrib.auth.middleware import AuthenticationMiddleware as DjangoAuthenticationMiddleware
from django.contrib.auth.models import AnonymousUser
from django.contrib.messages.middleware import MessageMiddleware as DjangoMessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.http import HttpResponsePermanentRedirect
from django.middleware.common import CommonMiddleware as DjangoCommonMiddleware
from django.utils.cache import patch_vary_headers
from django.utils.functional import SimpleLazyObject
from django.utils.http import escape_leading_slashes

from jia_payments.core.api.errors import code_for, is_api_path, problem, problem_response, title_for

_DETAILS = {404: "No such resource.", 500: "An unexpected error occurred."}


class ProblemDetailsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code < 400 or not is_api_path(request.path):
            return response
        content_type = response.get("Content-Type", "")
        if content_type.startswith(("application/problem+json", "application/json")):
            return response
        status = response.status_code
        title = title_for(status)
        body = problem(status, code_for(status), title, _DETAILS.get(status, f"{title}."))
        headers = {name: response[name] for name in ("Allow", "Retry-After") if response.has_header(name)}
        return problem_response(body, headers)


class PermanentRedirectKeepingMethod(HttpResponsePermanentRedirect):
    status_code = 308


class CommonMiddleware(DjangoCommonMiddleware):
    """Django's CommonMiddleware, but a URL missing its trailing slash is redirected with 308.

    Django's 301 makes clients turn a POST into a GET and drop its body (and, with DEBUG on, it
    raises instead). 308 tells the client to repeat the same method with the same body at the
    slash-terminated URL, which is what an API caller needs.
    """

    response_redirect_class = PermanentRedirectKeepingMethod

    def get_full_path_with_slash(self, request):
        return escape_leading_slashes(request.get_full_path(force_append_slash=True))


class MessageMiddleware(DjangoMessageMiddleware):
    """Django's messages (the admin's and back-office's notices), not set up on API paths.

    No API view adds or reads a message and no API page shows one, so a request there left the
    storage untouched: its set-up (a cookie and a session store) was work for nothing.
    """

    def process_request(self, request):
        if not is_api_path(request.path):
            super().process_request(request)


# --- Browser state (the session and its user) on API requests that send no cookie -----------------
# An API caller with a token sends no cookie; a logged-in staff user's browser sends its session
# cookie, and such a request gets Django's sessions and user unchanged (as does
# every request under ASGI: the shortcut is the WSGI server's).

_USER_READ = "_anonymous_user_read"


def _cookieless_api_request(request) -> bool:
    return not request.META.get("HTTP_COOKIE") and is_api_path(request.path)


def _anonymous_user(request):
    request.__dict__[_USER_READ] = True
    user = request._cached_user = AnonymousUser()
    return user


class SessionMiddleware(DjangoSessionMiddleware):
    """Django's sessions, but an API request without a cookie gets no session store (it could only
    be empty, and nothing on those paths writes one). Its user is anonymous
    (AuthenticationMiddleware below); when something read that user, the answer varies on Cookie,
    as Django's does once an empty session is read."""

    def __call__(self, request):
        if self.async_mode or not _cookieless_api_request(request):
            return super().__call__(request)
        response = self.get_response(request)
        if request.__dict__.get(_USER_READ):
            patch_vary_headers(response, ("Cookie",))
        return response


class AuthenticationMiddleware(DjangoAuthenticationMiddleware):
    """Django's `request.user`; on an API request without a cookie (no session: see
    SessionMiddleware) the anonymous user, made only if something asks for it."""

    def __call__(self, request):
        if self.async_mode or not _cookieless_api_request(request):
            return super().__call__(request)
        request.user = SimpleLazyObject(partial(_anonymous_user, request))
        return self.get_response(request)

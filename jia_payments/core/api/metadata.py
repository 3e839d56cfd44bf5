"""OPTIONS answers: DRF's SimpleMetadata, without loading the object.

For PUT, SimpleMetadata calls `view.get_object()` to check object permissions, which needs a
`queryset` on the view; ours load objects through selectors, so OPTIONS by a caller allowed to
PUT was a 500. The permission check is the view's own (`check_permissions`), as for POST."""

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions
from rest_framework.metadata import SimpleMetadata
from rest_framework.request import clone_request


class Metadata(SimpleMetadata):
    def determine_actions(self, request, view):
        actions = {}
        for method in sorted({"PUT", "POST"} & set(view.allowed_methods)):
            view.request = clone_request(request, method)
            try:
                view.check_permissions(view.request)
                actions[method] = self.get_serializer_info(view.get_serializer())
            except (exceptions.APIException, PermissionDenied, Http404):
                pass
            finally:
                view.request = request
        return actions

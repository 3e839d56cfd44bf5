"""Changes `python -m bench stack --toggle NAME` can switch off (the code before them) and on, to
measure one in a single process: each a function taking `on`."""


def _lean(view, on: bool) -> None:
    from rest_framework.views import APIView

    if not on:
        view.dispatch = APIView.dispatch
    elif "dispatch" in vars(view):
        del view.dispatch  # LeanDispatch's again


def lean_dispatch(on: bool) -> None:
    """The entitlement check without DRF's dispatch for a plainly valid token call (off: DRF's)."""
    from entitlements.api import EntitlementCheckView

    _lean(EntitlementCheckView, on)


def lean_list(on: bool) -> None:
    """The same for the entitlement list's GET."""
    from entitlements.api import EntitlementListView

    _lean(EntitlementListView, on)

"""Changes `python -m bench stack --toggle NAME` can switch off (the code before them) and on, to
measure one in a single process: each a function taking `on`."""


def lean_dispatch(on: bool) -> None:
    """The entitlement check without DRF's dispatch for a plainly valid token call (off: DRF's)."""
    from rest_framework.views import APIView

    from entitlements.api import EntitlementCheckView

    if not on:
        EntitlementCheckView.dispatch = APIView.dispatch
    elif "dispatch" in vars(EntitlementCheckView):
        del EntitlementCheckView.dispatch  # LeanDispatch's again

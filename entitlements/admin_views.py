"""Entitlement pages of Django admin beyond the model's own: grant a plan, extend, and "why does
this user (not) have this feature". Each calls one service or selector."""

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from entitlements import services
from entitlements.models import Entitlement
from entitlements.selectors import entitlement_explain
from jia_payments.core.admin_links import admin_url
from jia_payments.core.api.errors import DomainError
from pricing.selectors import active_plans


class GrantPlanForm(forms.Form):
    user_id = forms.CharField(max_length=255)
    plan = forms.ModelChoiceField(queryset=active_plans())
    family_id = forms.UUIDField(
        required=False, help_text="A family plan only: the owner's family (empty: a new family, or theirs)"
    )
    expires_at = forms.DateTimeField(
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text="Empty: one billing period of the plan from now (a one-time plan: lifetime)",
    )
    reason = forms.CharField(max_length=500, help_text="Kept in the audit trail")

    def clean(self):
        data = super().clean()
        plan, family_id = data.get("plan"), data.get("family_id")
        if plan is not None and family_id and not plan.is_family:
            self.add_error("family_id", f"{plan.name} is not a family plan.")
        expires_at = data.get("expires_at")
        if expires_at is not None and expires_at <= timezone.now():
            self.add_error("expires_at", "In the future.")
        return data


class ExtendForm(forms.Form):
    expires_at = forms.DateTimeField(
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text="Empty: lifetime",
    )
    reason = forms.CharField(max_length=500, help_text="Kept in the audit trail")


class WhyForm(forms.Form):
    user_id = forms.CharField(max_length=255)
    feature_code = forms.CharField(max_length=64)


def _page(model_admin, request, template: str, **context) -> TemplateResponse:
    return TemplateResponse(
        request,
        template,
        {**model_admin.admin_site.each_context(request), "opts": Entitlement._meta, **context},
    )


def grant_plan_view(model_admin, request):
    """Every feature of the plan at once, through the plan-grant service (as the API's grants call)."""
    if not model_admin.has_add_permission(request):
        raise PermissionDenied
    form = GrantPlanForm(request.POST or None, initial=request.GET.dict() or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            _, rows = services.plan_grant_create(
                user_id=data["user_id"],
                plan_id=data["plan"].pk,
                family_id=data["family_id"],
                expires_at=data["expires_at"] or services.DEFAULT_EXPIRY,
                reason=data["reason"],
            )
        except DomainError as error:
            form.add_error(None, f"{error.title}: {error.detail}")
        else:
            features = ", ".join(sorted(row.feature_id for row in rows)) or "no feature"
            model_admin.message_user(
                request, f"Granted {data['plan'].name} to {data['user_id']}: {features}.", messages.SUCCESS
            )
            return HttpResponseRedirect(
                reverse("admin:entitlements_entitlement_changelist") + f"?user_id={data['user_id']}"
            )
    return _page(model_admin, request, "admin/entitlements/grant_plan.html", form=form, title="Grant a plan")


def extend_view(model_admin, request, ids: list[str]):
    """A new end for the selected rows, through `entitlement_set_expiry` (as the API's expiry call)."""
    if not model_admin.has_change_permission(request):
        raise PermissionDenied
    form = ExtendForm(request.POST if "extend" in request.POST else None)
    if form.is_bound and form.is_valid():
        moved = 0
        for pk in ids:
            try:
                services.entitlement_set_expiry(
                    entitlement_id=pk,
                    expires_at=form.cleaned_data["expires_at"],
                    reason=form.cleaned_data["reason"],
                )
                moved += 1
            except DomainError as error:
                model_admin.message_user(request, f"{pk}: {error.detail}", messages.ERROR)
        model_admin.message_user(request, f"{moved} entitlement(s) extended.", messages.SUCCESS)
        return None
    rows = Entitlement.objects.filter(pk__in=ids).select_related("plan")
    return _page(
        model_admin,
        request,
        "admin/entitlements/extend.html",
        form=form,
        rows=rows,
        ids=ids,
        title="Extend entitlements",
    )


def why_view(model_admin, request):
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    form = WhyForm(request.GET or None)
    explained, rows = None, []
    if form.is_bound and form.is_valid():
        explained = entitlement_explain(**form.cleaned_data)
        rows = [(c, admin_url(Entitlement(pk=c.row.entitlement_id))) for c in explained["rows"]]
    return _page(
        model_admin,
        request,
        "admin/entitlements/why.html",
        form=form,
        explained=explained,
        rows=rows,
        title="Why does this user (not) have this feature?",
    )

from django import template

from backoffice.dashboard import dashboard

register = template.Library()


@register.inclusion_tag("admin/backoffice/dashboard.html", takes_context=True)
def show_dashboard(context):
    request = context.get("request")
    board = dashboard(user=request.user)
    chart = {
        "days": board.days,
        "payments": board.payments_per_day,
        "succeeded": board.succeeded_per_day,
        "revenue": board.revenue_per_day,
    }
    return {"board": board, "chart": chart, "request": request}

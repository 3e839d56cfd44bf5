from django.apps import AppConfig


class BackofficeConfig(AppConfig):
    """What Django admin adds across the apps: staff groups, the dashboard, links between pages."""

    name = "backoffice"
    default_auto_field = "django.db.models.BigAutoField"

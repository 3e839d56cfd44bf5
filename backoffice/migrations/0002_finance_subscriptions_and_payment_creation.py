from django.db import migrations


def complete_groups(apps, schema_editor):
    # As 0001: today's groups from today's models (finance now also changes subscriptions and
    # creates payments and checkouts for a customer).
    from django.apps import apps as current_apps

    from backoffice.staff_groups import ensure_groups

    ensure_groups(current_apps)


class Migration(migrations.Migration):
    dependencies = [("backoffice", "0001_staff_groups")]

    operations = [migrations.RunPython(complete_groups, migrations.RunPython.noop)]

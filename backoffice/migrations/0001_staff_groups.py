from django.db import migrations


def create_groups(apps, schema_editor):
    # The current models, not the historical ones: the permissions are those of today's models
    # (auth's and contenttypes' tables are stable), and the tests build those apps from models.
    from django.apps import apps as current_apps

    from backoffice.staff_groups import ensure_groups

    ensure_groups(current_apps)


class Migration(migrations.Migration):
    dependencies = [
        # "__first__": a later release of these apps adding a migration leaves this one consistent
        ("auth", "__first__"),
        ("contenttypes", "__first__"),
        ("core", "0003_outbox_pending_aggregate_index"),
        ("pricing", "0001_initial"),
        ("entitlements", "0003_families_seats_and_grant_keys"),
        ("payments", "0002_stripe_events_refunds"),
        ("djstripe", "__first__"),
        ("auditlog", "__first__"),
    ]

    operations = [migrations.RunPython(create_groups, migrations.RunPython.noop)]

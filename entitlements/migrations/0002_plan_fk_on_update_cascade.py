"""The entitlement's plan FK: ON UPDATE CASCADE, deletes refused (the brief's SQL).

Django cannot express ON UPDATE CASCADE, so PostgreSQL's constraint is rebuilt here.
"""

from django.db import migrations

REBUILD_FK = """
DO $$
DECLARE fk_name text;
BEGIN
    SELECT conname INTO fk_name FROM pg_constraint
     WHERE conrelid = 'entitlements_entitlement'::regclass
       AND confrelid = 'pricing_plan'::regclass AND contype = 'f';
    EXECUTE format('ALTER TABLE entitlements_entitlement DROP CONSTRAINT %I', fk_name);
    ALTER TABLE entitlements_entitlement ADD CONSTRAINT entitlement_plan_fk
        FOREIGN KEY (plan_id) REFERENCES pricing_plan (id)
        ON UPDATE CASCADE ON DELETE RESTRICT;
END $$;
"""

RESTORE_FK = """
ALTER TABLE entitlements_entitlement DROP CONSTRAINT entitlement_plan_fk;
ALTER TABLE entitlements_entitlement ADD CONSTRAINT entitlement_plan_fk
    FOREIGN KEY (plan_id) REFERENCES pricing_plan (id) DEFERRABLE INITIALLY DEFERRED;
"""


def rebuild(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(REBUILD_FK, params=None)


def restore(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(RESTORE_FK, params=None)


class Migration(migrations.Migration):
    dependencies = [("entitlements", "0001_initial"), ("pricing", "0001_initial")]

    operations = [migrations.RunPython(rebuild, restore)]

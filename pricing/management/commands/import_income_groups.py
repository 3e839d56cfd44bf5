"""Import a World Bank income classification CSV as pricing zones.

manage.py import_income_groups FILE.csv                 # show what would change
manage.py import_income_groups FILE.csv --apply         # apply it to the database
manage.py import_income_groups FILE.csv --fixture fixtures/pricing_zones.json
"""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from pricing.income_groups import IncomeGroupFileError, read_income_groups
from pricing.models import PricingZone
from pricing.services import pricing_zone_bulk_upsert

FIXTURE_TIMESTAMP = "2026-07-01T00:00:00Z"


class Command(BaseCommand):
    help = "Show, apply, or write as a fixture the pricing zones of a World Bank income CSV."

    def add_arguments(self, parser):
        parser.add_argument("csv", type=Path)
        parser.add_argument("--apply", action="store_true", help="write the zones to the database")
        parser.add_argument("--fixture", type=Path, help="write a loaddata fixture to this path")

    def handle(self, *args, csv: Path, apply: bool, fixture: Path | None, **options):
        try:
            rows, skipped = read_income_groups(csv)
        except (OSError, IncomeGroupFileError) as error:
            raise CommandError(str(error)) from error
        for country in skipped:
            self.stdout.write(f"skipped (unclassified): {country}")
        if fixture:
            fixture.write_text(json.dumps([_fixture_record(row) for row in rows], indent=1) + "\n")
            self.stdout.write(f"wrote {len(rows)} zones to {fixture}")
            return
        self._show_changes(rows)
        if apply:
            created, updated = pricing_zone_bulk_upsert(zones=[_zone_values(row) for row in rows])
            self.stdout.write(self.style.SUCCESS(f"applied: {created} created, {updated} updated"))
        else:
            self.stdout.write("nothing written; run again with --apply to apply these changes")

    def _show_changes(self, rows) -> None:
        current = {zone.iso_code: zone for zone in PricingZone.objects.all()}
        changes = 0
        for row in rows:
            existing = current.pop(row.iso_code, None)
            if existing is None:
                self.stdout.write(f"new      {row.iso_code} {row.country}: zone {row.zone}")
                changes += 1
            elif existing.zone != row.zone or existing.pricing_multiplier != row.pricing_multiplier:
                self.stdout.write(
                    f"changed  {row.iso_code} {row.country}: zone {existing.zone} -> {row.zone} "
                    f"(multiplier {existing.pricing_multiplier} -> {row.pricing_multiplier})"
                )
                changes += 1
        for iso_code, zone in sorted(current.items()):
            self.stdout.write(f"absent   {iso_code} {zone.country}: kept as zone {zone.zone}")
        self.stdout.write(f"{changes} countries new or changing zone, {len(rows)} in the file")


def _zone_values(row) -> dict:
    return {
        "iso_code": row.iso_code,
        "country": row.country,
        "zone": row.zone,
        "zone_name": row.zone_name,
        "world_bank_classification": row.world_bank_classification,
        "gni_per_capita_threshold": row.gni_per_capita_threshold,
        "pricing_multiplier": row.pricing_multiplier,
    }


def _fixture_record(row) -> dict:
    fields = _zone_values(row)
    fields["pricing_multiplier"] = str(row.pricing_multiplier)
    fields["created_at"] = fields["updated_at"] = FIXTURE_TIMESTAMP
    return {"model": "pricing.pricingzone", "pk": str(row.id), "fields": fields}

"""Import a World Bank income classification CSV as pricing zones.

manage.py import_income_groups FILE.csv                 # show what would change
manage.py import_income_groups FILE.csv --apply         # apply it to the database
manage.py import_income_groups FILE.csv --fixture fixtures/pricing_zones.json
"""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from pricing.income_groups import IncomeGroupFileError, read_income_groups
from pricing.selectors import income_groups_changes
from pricing.services import pricing_zones_import

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
            created, updated = pricing_zones_import(rows=rows, reason=f"World Bank file {csv.name}")
            self.stdout.write(self.style.SUCCESS(f"applied: {created} created, {updated} updated"))
        else:
            self.stdout.write("nothing written; run again with --apply to apply these changes")

    def _show_changes(self, rows) -> None:
        changes = income_groups_changes(rows=rows)
        for change in changes:
            if change.kind == "new":
                self.stdout.write(f"new      {change.iso_code} {change.country}: zone {change.zone_after}")
            elif change.kind == "changed":
                self.stdout.write(
                    f"changed  {change.iso_code} {change.country}: "
                    f"zone {change.zone_before} -> {change.zone_after} "
                    f"(multiplier {change.multiplier_before} -> {change.multiplier_after})"
                )
            else:
                self.stdout.write(
                    f"absent   {change.iso_code} {change.country}: kept as zone {change.zone_before}"
                )
        moved = sum(change.kind != "absent" for change in changes)
        self.stdout.write(f"{moved} countries new or changing zone, {len(rows)} in the file")


def _fixture_record(row) -> dict:
    fields = row.values()
    fields["pricing_multiplier"] = str(row.pricing_multiplier)
    fields["created_at"] = fields["updated_at"] = FIXTURE_TIMESTAMP
    return {"model": "pricing.pricingzone", "pk": str(row.id), "fields": fields}

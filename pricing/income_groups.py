"""World Bank income classification (CSV) -> pricing zones.

The CSV (pricing/data/) has columns iso2,iso3,country,income_group,fiscal_year,source. The
Channel Islands row has no ISO code: Jersey and Guernsey stand for it.
"""

import csv
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from pricing.zones import ZONE_BY_INCOME_GROUP

# Deterministic ids, so a generated fixture loads twice without change.
ZONE_ID_NAMESPACE = uuid.UUID("6f1c1f8e-2a4b-4f5e-9a77-0d3c8f0b2a10")
CHANNEL_ISLANDS = {"JE": "Jersey", "GG": "Guernsey"}


@dataclass(frozen=True)
class ZoneRow:
    iso_code: str
    country: str
    zone: str
    zone_name: str
    world_bank_classification: str
    gni_per_capita_threshold: str
    pricing_multiplier: Decimal

    @property
    def id(self) -> uuid.UUID:
        return uuid.uuid5(ZONE_ID_NAMESPACE, self.iso_code)

    def values(self) -> dict:
        """The row as `pricing_zone_upsert` takes it."""
        return {
            "iso_code": self.iso_code,
            "country": self.country,
            "zone": self.zone,
            "zone_name": self.zone_name,
            "world_bank_classification": self.world_bank_classification,
            "gni_per_capita_threshold": self.gni_per_capita_threshold,
            "pricing_multiplier": self.pricing_multiplier,
        }


class IncomeGroupFileError(ValueError):
    pass


def read_income_groups(path: Path) -> tuple[list[ZoneRow], list[str]]:
    """Zone rows for every classified economy, and the names of the rows left out (unclassified)."""
    with open(path, newline="", encoding="utf-8") as handle:
        return parse_income_groups(handle, name=str(path))


def parse_income_groups(lines: Iterable[str], *, name: str = "the file") -> tuple[list[ZoneRow], list[str]]:
    """`read_income_groups` of CSV text (an uploaded file's lines)."""
    rows, skipped = [], []
    reader = csv.DictReader(lines)
    missing = {"iso2", "country", "income_group"} - set(reader.fieldnames or [])
    if missing:
        raise IncomeGroupFileError(f"{name}: missing columns {sorted(missing)}")
    for record in reader:
        group = record["income_group"].strip()
        if not group:
            skipped.append(record["country"])
            continue
        spec = ZONE_BY_INCOME_GROUP.get(group)
        if spec is None:
            raise IncomeGroupFileError(f"{record['country']}: unknown income group {group!r}")
        iso2 = record["iso2"].strip().upper()
        countries = {iso2: record["country"].strip()} if iso2 else {}
        if not iso2 and record["country"].strip() == "Channel Islands":
            countries = CHANNEL_ISLANDS
        if not countries:
            raise IncomeGroupFileError(f"{record['country']}: no ISO code")
        for iso_code, country in countries.items():
            rows.append(
                ZoneRow(
                    iso_code=iso_code,
                    country=country,
                    zone=spec.zone,
                    zone_name=spec.zone_name,
                    world_bank_classification=spec.world_bank_classification,
                    gni_per_capita_threshold=spec.gni_per_capita_threshold,
                    pricing_multiplier=spec.multiplier,
                )
            )
    iso_codes = [row.iso_code for row in rows]
    duplicates = {code for code in iso_codes if iso_codes.count(code) > 1}
    if duplicates:
        raise IncomeGroupFileError(f"duplicate ISO codes: {sorted(duplicates)}")
    return sorted(rows, key=lambda row: row.iso_code), skipped

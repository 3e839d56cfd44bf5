from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from pricing.models import PricingZone

pytestmark = pytest.mark.django_db

DATA = Path(__file__).resolve().parents[1] / "data"


def _run(*args, **kwargs) -> str:
    out = StringIO()
    call_command("import_income_groups", *args, stdout=out, **kwargs)
    return out.getvalue()


def test_preview_of_next_year_lists_the_countries_that_change_zone_and_writes_nothing():
    _run(str(DATA / "world_bank_income_groups_fy2026.csv"), apply=True)
    before = dict(PricingZone.objects.values_list("iso_code", "zone"))
    output = _run(str(DATA / "world_bank_income_groups_fy2027.csv"))
    assert "changed  JO Jordan: zone C -> B" in output
    assert "changed  VN Viet Nam: zone C -> B" in output or "changed  VN Vietnam: zone C -> B" in output
    assert "changed  TG Togo: zone D -> C" in output
    assert "new      ET Ethiopia: zone D" in output
    assert "new      VE " in output
    assert dict(PricingZone.objects.values_list("iso_code", "zone")) == before


def test_apply_moves_the_countries():
    _run(str(DATA / "world_bank_income_groups_fy2026.csv"), apply=True)
    assert PricingZone.objects.get(iso_code="PH").zone == "C"
    _run(str(DATA / "world_bank_income_groups_fy2027.csv"), apply=True)
    assert PricingZone.objects.get(iso_code="PH").zone == "B"
    assert str(PricingZone.objects.get(iso_code="PH").pricing_multiplier) == "0.70"
    assert PricingZone.objects.count() == 219


def test_a_file_without_the_columns_is_refused(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("code,name\nIN,India\n")
    with pytest.raises(CommandError, match="missing columns"):
        _run(str(bad), apply=True)
    assert PricingZone.objects.count() == 0

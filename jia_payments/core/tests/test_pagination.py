"""`?limit=&offset=`: the list body, and nonsense values answered with 400."""

import pytest

from pricing.tests.factories import FeatureFactory
from testsupport.problems import assert_problem

pytestmark = [pytest.mark.django_db, pytest.mark.urls("jia_payments.core.tests.urls")]

THINGS = "/api/test/things/"


def test_list_body_has_count_next_previous_results(user_client):
    for index in range(25):
        FeatureFactory(code=f"f{index:02d}")
    first = user_client.get(THINGS).json()
    assert first["count"] == 25
    assert [row["code"] for row in first["results"]] == [f"f{i:02d}" for i in range(20)]
    assert first["previous"] is None
    assert first["next"] == "http://testserver/api/test/things/?limit=20&offset=20"
    second = user_client.get(THINGS, {"limit": 10, "offset": 20}).json()
    assert [row["code"] for row in second["results"]] == [f"f{i:02d}" for i in range(20, 25)]
    assert second["next"] is None
    assert second["previous"] == "http://testserver/api/test/things/?limit=10&offset=10"
    assert len(user_client.get(THINGS, {"limit": 100}).json()["results"]) == 25
    assert user_client.get(THINGS, {"offset": 1000}).json() == {
        "count": 25,
        "next": None,
        "previous": "http://testserver/api/test/things/?limit=20&offset=980",
        "results": [],
    }


@pytest.mark.parametrize("value", ["0", "-1", "101", str(10**9), "ten", "", "1.5", "²", "5\n", " 5"])
def test_nonsense_limit_is_400(user_client, value):
    response = user_client.get(THINGS, {"limit": value})
    assert_problem(response, 400, "invalid", {"limit": ["Must be a whole number between 1 and 100."]})


@pytest.mark.parametrize("value", ["-1", "abc", str(10**9 + 1), "1e3"])
def test_nonsense_offset_is_400(user_client, value):
    response = user_client.get(THINGS, {"offset": value})
    assert_problem(response, 400, "invalid", {"offset": ["Must be a whole number between 0 and 1000000000."]})

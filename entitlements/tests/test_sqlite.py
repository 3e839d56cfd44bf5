"""`make run`'s embedded SQLite: ids read the same as on PostgreSQL (dashed UUIDs), in a list, a check
and a batch check, over REST and gRPC, and an Idempotency-Key's claim (a raw INSERT binding a uuid).
The suite's other tests run on PostgreSQL, whose driver hands
back UUID objects; SQLite hands back 32 bare hex digits."""

from testsupport.sqlite import answers_on_sqlite

ANSWERS_ON_SQLITE = """
import json

import grpc
from django.conf import settings
from django.core.management import call_command
from django.test import Client

from entitlements.services import family_member_add, plan_grant_create
from jia_payments.core.api.idempotency import _Claim
from jia_payments.core.grpc import server
from jia_payments.protos.entitlement.v1 import entitlement_pb2 as pb
from jia_payments.protos.entitlement.v1 import entitlement_pb2_grpc
from testsupport.grpc import plain


call_command("loaddata", "catalog", verbosity=0)
_, rows = plan_grant_create(user_id="owner_sqlite", plan_id="family_monthly", reason="test")
family_member_add(family_id=rows[0].family_id, user_id="kid_sqlite")

web = Client(headers={"better-auth-token": "kid_sqlite"})
rest = {
    "list": web.get("/api/v1/entitlements/", {"user_id": "kid_sqlite"}).json()["results"],
    "check": web.get("/api/v1/entitlements/check/", {"feature_code": "ad_free"}).json(),
    "batch": web.post(
        "/api/v1/entitlements/check/", {"feature_codes": ["ad_free"]}, content_type="application/json"
    ).json()["results"]["ad_free"],
}
grpc_server_ = server.build(address="127.0.0.1:0", max_workers=2, health_interval=3600)
grpc_server_.start()
with grpc.insecure_channel(f"127.0.0.1:{grpc_server_.port}") as channel:
    stub = entitlement_pb2_grpc.EntitlementServiceStub(channel)
    metadata = [("better-auth-token", "kid_sqlite")]
    listed = stub.ListUserEntitlements(pb.ListUserEntitlementsRequest(), metadata=metadata)
    check = stub.CheckEntitlement(pb.CheckEntitlementRequest(feature_code="ad_free"), metadata=metadata)
    batch = stub.BatchCheckEntitlements(
        pb.BatchCheckEntitlementsRequest(feature_codes=["ad_free"]), metadata=metadata
    )
grpc_server_.stop(None)
claim = _Claim(caller="user:kid_sqlite", key="sqlite-key-1", method="POST", path="/api/v1/payments/")
claims = [claim.take("fingerprint") for _ in range(2)]
answers = {
    "claims": [{"new": new, "effect_id": str(record.effect_id)} for record, new in claims],
    "rows": [{"id": str(row.pk), "family_id": str(row.family_id), "feature": row.feature_id} for row in rows],
    "rest": rest,
    "grpc": {
        "list": [plain(entitlement) for entitlement in listed.entitlements],
        "check": plain(check),
        "batch": plain(batch.results["ad_free"]),
    },
}
print("ANSWERS " + json.dumps(answers, default=str))
"""


def _answers_on_sqlite(tmp_path) -> dict:
    return answers_on_sqlite(ANSWERS_ON_SQLITE, tmp_path)


def test_ids_are_dashed_uuids_in_lists_and_checks_over_rest_and_grpc(tmp_path):
    answers = _answers_on_sqlite(tmp_path)
    [granted] = [row for row in answers["rows"] if row["feature"] == "ad_free"]
    ids = {row["id"] for row in answers["rows"]}
    assert granted["id"].count("-") == 4 and len(ids) == len(answers["rows"])

    for transport in ("rest", "grpc"):
        said = answers[transport]
        assert {row["id"] for row in said["list"]} == ids, transport
        assert {row["family_id"] for row in said["list"]} == {granted["family_id"]}, transport
        for answer in (said["check"], said["batch"]):
            assert answer["has_access"] is True, transport
            assert answer["source"]["entitlement_id"] == granted["id"], transport
            assert answer["source"]["family_id"] == granted["family_id"], transport


def test_an_idempotency_key_is_claimed_once(tmp_path):
    first, second = _answers_on_sqlite(tmp_path)["claims"]
    assert (first["new"], second["new"]) == (True, False)
    assert first["effect_id"] == second["effect_id"] and first["effect_id"].count("-") == 4

"""Assertions on problem-details responses (API.md "Errors"), for every app's API tests."""

import json


def assert_problem(response, status: int, code: str, errors: dict | None = None) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = json.loads(response.content)
    expected_keys = {"type", "title", "status", "detail", "code"} | (
        {"errors"} if errors is not None else set()
    )
    assert set(body) == expected_keys
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"https://docs.jia.app/problems/{code}"
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    if errors is not None:
        assert body["errors"] == errors
    return body

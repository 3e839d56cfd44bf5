"""Concurrent requests to a live server, released together by a barrier (races under test)."""

import json
import threading
import urllib.error
import urllib.request


def concurrent_posts(
    url: str, token: str, body: dict, count: int, *, one_key: bool = True
) -> list[tuple[int, dict, bool]]:
    """`count` POSTs released at once; with one Idempotency-Key (a client retrying) or, with
    `one_key=False`, a key each (separate requests, e.g. two tabs)."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def worker(index: int):
        request = urllib.request.Request(  # noqa: S310 (http to our live server)
            url,
            data=json.dumps(body).encode(),
            method="POST",
            headers={
                "Content-Type": "application/json",
                "better-auth-token": token,
                "Idempotency-Key": "race" if one_key else f"race-{index}",
            },
        )
        barrier.wait()
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 (our live server)
                results[index] = (
                    response.status,
                    json.load(response),
                    "Idempotent-Replayed" in response.headers,
                )
        except urllib.error.HTTPError as error:
            results[index] = (error.code, json.load(error), False)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results

"""Naive baseline: rotate every subaccount with a sequential httpx loop, as a user would script it.

For each key: GET its secrets (the script has to learn the old secret's id), POST a new secret,
DELETE the old one. No Vault (the new value is simply dropped), no verification that the new
secret works, no audit, no crash safety; on a 429 it sleeps for Retry-After and tries again (a
script without even that dies at the first 429). It is what rotator is compared against.

    .venv/bin/python -m bench.naive_baseline --keys 500 --latency 0.02 --rate 50
"""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Iterable
from dataclasses import dataclass

import httpx

from bench._common import PRIMARY, PRIMARY_SECRET, parser, sub_key, sub_secret, table
from rotator.devtools.simulator import VonageSimulator


@dataclass(frozen=True)
class NaiveResult:
    keys: int
    wall: float
    calls: int
    throttled: int
    failures: int
    cpu: float  # CPU seconds of the loop's own thread


def new_secret() -> str:
    """8-25 characters with a lower-case letter, an upper-case letter and a digit."""
    alphabet = string.ascii_letters + string.digits
    return "Aa1" + "".join(secrets.choice(alphabet) for _ in range(21))


def naive_rotate(api_url: str, keys: Iterable[str]) -> NaiveResult:
    """The loop a user writes: list, create, delete; one key after the other."""
    calls = throttled = failures = count = 0
    started, cpu = time.monotonic(), time.thread_time()
    with httpx.Client(base_url=api_url, auth=(PRIMARY, PRIMARY_SECRET), timeout=10) as http:

        def call(method: str, url: str, **kwargs: object) -> httpx.Response:
            nonlocal calls, throttled
            while True:
                calls += 1
                response = http.request(method, url, **kwargs)  # type: ignore[arg-type]
                if response.status_code != 429:
                    response.raise_for_status()
                    return response
                throttled += 1
                time.sleep(float(response.headers.get("Retry-After", "1")))

        for key in keys:
            count += 1
            try:
                listed = call("GET", f"/accounts/{key}/secrets").json()["_embedded"]["secrets"]
                old = [item["id"] for item in listed]
                call("POST", f"/accounts/{key}/secrets", json={"secret": new_secret()})
                for secret_id in old:
                    call("DELETE", f"/accounts/{key}/secrets/{secret_id}")
            except httpx.HTTPError:
                failures += 1
    return NaiveResult(
        count, time.monotonic() - started, calls, throttled, failures, time.thread_time() - cpu
    )


def run_naive(keys: int, *, latency: float, rate: float | None) -> NaiveResult:
    """A fresh simulator with the same settings as rotator's run, and the loop against it."""
    with VonageSimulator(
        primary_api_key=PRIMARY, primary_secret=PRIMARY_SECRET, latency=latency, rate_limit=rate
    ) as sim:
        for n in range(1, keys + 1):
            sim.add_subaccount(sub_key(n), sub_secret(n))
        return naive_rotate(sim.api_url, [sub_key(n) for n in range(1, keys + 1)])


HEADERS = ("tool", "keys", "wall s", "calls", "calls/rotation", "429s", "failures", "CPU s")


def row(result: NaiveResult) -> list[object]:
    per = result.calls / result.keys if result.keys else 0.0
    return [
        "naive httpx loop",
        result.keys,
        result.wall,
        result.calls,
        f"{per:.2f}",
        result.throttled,
        result.failures,
        result.cpu,
    ]


def main() -> None:
    args = parser(__doc__)
    args.add_argument("--keys", type=int, default=500, help="subaccounts (default 500)")
    args.add_argument("--latency", type=float, default=0.02, help="seconds per call (0.02)")
    args.add_argument("--rate", type=float, default=50, help="simulator calls/s limit (50)")
    opts = args.parse_args()
    result = run_naive(opts.keys, latency=opts.latency, rate=opts.rate)
    print(f"## Naive baseline ({opts.keys} keys, latency {opts.latency}s, limit {opts.rate}/s)")
    print()
    print(table(HEADERS, [row(result)]))


if __name__ == "__main__":
    main()

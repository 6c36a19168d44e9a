"""A bounded HTTP burst: N requests, at most C in flight, every one with a deadline.

Used by the backpressure test and for a quick look at a running service::

    python -m bench.load --url http://127.0.0.1:8000/api/generate --token "$TOKEN" -n 50 -c 20

It never retries and never loops: it sends exactly ``n`` requests and reports what came back
(status codes, ``Retry-After`` headers, latencies, transport errors such as timeouts).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Answer:
    """One request's outcome."""

    index: int
    status: int | None  # None: no HTTP answer (see error)
    seconds: float
    retry_after: str | None = None
    body: Any = None
    error: str | None = None


@dataclass
class BurstResult:
    """All answers of a burst, in request order."""

    answers: list[Answer] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def codes(self) -> Counter[int | None]:
        """How many answers per status code (None: transport error)."""
        return Counter(answer.status for answer in self.answers)

    def with_status(self, status: int) -> list[Answer]:
        """The answers with that status code."""
        return [answer for answer in self.answers if answer.status == status]

    def summary(self) -> dict[str, Any]:
        """A JSON-able summary: counts, latency percentiles, Retry-After values seen."""
        latencies = sorted(answer.seconds for answer in self.answers)

        def percentile(q: float) -> float:
            return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 4) if latencies else 0.0

        return {
            "requests": len(self.answers),
            "seconds": round(self.seconds, 3),
            "codes": {
                str(code): count for code, count in sorted(self.codes.items(), key=lambda kv: str(kv[0]))
            },
            "latency_s": {"p50": percentile(0.5), "p95": percentile(0.95), "max": percentile(1.0)},
            "retry_after": sorted({a.retry_after for a in self.answers if a.retry_after is not None}),
            "errors": sorted({a.error for a in self.answers if a.error})[:5],
        }


async def _send(
    client: httpx.AsyncClient, method: str, url: str, index: int, body: Any, headers: dict[str, str]
) -> Answer:
    """One request, timed; a transport error (timeout, reset) becomes an answer without a status."""
    started = time.perf_counter()
    try:
        response = await client.request(method, url, json=body, headers=headers)
    except httpx.HTTPError as exc:
        return Answer(index, None, time.perf_counter() - started, error=f"{type(exc).__name__}: {exc}")
    try:
        payload: Any = response.json()
    except ValueError:
        payload = response.text
    return Answer(
        index,
        response.status_code,
        time.perf_counter() - started,
        response.headers.get("retry-after"),
        payload,
    )


async def burst(
    url: str,
    n: int,
    concurrency: int,
    *,
    method: str = "POST",
    json_body: Callable[[int], Any] | None = None,
    headers: dict[str, str] | None = None,
    headers_for: Callable[[int], dict[str, str]] | None = None,
    timeout_s: float = 30.0,
) -> BurstResult:
    """Send ``n`` requests to ``url``, ``concurrency`` at a time; ``json_body(i)`` builds body i.

    ``headers_for(i)`` adds request i's own headers over ``headers`` (e.g. one user's token per client).
    """
    if n < 1 or concurrency < 1:
        raise ValueError("n and concurrency must be at least 1")
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def one(client: httpx.AsyncClient, index: int) -> Answer:
        async with gate:
            return await _send(
                client,
                method,
                url,
                index,
                json_body(index) if json_body else None,
                {**(headers or {}), **(headers_for(index) if headers_for else {})},
            )

    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as client:
        answers = await asyncio.gather(*(one(client, index) for index in range(n)))
    return BurstResult(answers=list(answers), seconds=time.perf_counter() - started)


def run_burst(url: str, n: int, concurrency: int, **kwargs: Any) -> BurstResult:
    """``burst`` from synchronous code (tests, the CLI)."""
    return asyncio.run(burst(url, n, concurrency, **kwargs))


async def client_burst(
    url: str,
    clients: int,
    per_client: int,
    *,
    method: str = "POST",
    json_body: Callable[[int], Any] | None = None,
    headers_for: Callable[[int], dict[str, str]] | None = None,
    timeout_s: float = 30.0,
) -> BurstResult:
    """``clients`` concurrent clients, each sending its ``per_client`` requests one after another.

    Request ``i`` is request ``i % per_client`` of client ``i // per_client``; ``json_body(i)`` and
    ``headers_for(i)`` build it. At most ``clients`` requests are in flight; answers in request order.
    """
    if clients < 1 or per_client < 1:
        raise ValueError("clients and per_client must be at least 1")
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def one_client(client: httpx.AsyncClient, number: int) -> list[Answer]:
        answers = []
        for index in range(number * per_client, (number + 1) * per_client):
            body = json_body(index) if json_body else None
            headers = headers_for(index) if headers_for else {}
            answers.append(await _send(client, method, url, index, body, headers))
        return answers

    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as client:
        per_client_answers = await asyncio.gather(*(one_client(client, c) for c in range(clients)))
    answers = sorted((a for group in per_client_answers for a in group), key=lambda a: a.index)
    return BurstResult(answers=answers, seconds=time.perf_counter() - started)


def run_client_burst(url: str, clients: int, per_client: int, **kwargs: Any) -> BurstResult:
    """``client_burst`` from synchronous code."""
    return asyncio.run(client_burst(url, clients, per_client, **kwargs))


def main(argv: Sequence[str] | None = None) -> int:
    """Print a burst's summary as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="Target URL.")
    parser.add_argument("-n", type=int, default=20, help="Requests in the burst.")
    parser.add_argument("-c", "--concurrency", type=int, default=10, help="Requests in flight at once.")
    parser.add_argument("--method", default="POST", help="HTTP method.")
    parser.add_argument("--token", default=None, help="Bearer token.")
    parser.add_argument("--prompt", default="A 15-second ad for a solar bike light", help="POST body prompt.")
    parser.add_argument("--timeout", type=float, default=30.0, help="Per-request timeout in seconds.")
    options = parser.parse_args(argv)
    headers = {"Authorization": f"Bearer {options.token}"} if options.token else None
    result = run_burst(
        options.url,
        options.n,
        options.concurrency,
        method=options.method,
        json_body=(lambda i: {"prompt": options.prompt, "seed": i}) if options.method == "POST" else None,
        headers=headers,
        timeout_s=options.timeout,
    )
    print(json.dumps(result.summary(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

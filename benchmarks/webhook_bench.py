"""Form webhook latency under an open-loop load (issue 2).

Starts the app (uvicorn, one process) on a fresh PostgreSQL (or SQLite) database with a
registered form, then sends signed form posts at ``--rate`` requests/s for ``--seconds``,
each at its intended time, measuring latency from that intended time (no coordinated
omission). The raw baseline is ``GET /healthz`` (framework + one database round trip) at
the same rate in the same run. Also reports closed-loop saturation throughput, duplicate
deliveries (every 10th post re-sends an earlier one) and rows stored.

    python benchmarks/webhook_bench.py --engine postgres --rate 200 --seconds 30 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).parent))
from common import emit, fresh_database, percentile, workdir

SEED = 7
SECRET_KEY = "bench-secret-key"


def free_port() -> int:
    """An unused local TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_app(url: str) -> Iterator[str]:
    """The app in one uvicorn process on ``url``, answering; yields its base URL."""
    port = free_port()
    env = {**os.environ, "LEADFLOW_DATABASE_URL": url, "LEADFLOW_SECRET_KEY": SECRET_KEY}
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "leadflow.main:create_app", "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(base + "/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:  # requests still queued: do not wait for them
            server.kill()
            server.wait()


def make_form(url: str) -> tuple[str, str]:
    """Register a form on ``url``; returns (form_key, secret)."""
    env = {**os.environ, "LEADFLOW_DATABASE_URL": url, "LEADFLOW_SECRET_KEY": SECRET_KEY}
    out = subprocess.run([sys.executable, "-m", "leadflow", "forms", "add", "bench-form",
                          "--json"], env=env, capture_output=True, text=True, check=True)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return data["form_key"], data["secret"]


def bodies(n: int, secret: str) -> list[tuple[bytes, str]]:
    """Signed, distinct form posts (some duplicates of one person, as real forms get)."""
    from leadflow.users.security import sign_body

    rng = random.Random(SEED)
    out = []
    for i in range(n):
        person = i if rng.random() > 0.1 else rng.randrange(max(1, i))
        payload = {"submission_id": f"s{i}", "姓名": f"访客{person}",
                   "手机号": f"13{person:09d}", "公司": f"测试公司{person % 500}有限公司",
                   "城市": rng.choice(["北京", "上海", "深圳", "杭州"])}
        body = json.dumps(payload, ensure_ascii=False).encode()
        out.append((body, sign_body(secret, body)))
    return out


async def open_loop(base: str, path: str, rate: float, seconds: float,
                    payloads: list[tuple[bytes, str]] | None) -> dict[str, Any]:
    """Send at a fixed rate; latency from each request's intended send time.

    With payloads, every 10th request re-delivers the payload sent 5 requests earlier
    (a sender's retry), which must create nothing.
    """
    n = int(rate * seconds)
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=500, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        start = time.perf_counter() + 0.2

        async def one(i: int) -> None:
            nonlocal errors
            intended = start + i / rate
            delay = intended - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                if payloads is None:
                    resp = await client.get(path)
                else:
                    body, sig = payloads[i - 5 if i % 10 == 9 else i]
                    resp = await client.post(path, content=body, headers={
                        "X-Leadflow-Signature": sig, "content-type": "application/json"})
                if resp.status_code >= 400:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            latencies.append((time.perf_counter() - intended) * 1000)

        await asyncio.gather(*(one(i) for i in range(n)))
    return {"requests": n, "errors": errors,
            "p50_ms": round(percentile(latencies, 50), 2),
            "p95_ms": round(percentile(latencies, 95), 2),
            "p99_ms": round(percentile(latencies, 99), 2)}


async def closed_loop(base: str, path: str, payloads: list[tuple[bytes, str]],
                      concurrency: int, seconds: float) -> float:
    """Requests/s with ``concurrency`` clients sending back to back."""
    done = 0
    deadline = time.perf_counter() + seconds
    counter = iter(range(len(payloads)))
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                i = next(counter, None)
                if i is None:
                    return
                body, sig = payloads[i]
                await client.post(path, content=body, headers={
                    "X-Leadflow-Signature": sig, "content-type": "application/json"})
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - started)


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", default="postgres", choices=["postgres", "sqlite"])
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    db = fresh_database(args.engine, "lf_bench_webhook", workdir())
    form_key, secret = make_form(db.url)
    with running_app(db.url) as base:
        n = int(args.rate * args.seconds)
        payloads = bodies(n + 20_000, secret)
        path = f"/api/v1/forms/{form_key}"
        asyncio.run(open_loop(base, path, args.rate, 2, payloads[:]))  # warm-up
        baseline = asyncio.run(open_loop(base, "/healthz", args.rate, args.seconds, None))
        webhook = asyncio.run(open_loop(base, path, args.rate, args.seconds,
                                        payloads[int(args.rate * 2):]))
        saturation = asyncio.run(closed_loop(base, path, payloads[n + 500:], 16, 10))
    engine = create_engine(db.url)
    with engine.connect() as conn:
        touchpoints = conn.execute(text("SELECT count(*) FROM touchpoint")).scalar_one()
        distinct = conn.execute(
            text("SELECT count(DISTINCT external_id) FROM touchpoint")).scalar_one()
    engine.dispose()
    db.drop()
    result = {"benchmark": "form_webhook", "engine": args.engine, "rate": args.rate,
              "seconds": args.seconds, "webhook": webhook, "healthz_baseline": baseline,
              "saturation_rps": round(saturation), "touchpoints": touchpoints,
              "duplicate_touchpoints": touchpoints - distinct}
    rows = [[name, str(d["requests"]), str(d["errors"]), str(d["p50_ms"]), str(d["p95_ms"]),
             str(d["p99_ms"])] for name, d in (("form webhook", webhook),
                                                ("GET /healthz (baseline)", baseline))]
    emit(result, as_json=args.json,
         title=f"{args.engine}: {args.rate:g} req/s for {args.seconds:g}s; "
               f"saturation {saturation:,.0f} req/s; duplicates {touchpoints - distinct}",
         headers=["endpoint", "requests", "errors", "p50 ms", "p95 ms", "p99 ms"], rows=rows)


if __name__ == "__main__":
    main()

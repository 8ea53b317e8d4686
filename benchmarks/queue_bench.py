"""The work queue (issue 5), on PostgreSQL, over loopback HTTP to one uvicorn process.

Setup (seed 5): ``--reps`` reps (default 200) in teams of 10, each with an API token, and
``--tasks`` open call tasks (default 1,000,000) spread evenly over them, on as many leads, in
the queue's buckets with random ranks and due times in the last hours.

* **next, open loop**: every rep presses Next (``GET /api/v1/queue/next``) at a human pace —
  20–60 s between presses (random) — and records a disposition 5–15 s after each card
  (``POST /api/v1/tasks/{id}/disposition``), for ``--seconds`` (default 120). Latency is
  measured from each request's intended send time (no coordinated omission). Every claim is
  logged: a task handed to two reps, or to a rep who does not own it, is a double claim.
* **raw baseline**: the same claim as one psycopg ``SELECT … ORDER BY bucket, rank DESC,
  due_at LIMIT 1 FOR UPDATE SKIP LOCKED`` + ``UPDATE`` + commit, 8 threads back to back.
* **saturation**: 16 clients, each a different rep, press Next and hand the card back
  (``POST /api/v1/queue/release/{id}``) back to back: Next calls per second.
* **event → front of the queue**: ``--hot-reps`` reps (default 10), each alone in a team
  reached by its own routing rule, each with 2,000 older tasks. A grade-C lead of a rep's
  region visits the pricing page (the tracking beacon ``POST /t/v``); the organisation's
  rule set grades a website visitor A, so the visit re-scores the lead, crosses the MQL
  line, routes it to the rep, enrolls it in the hot-lead cadence and queues its first call
  as a new hot lead. The rep then presses Next. The figure is the time from the beacon's
  intended send to the card of *that* lead coming back; every event is checked.

    python benchmarks/queue_bench.py --json
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).parent))

from common import (
    console,
    emit,
    fresh_database,
    percentile,
    use_database,
)
from webhook_bench import SECRET_KEY, running_app

SEED = 5
BROWSER = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/130.0 Safari/537.36")
CLAIM_SQL = (
    "SELECT id FROM task WHERE owner_id = %s AND status = 'open' "
    "AND due_at <= now() ORDER BY bucket, rank DESC, due_at LIMIT 1 FOR UPDATE SKIP LOCKED")


def populate(url: str, reps: int, tasks: int, hot_reps: int) -> dict[str, Any]:
    """Reps with tokens, leads and open tasks; hot reps with their rules and cadence."""
    from sqlalchemy import text

    from leadflow.cadences import service as cadences_service
    from leadflow.db import bulk_insert, session_scope
    from leadflow.leads.models import Lead
    from leadflow.routing import service as routing_service
    from leadflow.routing.models import RepProfile
    from leadflow.routing.schemas import RuleConditions, RuleIn, TeamPolicyIn
    from leadflow.scoring import service as scoring_service
    from leadflow.scoring.models import LeadScore
    from leadflow.scoring.schemas import Condition, Override
    from leadflow.users import service as users_service
    from leadflow.users.models import Team, User

    rng = random.Random(SEED)
    now = datetime.now(UTC)
    with use_database(url):
        with session_scope() as session:
            users = []
            for t in range((reps + 9) // 10):
                team = Team(name=f"team {t}", kind="sales", created_at=now)
                session.add(team)
                session.flush()
                users += [User(email=f"rep{t}-{r}@bench.local", name=f"rep {t}-{r}",
                               role="rep", team_id=team.id, locale="zh",
                               timezone="Asia/Shanghai", is_active=True, created_at=now)
                          for r in range(min(10, reps - 10 * t))]
            hot = []
            for h in range(hot_reps):
                team = Team(name=f"hot team {h}", kind="sales", created_at=now)
                session.add(team)
                session.flush()
                routing_service.save_team_policy(session=session, team_id=team.id, now=now,
                                                 data=TeamPolicyIn(capacity={"A+": 5000,
                                                                             "A": 5000}))
                routing_service.create_rule(session=session, actor_id=None, now=now,
                                            data=RuleIn(name=f"hot {h}", team_id=team.id,
                                                        conditions=RuleConditions(
                                                            regions=[f"H{h}"])))
                rep = User(email=f"hot{h}@bench.local", name=f"hot {h}", role="rep",
                           team_id=team.id, locale="zh", timezone="Asia/Shanghai",
                           is_active=True, created_at=now)
                hot.append(rep)
            session.add_all(users + hot)
            session.flush()
            bulk_insert(session, RepProfile.__table__, [  # type: ignore[arg-type]
                {"user_id": u.id, "presence": "available", "capacity": {}, "weight": 1.0,
                 "languages": [], "product_lines": [], "work_start_minute": None,
                 "work_end_minute": None, "holiday_calendar": None, "updated_at": now}
                for u in users + hot])
            tokens = {u.id: users_service.issue_api_token(session=session, user=u,
                                                          name="bench", now=now)
                      for u in users + hot}
            rep_ids = [u.id for u in users]
            hot_ids = [u.id for u in hot]
            cadences_service.install_preset(session=session, key="7in7", actor_id=None,
                                            now=now, auto_enroll=True, grades=["A+", "A"])
            doc = scoring_service.current_ruleset(session=session).document.model_copy(deep=True)
            doc.grading.overrides.append(Override(
                label="Website visitor", grade="A", mode="set",
                when=[Condition(field="activity.web_visit", op="gte", value=1)]))
            scoring_service.save_ruleset(session=session, document=doc, note="bench",
                                         actor_id=None, now=now)
        owners = rep_ids * (tasks // len(rep_ids)) + rep_ids[: tasks % len(rep_ids)]
        backlog = [h for h in hot_ids for _ in range(2000)]
        events_per_rep = 200
        with session_scope() as session:
            bulk_insert(session, Lead.__table__, [  # type: ignore[arg-type]
                {"name": f"lead {i}", "status": "working", "owner_id": owner, "tags": [],
                 "custom_fields": {}, "do_not_contact": False, "recycle_count": 0,
                 "first_touch_at": now, "created_at": now, "updated_at": now}
                for i, owner in enumerate(owners + backlog)])
            first_fresh = int(session.scalar(text("SELECT max(id) FROM lead")) or 0) + 1
            fresh = [{"name": f"visitor {h}-{k}", "status": "new", "region": f"H{h}",
                      "tags": [], "custom_fields": {}, "do_not_contact": False,
                      "recycle_count": 0, "created_at": now, "updated_at": now}
                     for h in range(hot_reps) for k in range(events_per_rep)]
            bulk_insert(session, Lead.__table__, fresh)  # type: ignore[arg-type]
            bulk_insert(session, LeadScore.__table__, [  # type: ignore[arg-type]
                {"lead_id": first_fresh + i, "fit": 10.0, "engagement": 5.0, "score": 25.0,
                 "grade": "C", "is_mql": False, "first_grade": "C", "ruleset_version": 1,
                 "scored_at": now} for i in range(len(fresh))])
        with session_scope() as session:
            raw = session.connection().connection.driver_connection
            assert raw is not None
            with raw.cursor() as cur, cur.copy(
                    "COPY task (lead_id, owner_id, kind, channel, automatic, status, due_at, "
                    "bucket, rank, attempt_no, note, skips, created_at) FROM STDIN") as copy:
                for lead_id, owner in enumerate(owners + backlog, start=1):
                    copy.write_row((lead_id, owner, "step", "call", False, "open",
                                    now - timedelta(minutes=rng.randint(1, 600)),
                                    rng.choice((2, 3, 4, 4, 4)), rng.random() * 5, 1, "", 0,
                                    now))
        with session_scope() as session:
            session.execute(text("ANALYZE"))
    return {"tokens": tokens, "reps": rep_ids, "hot": hot_ids, "first_fresh": first_fresh,
            "events_per_rep": events_per_rep}


async def open_loop_next(base: str, reps: list[int], tokens: dict[int, str], seconds: float
                         ) -> dict[str, Any]:
    """Reps press Next every 20–60 s and record a disposition 5–15 s after each card."""
    rng = random.Random(SEED)
    nexts: list[float] = []
    disps: list[float] = []
    claims: list[tuple[int, int]] = []
    errors = 0
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        start = time.perf_counter() + 0.5
        end = start + seconds

        async def rep(rep_id: int) -> None:
            nonlocal errors
            headers = {"Authorization": f"Bearer {tokens[rep_id]}"}
            intended = start + rng.uniform(0, 40)
            while intended < end:
                await asyncio.sleep(max(intended - time.perf_counter(), 0))
                resp = await client.get("/api/v1/queue/next", headers=headers)
                nexts.append((time.perf_counter() - intended) * 1000)
                if resp.status_code != 200:
                    errors += resp.status_code != 204
                    intended += rng.uniform(20, 60)
                    continue
                task_id = resp.json()["task_id"]
                claims.append((task_id, rep_id))
                intended += rng.uniform(5, 15)
                await asyncio.sleep(max(intended - time.perf_counter(), 0))
                resp = await client.post(f"/api/v1/tasks/{task_id}/disposition",
                                         headers=headers, json={"disposition": "no_answer"})
                disps.append((time.perf_counter() - intended) * 1000)
                errors += resp.status_code != 200
                intended += rng.uniform(15, 45)

        await asyncio.gather(*(rep(r) for r in reps))
    per_task = Counter(t for t, _r in claims)
    return {"next_requests": len(nexts), "errors": errors,
            "next_p50_ms": round(percentile(nexts, 50), 2),
            "next_p95_ms": round(percentile(nexts, 95), 2),
            "next_p99_ms": round(percentile(nexts, 99), 2),
            "disposition_p50_ms": round(percentile(disps, 50), 2),
            "disposition_p99_ms": round(percentile(disps, 99), 2),
            "claims": claims, "tasks_claimed_twice": sum(1 for n in per_task.values() if n > 1)}


def raw_claims(url: str, reps: list[int], seconds: float, threads: int = 8) -> dict[str, Any]:
    """The claim as raw SQL, back to back from ``threads`` connections."""
    dsn = url.replace("postgresql+psycopg", "postgresql")
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def work(k: int) -> None:
        rng = random.Random(k)
        mine: list[float] = []
        with psycopg.connect(dsn) as conn:
            while time.perf_counter() < deadline:
                rep = rng.choice(reps)
                t0 = time.perf_counter()
                row = conn.execute(CLAIM_SQL, (rep,)).fetchone()
                if row:
                    conn.execute("UPDATE task SET status = 'claimed', claimed_by_id = %s, "
                                 "claimed_at = now() WHERE id = %s", (rep, row[0]))
                conn.commit()
                mine.append((time.perf_counter() - t0) * 1000)
                # Put it back so the data stays the same for the next part.
                if row:
                    conn.execute("UPDATE task SET status = 'open', claimed_by_id = NULL, "
                                 "claimed_at = NULL WHERE id = %s", (row[0],))
                    conn.commit()
        with lock:
            latencies.extend(mine)

    pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return {"claims": len(latencies), "per_s": round(len(latencies) / seconds, 1),
            "p50_ms": round(percentile(latencies, 50), 3),
            "p99_ms": round(percentile(latencies, 99), 3)}


async def saturation(base: str, reps: list[int], tokens: dict[int, str],
                     seconds: float, clients: int = 16) -> float:
    """Next calls per second, 16 reps back to back (each card handed back at once)."""
    done = 0
    deadline = time.perf_counter() + seconds
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:

        async def worker(rep_id: int) -> None:
            nonlocal done
            headers = {"Authorization": f"Bearer {tokens[rep_id]}"}
            while time.perf_counter() < deadline:
                resp = await client.get("/api/v1/queue/next", headers=headers)
                done += 1
                if resp.status_code == 200:
                    await client.post(f"/api/v1/queue/release/{resp.json()['task_id']}",
                                      headers=headers)

        started = time.perf_counter()
        await asyncio.gather(*(worker(r) for r in reps[:clients]))
        return done / (time.perf_counter() - started)


async def events_to_front(base: str, setup: dict[str, Any], seconds: float) -> dict[str, Any]:
    """A pricing-page visit per rep every ~2 s; then that rep's Next must show the lead."""
    from leadflow.config import get_settings
    from leadflow.messaging.service import visitor_id

    # Visitor ids are signed with the app's key: the same one running_app gives the server.
    os.environ["LEADFLOW_SECRET_KEY"] = SECRET_KEY
    get_settings.cache_clear()

    hot: list[int] = setup["hot"]
    tokens: dict[int, str] = setup["tokens"]
    per_rep: int = setup["events_per_rep"]
    latencies: list[float] = []
    misses: list[tuple[int, int | None]] = []
    errors = 0
    rng = random.Random(SEED)
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        start = time.perf_counter() + 0.5
        end = start + seconds

        async def stream(h: int, rep_id: int) -> None:
            nonlocal errors
            headers = {"Authorization": f"Bearer {tokens[rep_id]}"}
            intended = start + rng.uniform(0, 2)
            for k in range(per_rep):
                if intended >= end:
                    return
                lead_id = setup["first_fresh"] + h * per_rep + k
                await asyncio.sleep(max(intended - time.perf_counter(), 0))
                beacon = await client.post("/t/v", content=(
                    f'{{"v": "{visitor_id(lead_id)}", "u": "https://www.example.com/pricing",'
                    f' "k": "visit", "s": 0}}'), headers={"User-Agent": BROWSER,
                                                       "Content-Type": "text/plain"})
                card = await client.get("/api/v1/queue/next", headers=headers)
                latencies.append((time.perf_counter() - intended) * 1000)
                errors += beacon.status_code != 204
                got = card.json()["lead_id"] if card.status_code == 200 else None
                if got != lead_id:
                    misses.append((lead_id, got))
                if card.status_code == 200:
                    await client.post(f"/api/v1/tasks/{card.json()['task_id']}/disposition",
                                      headers=headers, json={"disposition": "qualified"})
                intended += rng.uniform(1.5, 2.5)

        await asyncio.gather(*(stream(h, r) for h, r in enumerate(hot)))
    return {"events": len(latencies), "errors": errors, "not_first": len(misses),
            "p50_ms": round(percentile(latencies, 50), 2),
            "p95_ms": round(percentile(latencies, 95), 2),
            "p99_ms": round(percentile(latencies, 99), 2)}


def double_claims_in_db(url: str, claims: list[tuple[int, int]]) -> int:
    """Claims of a task by someone other than its owner (the log against the database)."""
    dsn = url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(dsn) as conn:
        owners: dict[int, int | None] = dict(conn.execute(
            "SELECT id, owner_id FROM task WHERE id = ANY(%s)",
            ([t for t, _r in claims],)).fetchall())
    return sum(1 for t, r in claims if owners.get(t) != r)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--hot-reps", type=int, default=10)
    parser.add_argument("--event-seconds", type=float, default=60)
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from common import workdir

    db = fresh_database("postgres", "bench_queue", workdir())
    result: dict[str, Any] = {"engine": "postgres", "reps": args.reps, "tasks": args.tasks,
                              "seed": SEED}
    try:
        started = time.perf_counter()
        setup = populate(db.url, args.reps, args.tasks, args.hot_reps)
        console.print(f"set up {args.tasks:,} tasks in {time.perf_counter() - started:.0f} s")
        raw = raw_claims(db.url, setup["reps"], 10)
        result["raw_claim"] = raw
        emit(raw, as_json=False, title="raw SKIP LOCKED claim (8 threads, back to back)",
             rows=[[k, str(v)] for k, v in raw.items()], headers=["", ""])
        with running_app(db.url) as base:
            loop = asyncio.run(open_loop_next(base, setup["reps"], setup["tokens"],
                                              args.seconds))
            claims = loop.pop("claims")
            loop["not_owner_claims"] = double_claims_in_db(db.url, claims)
            loop["p50_vs_raw"] = round(loop["next_p50_ms"] / max(raw["p50_ms"], 1e-6), 1)
            result["next_open_loop"] = loop
            emit(loop, as_json=False, title=f"{args.reps} reps pressing Next over "
                     f"{args.tasks:,} open tasks", rows=[[k, str(v)] for k, v in loop.items()],
                 headers=["", ""])
            sat = asyncio.run(saturation(base, setup["reps"], setup["tokens"], 15))
            result["next_saturation_per_s"] = round(sat, 1)
            console.print(f"saturation: {sat:.0f} Next/s (16 clients, closed loop)")
            ev = asyncio.run(events_to_front(base, setup, args.event_seconds))
            result["event_to_front"] = ev
            emit(ev, as_json=False, title="pricing visit → re-scored → routed → front of "
                 "the rep's queue", rows=[[k, str(v)] for k, v in ev.items()], headers=["", ""])
    finally:
        if not args.keep:
            db.drop()
    if args.json:
        import json

        print(json.dumps(result))


if __name__ == "__main__":
    main()

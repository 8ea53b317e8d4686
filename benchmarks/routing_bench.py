"""Routing and assignment (issue 4).

Builds an organisation of ``--teams`` teams (default 20) of ``--reps`` reps each (default 10,
so 200 reps), round-robin, around-the-clock hours, daily capacity per grade well above the
load, one routing rule per team (by region), and ``--leads`` newly qualified leads (default
100,000; grades A+/A/B, regions spread evenly, seed 11). Then, per engine, in the same run:

* **batch**: ``leadflow.routing.jobs.route_all_due`` (5,000-lead chunks, one transaction
  each), ``--runs`` times, resetting the assignments in between; checked after every run:
  capacity violations, double assignments (a lead with more than one ownership), leads
  without owner or pool, and the round-robin spread (max |leads − ideal| per rep);
* **raw baseline**: one ``UPDATE … FROM`` that gives every due lead an owner round-robin by
  region — the floor of writing an owner per lead, with no rules, capacity or ledger;
* **50 writers** (PostgreSQL): 50 threads routing 100-lead chunks at once until nothing is
  due, with the same checks, beside 50 threads of a raw ``SELECT … FOR UPDATE SKIP LOCKED``
  + ``UPDATE`` of the owner;
* **arrival** (PostgreSQL): the app (uvicorn, one process) receives signed form webhooks at
  ``--rate`` per second (default 20), open loop, all routed into one team (the worst case
  for its lock); each answer comes after the lead is captured, scored, routed and
  committed, so the latency from the intended send time is arrival → assigned. Every lead
  is checked to have an owner afterwards. Baseline: ``GET /healthz`` at the same rate; then
  the closed-loop saturation rate of the webhook (16 clients back to back).

    python benchmarks/routing_bench.py --engines sqlite,postgres --runs 3 --json
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import threading
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).parent))
from common import (
    Database,
    Timer,
    analyze,
    console,
    emit,
    fresh_database,
    median,
    use_database,
    workdir,
)
from webhook_bench import bodies, closed_loop, make_form, open_loop, running_app

NOW = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
SEED = 11
GRADES = ("A+", "A", "A", "B")


def populate(url: str, teams: int, reps: int, leads: int) -> list[int]:
    """Teams with policies and a region rule each, reps around the clock, due leads."""
    from leadflow.db import bulk_insert, session_scope
    from leadflow.leads.models import Lead
    from leadflow.routing import service
    from leadflow.routing.models import RepProfile
    from leadflow.routing.schemas import RuleConditions, RuleIn, TeamPolicyIn
    from leadflow.scoring.models import LeadScore
    from leadflow.users.models import Team, User

    rng = random.Random(SEED)
    with use_database(url), session_scope() as session:
        for t in range(teams):
            team = Team(name=f"team {t}", kind="sales", created_at=NOW)
            session.add(team)
            session.flush()
            service.save_team_policy(session=session, team_id=team.id, now=NOW, data=TeamPolicyIn(
                capacity={"A+": 2000, "A": 2000, "B": 2000}))
            service.create_rule(session=session, actor_id=None, now=NOW, data=RuleIn(
                name=f"region {t}", conditions=RuleConditions(regions=[f"R{t}"]),
                team_id=team.id))
            users = [{"email": f"rep{t}-{r}@bench.local", "name": f"rep {t}-{r}", "role": "rep",
                      "team_id": team.id, "locale": "zh", "timezone": "Asia/Shanghai",
                      "is_active": True, "created_at": NOW} for r in range(reps)]
            bulk_insert(session, User.__table__, users)  # type: ignore[arg-type]
        user_ids = list(session.scalars(text("SELECT id FROM user_account ORDER BY id")))
        bulk_insert(session, RepProfile.__table__, [  # type: ignore[arg-type]
            {"user_id": u, "presence": "available", "capacity": {}, "weight": 1.0,
             "languages": [], "product_lines": [], "work_start_minute": None,
             "work_end_minute": None, "holiday_calendar": "CN", "updated_at": NOW}
            for u in user_ids])
    with use_database(url), session_scope() as session:
        rows = [{"id": i, "name": f"lead {i}", "region": f"R{i % teams}", "status": "new",
                 "tags": [], "custom_fields": {}, "do_not_contact": False, "recycle_count": 0,
                 "created_at": NOW, "updated_at": NOW, "route_due_at": NOW}
                for i in range(1, leads + 1)]
        bulk_insert(session, Lead.__table__, rows)  # type: ignore[arg-type]
        bulk_insert(session, LeadScore.__table__, [  # type: ignore[arg-type]
            {"lead_id": i, "fit": 50.0, "engagement": 50.0, "score": 80.0,
             "grade": rng.choice(GRADES), "is_mql": True, "first_grade": "A",
             "ruleset_version": 0, "scored_at": NOW} for i in range(1, leads + 1)])
        if leads and session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT setval('lead_id_seq', :n)"), {"n": leads})
    analyze(url)
    return user_ids


def reset(url: str) -> None:
    """Undo every assignment: the same leads are due again."""
    from leadflow.db import session_scope

    with use_database(url), session_scope() as session:
        for table in ("sla_breach", "notice", "ownership", "activity", "rep_day_load",
                      "rep_pass"):
            session.execute(text(f"DELETE FROM {table}"))
        session.execute(text("UPDATE team_policy SET virtual_pass = 0"))
        session.execute(text(
            "UPDATE lead SET owner_id = NULL, team_id = NULL, pool_id = NULL, status = 'new', "
            "route_due_at = :now, owned_at = NULL, protected_until = NULL"), {"now": NOW})
        session.execute(text("DELETE FROM lead_pool"))
    analyze(url)


def checks(url: str, reps: int) -> dict[str, Any]:
    """Correctness of the run: violations, double assignments, round-robin spread."""
    from leadflow.db import session_scope
    from leadflow.routing import invariants

    with use_database(url), session_scope() as session:
        found = invariants.check(session=session)
        per_lead = Counter(session.execute(text("SELECT lead_id FROM ownership")).scalars())
        owners = session.execute(text(
            "SELECT team_id, owner_id, count(*) FROM lead WHERE owner_id IS NOT NULL "
            "GROUP BY team_id, owner_id")).all()
        due = session.execute(text("SELECT count(*) FROM lead WHERE route_due_at IS NOT NULL")
                              ).scalar_one()
    per_team: dict[int, list[int]] = {}
    for team_id, _owner, n in owners:
        per_team.setdefault(team_id, []).append(n)
    spread = max((abs(n - sum(ns) / reps) for ns in per_team.values() for n in ns), default=0)
    return {"over_capacity": found["over_capacity"], "unowned": found["unowned"],
            "double_open": found["double_open"],
            "double_assigned": sum(1 for n in per_lead.values() if n > 1),
            "assigned": sum(n for _t, _o, n in owners), "still_due": due,
            "max_spread_from_ideal": round(spread, 3)}


def raw_assign(url: str, teams: int, reps: int) -> float:
    """Seconds for one UPDATE giving every due lead an owner, round-robin per region."""
    from leadflow.db import session_scope

    with use_database(url), session_scope() as session, Timer() as t:
        session.execute(text(
            "WITH slot AS (SELECT id AS user_id, team_id, "
            "  row_number() OVER (PARTITION BY team_id ORDER BY id) - 1 AS k FROM user_account), "
            "numbered AS (SELECT l.id, r.team_id, "
            "  (row_number() OVER (PARTITION BY l.region ORDER BY l.id) - 1) % :reps AS k "
            "  FROM lead l JOIN routing_rule r ON r.name = 'region ' || substr(l.region, 2) "
            "  WHERE l.route_due_at IS NOT NULL) "
            "UPDATE lead SET owner_id = slot.user_id, team_id = numbered.team_id, "
            "  route_due_at = NULL, status = 'assigned' "
            "FROM numbered JOIN slot ON slot.team_id = numbered.team_id AND slot.k = numbered.k "
            "WHERE lead.id = numbered.id"), {"reps": reps})
    return t.seconds


def run_batch(db: Database, args: argparse.Namespace, leads: int) -> dict[str, Any]:
    """Batch routing runs beside the raw UPDATE baseline."""
    from leadflow.routing import jobs

    routed, raw, checked = [], [], []
    for _ in range(args.runs):
        reset(db.url)
        raw_s = raw_assign(db.url, args.teams, args.reps)
        raw.append(leads / raw_s)
        reset(db.url)
        with use_database(db.url), Timer() as t:
            summary = jobs.route_all_due(now=NOW)
        assert summary.leads == leads, summary.as_dict()
        routed.append(leads / t.seconds)
        checked.append(checks(db.url, args.reps))
    rate, base = median(routed), median(raw)
    return {"leads_per_s": round(rate), "runs": [round(r) for r in routed],
            "raw_update_leads_per_s": round(base), "raw_runs": [round(r) for r in raw],
            "ratio_raw_over_routing": round(base / rate, 2), "checks": checked}


def run_writers(db: Database, args: argparse.Namespace, leads: int) -> dict[str, Any]:
    """50 concurrent routers vs 50 raw SKIP LOCKED writers on the same leads."""
    from leadflow.db import get_engine, session_scope
    from leadflow.routing import service

    def threads(work: Any) -> float:
        errors: list[BaseException] = []
        barrier = threading.Barrier(args.writers)

        def loop() -> None:
            try:
                barrier.wait()
                while work():
                    pass
            except BaseException as exc:
                errors.append(exc)

        pool = [threading.Thread(target=loop) for _ in range(args.writers)]
        with Timer() as t:
            for th in pool:
                th.start()
            for th in pool:
                th.join()
        if errors:
            raise errors[0]
        return t.seconds

    reset(db.url)
    # One connection per writer, as 50 worker threads or processes would have.
    os.environ["LEADFLOW_DB_POOL_SIZE"] = str(args.writers)
    with use_database(db.url):
        get_engine().dispose()

        def routed_chunk() -> bool:
            with session_scope() as session:
                return service.route_due(session=session, now=NOW, limit=100).leads > 0

        seconds = threads(routed_chunk)
    checked = checks(db.url, args.reps)
    reset(db.url)
    counter = iter(range(10**9))
    with use_database(db.url):
        user_ids = [int(u) for u in get_engine().connect().execute(
            text("SELECT id FROM user_account ORDER BY id")).scalars()]

        def raw_chunk() -> bool:
            with session_scope() as session:
                ids = list(session.execute(text(
                    "SELECT id FROM lead WHERE route_due_at IS NOT NULL LIMIT 100 "
                    "FOR UPDATE SKIP LOCKED")).scalars())
                if not ids:
                    return False
                owners = [user_ids[next(counter) % len(user_ids)] for _ in ids]
                session.execute(text(
                    "UPDATE lead SET owner_id = o.owner, route_due_at = NULL FROM "
                    "unnest(CAST(:ids AS int[]), CAST(:owners AS int[])) AS o(id, owner) "
                    "WHERE lead.id = o.id"), {"ids": ids, "owners": owners})
                return True

        raw_seconds = threads(raw_chunk)
    return {"writers": args.writers, "leads_per_s": round(leads / seconds),
            "raw_skip_locked_leads_per_s": round(leads / raw_seconds),
            "ratio_raw_over_routing": round(seconds / raw_seconds, 2), "checks": checked}


def run_arrival(args: argparse.Namespace) -> dict[str, Any]:
    """Webhook arrival → captured, scored, routed and committed, open loop."""
    db = fresh_database("postgres", "lf_bench_arrival", workdir())
    populate(db.url, args.teams, args.reps, 0)
    with use_database(db.url):
        from leadflow.db import session_scope
        from leadflow.routing import service
        from leadflow.routing.schemas import RuleIn
        from leadflow.users.models import Team

        with session_scope() as session:
            first = session.scalars(text("SELECT id FROM team ORDER BY id LIMIT 1")).one()
            service.create_rule(session=session, actor_id=None, now=NOW, data=RuleIn(
                name="web leads", team_id=session.get(Team, first).id))  # type: ignore[union-attr]
    form_key, secret = make_form(db.url)
    with running_app(db.url) as base:
        n = int(args.rate * args.seconds)
        payloads = bodies(n + 3000, secret)
        path = f"/api/v1/forms/{form_key}"
        asyncio.run(open_loop(base, path, args.rate, 2, payloads[:]))  # warm-up
        baseline = asyncio.run(open_loop(base, "/healthz", args.rate, args.seconds, None))
        warm = int(args.rate * 2)
        arrival = asyncio.run(open_loop(base, path, args.rate, args.seconds,
                                        payloads[warm:warm + n]))
        # Head-room: the same endpoint back to back (16 clients), on fresh people.
        saturation = asyncio.run(closed_loop(base, path, payloads[warm + n:], 16, 10))
    with use_database(db.url), session_scope() as session:
        leads = session.execute(text("SELECT count(*) FROM lead WHERE status <> 'merged'")
                                ).scalar_one()
        owned = session.execute(text("SELECT count(*) FROM lead WHERE owner_id IS NOT NULL")
                                ).scalar_one()
        due = session.execute(text("SELECT count(*) FROM lead WHERE route_due_at IS NOT NULL")
                              ).scalar_one()
    db.drop()
    return {"rate": args.rate, "seconds": args.seconds, "arrival_to_assigned": arrival,
            "healthz_baseline": baseline, "saturation_rps": round(saturation),
            "leads": leads, "owned": owned, "still_due": due}


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--parts", default="batch,writers,arrival")
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--teams", type=int, default=20)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--writers", type=int, default=50)
    parser.add_argument("--rate", type=float, default=20)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    result: dict[str, Any] = {"benchmark": "routing", "leads": args.leads,
                              "reps": args.teams * args.reps, "teams": args.teams,
                              "seed": SEED}
    rows: list[list[str]] = []
    for engine in args.engines.split(","):
        engine = engine.strip()
        if not parts & {"batch", "writers"} or (engine == "sqlite" and "batch" not in parts):
            continue
        db = fresh_database(engine, "lf_bench_routing", workdir())
        try:
            with Timer() as setup:
                populate(db.url, args.teams, args.reps, args.leads)
            out: dict[str, Any] = {"setup_s": round(setup.seconds, 1)}
            if "batch" in parts:
                out["batch"] = b = run_batch(db, args, args.leads)
                console.print(engine, "batch", b)
                rows.append([engine, "batch route", f"{b['leads_per_s']:,}",
                             f"{b['raw_update_leads_per_s']:,}",
                             f"{b['ratio_raw_over_routing']}x", _violations(b["checks"])])
            if "writers" in parts and engine == "postgres":
                out["writers"] = w = run_writers(db, args, args.leads)
                console.print(engine, "writers", w)
                rows.append([engine, f"{args.writers} writers", f"{w['leads_per_s']:,}",
                             f"{w['raw_skip_locked_leads_per_s']:,}",
                             f"{w['ratio_raw_over_routing']}x", _violations([w["checks"]])])
            result[engine] = out
        finally:
            db.drop()
    if "arrival" in parts and "postgres" in args.engines:
        result["arrival"] = a = run_arrival(args)
        d, h = a["arrival_to_assigned"], a["healthz_baseline"]
        rows.append(["postgres", f"webhook → assigned p50/p99 ms @{args.rate:g}/s",
                     f"{d['p50_ms']} / {d['p99_ms']}", f"{h['p50_ms']} / {h['p99_ms']}",
                     "", f"errors {d['errors']}; {a['owned']}/{a['leads']} owned; "
                         f"saturation {a['saturation_rps']}/s"])
    emit(result, as_json=args.json, title=f"routing {args.leads:,} leads, "
         f"{args.teams * args.reps} reps in {args.teams} teams (median of {args.runs})",
         headers=["engine", "what", "leadflow", "raw baseline", "ratio", "checks"], rows=rows)


def _violations(checked: list[dict[str, Any]]) -> str:
    worst = {k: max(c[k] for c in checked) for k in checked[0]}
    return (f"cap {worst['over_capacity']}, double {worst['double_assigned']}, "
            f"unowned {worst['unowned']}, due {worst['still_due']}, "
            f"spread ±{worst['max_spread_from_ideal']}")


if __name__ == "__main__":
    main()

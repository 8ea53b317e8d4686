"""Batch re-score and one-lead re-score (issue 3).

Builds a database of ``--leads`` leads (default 1,000,000) with one touchpoint each and the
demo's planted engagement history (about 1.5 engagement events per lead), trains a model on a
sample of it and makes it active. Then, per engine, in the same run:

* **batch re-score**: ``leadflow.scoring.jobs.rescore_all`` after a rule change (so every
  score moves), ``--runs`` times; the first scoring (every row inserted, every event read)
  is reported too, and one re-score after a change of the engagement points (the stored
  engagement totals no longer hold, so every lead's events are read again);
* **raw baseline**: an UPDATE of one column (``score``) of the same rows with new values, in
  the same 50,000-row transactions, through the fastest plain path each engine has
  (``executemany`` on SQLite; binary ``COPY`` into a temporary table and one
  ``UPDATE … FROM`` on PostgreSQL) — the floor of writing anything per lead;
* **score rows alone**: every stored score row rewritten in full through the same path,
  nothing read or scored in the timing — how much of the ratio writing a score costs;
* **all writes alone**: one more rule change, re-scored chunk by chunk with only the writes
  timed (score rows, timeline rows, outbox events, routing due times, commits) — the job's
  cost on its one writer if reading and scoring were free;
* **one lead** (PostgreSQL by default): an engagement event is inserted on a random lead (not
  timed), then ``rescore_lead`` re-scores and stores the lead, timed with and without the
  commit, next to a raw baseline of a one-row UPDATE (and its commit).

    python benchmarks/rescore_bench.py --engines sqlite,postgres --leads 1000000 --runs 3 --json
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from common import (
    Timer,
    analyze,
    emit,
    fresh_database,
    median,
    percentile,
    use_database,
    workdir,
)

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
SEED = 5
CHUNK = 50_000
INDUSTRIES = ("教育", "软件/信息技术", "金融", "制造业", "零售/电商", "医疗健康", "物流", None)
TITLES = ("销售总监", "市场经理", "总经理", "CEO", "IT经理", "市场专员", "工程师", "采购经理", None)
PROVINCES = ("上海", "北京", "广东", "浙江", "四川", "湖北", None)
CHANNELS = ("seo", "sem", "content", "webinar", "offline_event", "community_group", "referral",
            "paid_consultation", "gift", "social")


def populate(url: str, n: int) -> dict[str, int]:
    """Campaigns, ``n`` leads with a touchpoint each, planted activities and statuses."""
    from leadflow.campaigns.models import Campaign
    from leadflow.db import bulk_insert, session_scope
    from leadflow.demo.engagement import plant
    from leadflow.leads.models import Activity, Lead, Touchpoint

    rng = random.Random(SEED)
    with use_database(url), session_scope() as session:
        campaign_ids = {}
        for channel in CHANNELS:
            row = Campaign(name=f"bench {channel}", channel=channel, is_online=True, cost=0,
                           currency="CNY", created_at=NOW)
            session.add(row)
            session.flush()
            campaign_ids[channel] = row.id
    activities = 0
    with use_database(url):
        for start in range(0, n, CHUNK):
            leads: list[dict[str, Any]] = []
            touches: list[dict[str, Any]] = []
            acts: list[dict[str, Any]] = []
            for i in range(start + 1, min(n, start + CHUNK) + 1):
                channel = rng.choice(CHANNELS)
                created = NOW - timedelta(days=rng.uniform(0, 365))
                facts = {"industry": rng.choice(INDUSTRIES), "title": rng.choice(TITLES),
                         "headcount": rng.choice((None, 8, 60, 300, 1500, 8000)),
                         "channel": channel}
                planted = plant(facts, created, NOW, rng)
                leads.append({
                    "id": i, "name": f"lead {i}", "phone": f"+86138{i:08d}",
                    "email": f"lead{i}@example.cn" if rng.random() < 0.6 else None,
                    "industry": facts["industry"], "title": facts["title"],
                    "headcount": facts["headcount"], "province": rng.choice(PROVINCES),
                    "product_interest": rng.choice(("CRM", "BI", None)), "tags": [],
                    "custom_fields": {}, "do_not_contact": False,
                    "status": planted.status.value, "source": "bench",
                    "campaign_id": campaign_ids[channel], "created_at": created,
                    "updated_at": created,
                })
                touches.append({"lead_id": i, "original_lead_id": i, "source": "bench",
                                "external_id": str(i), "campaign_id": campaign_ids[channel],
                                "received_at": created, "payload": {}})
                acts += [{"lead_id": i, "kind": a.kind, "occurred_at": a.occurred_at,
                          "summary": "", "detail": {}, "value": a.value, "ref": a.ref}
                         for a in planted.activities]
            with session_scope() as session:
                bulk_insert(session, Lead.__table__, leads)  # type: ignore[arg-type]
                bulk_insert(session, Touchpoint.__table__, touches)  # type: ignore[arg-type]
                bulk_insert(session, Activity.__table__, acts)  # type: ignore[arg-type]
            activities += len(acts)
        from leadflow.leads.imports import refresh_statistics

        refresh_statistics()
    return {"leads": n, "activities": activities}


def train_sample(url: str, sample: int) -> dict[str, Any]:
    """Train on a sample of the leads with an outcome; activate the model."""
    from leadflow.db import session_scope
    from leadflow.scoring import jobs, learning
    from leadflow.scoring import service as scoring_service

    with use_database(url):
        frame = jobs.training_frame(now=NOW, window_days=90)
        frame = frame.sample(n=min(sample, len(frame)), random_state=SEED)
        started = time.perf_counter()
        result = learning.train(frame, target=jobs.TARGET, id_column="lead_id")
        seconds = time.perf_counter() - started
        with session_scope() as session:
            row = scoring_service.store_model(
                session=session, result=result, source="bench", target=jobs.TARGET,
                id_column="lead_id", activate=True, actor_id=None, now=NOW)
            model_id = row.id
    return {"model_id": model_id, "kind": result.kind, "train_seconds": round(seconds, 1),
            "rows": len(frame), "holdout_auc": result.metrics["holdout"]["roc_auc"]}


def change_rules(url: str, run: int) -> None:
    """Save a rule set whose fit points differ, so every lead's score moves."""
    from leadflow.db import session_scope
    from leadflow.scoring import service as scoring_service

    with use_database(url), session_scope() as session:
        document = scoring_service.default_document().model_copy(deep=True)
        for rule in document.fit.rules:
            rule.points = rule.points + (run % 3) + 1
        document.grading.weights.fit = 0.5 + 0.05 * (run + 1)
        scoring_service.save_ruleset(session=session, document=document, note=f"bench {run}",
                                     actor_id=None, now=NOW)


def change_engagement(url: str) -> None:
    """Save a rule set whose engagement points differ: stored engagement totals no longer
    hold, so the next re-score reads every lead's events again."""
    from leadflow.db import session_scope
    from leadflow.scoring import service as scoring_service

    with use_database(url), session_scope() as session:
        ruleset, _ = scoring_service.in_force(session=session)
        document = ruleset.document.model_copy(deep=True)
        for rule in document.engagement.activities.values():
            rule.points = rule.points + 1
        scoring_service.save_ruleset(session=session, document=document, note="bench points",
                                     actor_id=None, now=NOW)


def rescore(url: str) -> dict[str, Any]:
    """One batch re-score of every lead."""
    from leadflow.scoring import jobs

    with use_database(url):
        summary = jobs.rescore_all(now=NOW)
    return {"seconds": summary.seconds, "leads": summary.leads,
            "grade_changes": summary.grade_changes, "new_mqls": summary.new_mqls,
            "by_grade": summary.by_grade}


def raw_update(url: str, n: int, run: int) -> float:
    """UPDATE one column of the same rows with new values, 50,000 rows per transaction."""
    from leadflow.db import bulk_upsert, session_scope
    from leadflow.scoring.models import LeadScore

    rng = random.Random(run)
    with use_database(url), Timer() as timer:
        for start in range(1, n + 1, CHUNK):
            ids = list(range(start, min(n, start + CHUNK - 1) + 1))
            with session_scope() as session:
                bulk_upsert(session, LeadScore.__table__,  # type: ignore[arg-type]
                            {"lead_id": ids, "score": [rng.random() * 100 for _ in ids]},
                            key="lead_id", update_only=True)
    return timer.seconds


def score_row_floor(url: str, n: int, run: int) -> float:
    """Rewrite every stored score row — each column a re-score after a rule change writes,
    values as stored with the score nudged — in the same chunks and through the same write
    path, with no reading or scoring timed and no timeline rows: the floor of storing
    scores at all."""
    from sqlalchemy import select

    from leadflow.db import bulk_upsert, session_scope
    from leadflow.scoring.models import LeadScore

    table = LeadScore.__table__
    names = ["lead_id", "fit", "engagement", "probability", "score", "grade", "is_mql",
             "ruleset_version", "model_id"]
    rng = random.Random(run)
    seconds = 0.0
    with use_database(url):
        for start in range(1, n + 1, CHUNK):
            with session_scope() as session:
                rows = session.execute(select(*(table.c[c] for c in names)).where(
                    table.c.lead_id.between(start, start + CHUNK - 1))).all()
            columns = {c: [r[i] for r in rows] for i, c in enumerate(names)}
            columns["score"] = [rng.random() * 100 for _ in rows]
            # What a re-score gives once per chunk: its time, rule set and model.
            fixed = {"scored_at": NOW, "ruleset_version": columns.pop("ruleset_version")[0],
                     "model_id": columns.pop("model_id")[0]}
            with session_scope() as session, Timer() as timer:
                bulk_upsert(session, table, columns,  # type: ignore[arg-type]
                            key="lead_id", update_only=True, same_for_all=fixed)
            seconds += timer.seconds
    return seconds


def writes_alone(url: str) -> dict[str, Any]:
    """A re-score after a rule change with only its writes timed: each chunk is read and
    scored first (not timed), then written the way the job writes it — score rows, grade
    changes and MQL crossings on the timeline, outbox events, routing due times — and
    committed. What the job costs on one writer if reading and scoring were free."""
    from leadflow.db import checkpoints_in_background, session_scope
    from leadflow.scoring import batch, jobs
    from leadflow.scoring import service as scoring_service

    summary = batch.RescoreSummary()
    seconds = 0.0
    with use_database(url):
        with session_scope() as session:
            ruleset, model = scoring_service.in_force(session=session)
            usable = scoring_service.totals_versions(session=session,
                                                     document=ruleset.document)
            chunks = jobs._chunks(session, None, CHUNK)
        model_id = model[0] if model else None
        with checkpoints_in_background() as commit:
            for chunk in chunks:
                scored = jobs.read_and_score(chunk, document=ruleset.document, now=NOW,
                                             model_id=model_id, totals_versions=usable)
                with Timer() as timer:
                    jobs.write_chunk(scored, ruleset_version=ruleset.version,
                                     model_id=model_id, now=NOW, summary=summary,
                                     commit=commit)
                seconds += timer.seconds
    return {"seconds": seconds, "grade_changes": summary.grade_changes,
            "new_mqls": summary.new_mqls}


def one_lead(url: str, n: int, samples: int) -> dict[str, float]:
    """Re-score one lead after an event, next to a raw one-row UPDATE, with and without the
    commit (the commit is the request's, and on this disk it alone can take milliseconds)."""
    from sqlalchemy import text

    from leadflow.db import session_scope
    from leadflow.leads.models import Activity, ActivityKind
    from leadflow.scoring import service as scoring_service

    rng = random.Random(SEED)
    kinds = (ActivityKind.EMAIL_OPENED, ActivityKind.WEB_VISIT, ActivityKind.COMMUNITY_CLASS,
             ActivityKind.WEBINAR_ATTENDED)
    times: dict[str, list[float]] = {"rescore": [], "with_commit": [], "raw": [],
                                     "raw_with_commit": []}
    warm_up = 50
    with use_database(url):
        for i in range(samples + warm_up):
            lead_id = rng.randint(1, n)
            with session_scope() as session:
                session.add(Activity(lead_id=lead_id, kind=rng.choice(kinds), occurred_at=NOW,
                                     summary="", detail={}, ref="/pricing"))
                session.flush()
                started = time.perf_counter()
                scoring_service.rescore_lead(session=session, lead_id=lead_id, now=NOW)
                session.flush()
                scored = time.perf_counter()
                session.commit()
                committed = time.perf_counter()
            with session_scope() as session:
                session.execute(text("SELECT 1"))  # open the transaction outside the timing
                raw_started = time.perf_counter()
                session.execute(text("UPDATE lead_score SET score = :s WHERE lead_id = :id"),
                                {"s": rng.random() * 100, "id": lead_id})
                raw_done = time.perf_counter()
                session.commit()
                raw_committed = time.perf_counter()
            if i >= warm_up:  # the first calls load the model and warm caches
                times["rescore"].append(scored - started)
                times["with_commit"].append(committed - started)
                times["raw"].append(raw_done - raw_started)
                times["raw_with_commit"].append(raw_committed - raw_started)
    out: dict[str, float] = {"samples": samples}
    for name, values in times.items():
        out[f"{name}_p50_ms"] = round(percentile(values, 50) * 1000, 3)
        out[f"{name}_p99_ms"] = round(percentile(values, 99) * 1000, 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--train-sample", type=int, default=40_000)
    parser.add_argument("--one-lead-samples", type=int, default=2_000)
    parser.add_argument("--one-lead-engines", default="postgres")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results: dict[str, Any] = {"leads": args.leads, "runs": args.runs, "engines": {}}
    rows: list[list[str]] = []
    for engine in args.engines.split(","):
        db = fresh_database(engine, f"rescore_bench_{engine}", workdir())
        with Timer() as setup:
            population = populate(db.url, args.leads)
        model = train_sample(db.url, args.train_sample)
        first = rescore(db.url)
        one = None
        if engine in args.one_lead_engines.split(","):
            # Measured in a steady state, before the batch runs leave dead rows for vacuum.
            analyze(db.url)
            # In a fresh process, like an app worker: not one holding a million generated rows.
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                one = pool.submit(one_lead, db.url, args.leads, args.one_lead_samples).result()
        batch_s, raw_s, floor_s, changes, mqls = [], [], [], [], []
        for run in range(args.runs):
            change_rules(db.url, run)
            run_result = rescore(db.url)
            batch_s.append(run_result["seconds"])
            changes.append(run_result["grade_changes"])
            mqls.append(run_result["new_mqls"])
            raw_s.append(raw_update(db.url, args.leads, run))
            floor_s.append(score_row_floor(db.url, args.leads, run))
        change_rules(db.url, args.runs)
        writes = writes_alone(db.url)
        change_engagement(db.url)
        from_events = rescore(db.url)["seconds"]
        out: dict[str, Any] = {
            "setup_seconds": round(setup.seconds, 1), **population, "model": model,
            "first_scoring_leads_per_s": round(first["leads"] / first["seconds"]),
            "by_grade": first["by_grade"],
            "rescore_seconds": [round(s, 2) for s in batch_s],
            # Each grade change and MQL crossing is written to the timeline (and a crossing
            # to the outbox and the lead's routing due time): what the raw UPDATE is spared.
            "rescore_grade_changes": changes,
            "rescore_new_mqls": mqls,
            "raw_update_seconds": [round(s, 2) for s in raw_s],
            "rescore_leads_per_s": round(args.leads / median(batch_s)),
            "raw_rows_per_s": round(args.leads / median(raw_s)),
            "ratio": round(median(batch_s) / median(raw_s), 2),
            "score_row_floor_seconds": [round(s, 2) for s in floor_s],
            "score_row_floor_ratio": round(median(floor_s) / median(raw_s), 2),
            "writes_alone_seconds": round(writes["seconds"], 2),
            "writes_alone_ratio": round(writes["seconds"] / median(raw_s), 2),
            "writes_alone_grade_changes": writes["grade_changes"],
            "writes_alone_new_mqls": writes["new_mqls"],
            "engagement_change_seconds": round(from_events, 2),
            "engagement_change_leads_per_s": round(args.leads / from_events),
        }
        if one is not None:
            out["one_lead"] = one
        results["engines"][engine] = out
        rows.append([engine, f"{out['rescore_leads_per_s']:,}", f"{out['raw_rows_per_s']:,}",
                     f"{out['ratio']:.2f}x", f"{out['score_row_floor_ratio']:.2f}x",
                     f"{out['writes_alone_ratio']:.2f}x",
                     f"{out['first_scoring_leads_per_s']:,}",
                     f"{out['engagement_change_leads_per_s']:,}",
                     f"{out['one_lead']['rescore_p99_ms']:.2f} ms "
                     f"(raw {out['one_lead']['raw_p99_ms']:.2f}; with commit "
                     f"{out['one_lead']['with_commit_p99_ms']:.2f}, raw "
                     f"{out['one_lead']['raw_with_commit_p99_ms']:.2f})"
                     if "one_lead" in out else "—"])
        db.drop()
    emit(results, as_json=args.json, title=f"re-score {args.leads:,} leads (median of "
         f"{args.runs})", rows=rows,
         headers=["engine", "re-score leads/s", "raw UPDATE rows/s", "ratio",
                  "score rows alone / raw", "all writes alone / raw",
                  "first scoring leads/s", "after a points change leads/s", "one lead p99"])


if __name__ == "__main__":
    main()

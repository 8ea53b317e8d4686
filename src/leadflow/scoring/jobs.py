"""Long scoring jobs: re-score every lead in batches, train the model from the database.

Each batch commits on its own: re-scoring is idempotent, so a job killed half way is simply
run again (leads already done are rewritten with the same values).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from datetime import datetime, timedelta
from functools import partial
from multiprocessing import get_all_start_methods, get_context
from typing import cast

import pandas as pd
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session
from threadpoolctl import threadpool_limits

from leadflow.db import (
    Commit,
    checkpoints_in_background,
    forget_inherited_connections,
    session_scope,
)
from leadflow.errors import DomainError
from leadflow.leads.models import Lead, LeadStatus, Touchpoint
from leadflow.scoring import batch, learning
from leadflow.scoring import service as scoring_service
from leadflow.scoring.facts import (
    MODEL_COLUMNS,
    MODEL_LEAD_FIELDS,
    add_counts,
    read_batch,
    sql_timestamp,
)
from leadflow.scoring.models import ScoringModel
from leadflow.scoring.rules import engagement_scores
from leadflow.scoring.schemas import RulesetDocument

Progress = Callable[[int, int], None]
# Chunks handed to the read-ahead helper at a time (each read on its own connection).
READ_AHEAD = 4
# From this many chunks on, the reading happens in a second process.
PROCESS_FROM = 4


def _chunks(session: Session, ids: Sequence[int] | None, size: int) -> list[dict[str, object]]:
    if ids is not None:
        ordered = sorted(set(ids))
        return [{"ids": ordered[i:i + size]} for i in range(0, len(ordered), size)]
    # Two queries: each is one index lookup, both in one are a scan.
    low, high = session.scalar(select(func.min(Lead.id))), session.scalar(select(func.max(Lead.id)))
    if low is None or high is None:
        return []
    return [{"id_range": (start, start + size)} for start in range(low, high + 1, size)]


def rescore_all(
    *, now: datetime, ids: Sequence[int] | None = None, chunk_size: int = 50_000,
    progress: Progress | None = None, from_events: bool = False,
) -> batch.RescoreSummary:
    """Re-score every live lead (or ``ids``) with the rule set and model in force.

    1. Read a chunk of leads as columns, with their stored engagement totals where the
       engagement points have not changed since (``from_events`` ignores them), and the
       events of the others (ages computed in SQL).
    2. Engagement, fit, the model's probabilities, score, grade and overrides as arrays.
    3. Upsert the chunk's scores in one statement; grade changes and MQL crossings become
       timeline activities, and crossings outbox events, in the same transaction.
    """
    started = time.perf_counter()
    summary = batch.RescoreSummary()
    with session_scope() as session:
        ruleset, model = scoring_service.in_force(session=session)
        usable = frozenset() if from_events else scoring_service.totals_versions(
            session=session, document=ruleset.document)
        chunks = _chunks(session, ids, chunk_size)
        total = len(ids) if ids is not None else live_leads(session)
    summary.ruleset_version = ruleset.version
    summary.model_id = model[0] if model else None

    model_id = model[0] if model else None
    score = partial(read_and_score, document=ruleset.document, now=now, model_id=model_id,
                    totals_versions=usable)
    remaining = deque(chunks)
    pending: deque[tuple[Future[batch.ScoredChunk], dict[str, object]]] = deque()
    # The model's matrix products on one BLAS thread, here and in the helper: OpenBLAS's
    # idle threads spin, and two processes' pools on two cores made each read 1.6x slower.
    with (_reader(len(chunks)) as reader, threadpool_limits(limits=1, user_api="blas"),
          checkpoints_in_background() as commit):
        while remaining or pending:
            # The helper takes chunks from the back, this process from the front: while the
            # helper starts up (seconds, for a process) or falls behind, this one does not
            # wait but reads and scores a chunk itself; otherwise it writes what is ready.
            while remaining and len(pending) < READ_AHEAD:
                chunk = remaining.pop()
                pending.append((reader.submit(score, chunk), chunk))
            if pending and pending[0][0].done():
                scored = pending.popleft()[0].result()
            elif remaining:
                scored = score(remaining.popleft())
            elif (chunk_back := _take_back(pending)) is not None:
                # At the end, rather than wait while the helper works through its queue,
                # score a chunk it has not started.
                scored = score(chunk_back)
            else:
                scored = pending.popleft()[0].result()
            write_chunk(scored, ruleset_version=ruleset.version, model_id=model_id, now=now,
                        summary=summary, commit=commit)
            if progress:
                progress(summary.leads, total)
    summary.seconds = time.perf_counter() - started
    return summary


def live_leads(session: Session) -> int:
    """How many leads are not merged away: all leads (an index scan) less the merged ones
    (a partial index), rather than reading every lead's status."""
    merged = select(func.count()).select_from(Lead).where(Lead.status == LeadStatus.MERGED)
    everyone = select(func.count()).select_from(Lead)
    return (session.scalar(everyone) or 0) - (session.scalar(merged) or 0)


def write_chunk(
    scored: batch.ScoredChunk, *, ruleset_version: int, model_id: int | None, now: datetime,
    summary: batch.RescoreSummary, commit: Commit,
) -> None:
    """Store one scored chunk, with its timeline rows, in a transaction of its own
    (committed by ``commit``: see :func:`leadflow.db.checkpoints_in_background`)."""
    with session_scope() as session:
        if session.get_bind().dialect.name == "postgresql":
            # A re-run redoes a lost chunk, so the job need not wait for each WAL flush;
            # other transactions keep their durability.
            session.execute(text("SET LOCAL synchronous_commit = off"))
        batch.write_scores(session, scored, ruleset_version, model_id, now, summary)
        commit(session)


def _take_back(
    pending: deque[tuple[Future[batch.ScoredChunk], dict[str, object]]],
) -> dict[str, object] | None:
    """The chunk last handed to the helper, if the helper has not started it (a cancelled
    call never runs); the first in line is always left to the helper, which is on it."""
    if len(pending) > 1 and pending[-1][0].cancel():
        return pending.pop()[1]
    return None


def read_and_score(
    chunk: dict[str, object], *, document: RulesetDocument, now: datetime,
    model_id: int | None, totals_versions: frozenset[int],
) -> batch.ScoredChunk:
    """Read and score one chunk in its own session (here, or in the read-ahead thread or
    process); only the scores travel back, not the leads' fields."""
    with session_scope() as session:
        model = scoring_service.model_by_id(session=session, model_id=model_id)
        facts = batch.read_chunk(session, chunk, document, now, model=model is not None,
                                 totals_versions=totals_versions)
    return batch.score_facts(facts, document, model)


def _reader(chunks: int) -> Executor:
    """Where chunks are read and scored ahead of writing: a second process for long jobs, so
    the work uses both cores (a thread shares the GIL, and row fetching takes it per row); a
    thread for short ones, which do not repay a process start.

    The process is forked when this one runs a single thread (the CLI, a worker loop): it
    starts at once, with the modules and the model already loaded. A web server's threads
    could hold locks at the moment of a fork, so there a fresh interpreter is spawned (about
    three seconds of imports, during which this process scores chunks itself).
    """
    if chunks < PROCESS_FROM:
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="rescore-read")
    if threading.active_count() == 1 and "fork" in get_all_start_methods():
        return ProcessPoolExecutor(max_workers=1, mp_context=get_context("fork"),
                                   initializer=_start_forked_helper)
    return ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"),
                               initializer=_one_blas_thread)


def _one_blas_thread() -> None:
    """The helper's matrix products on one thread (see :func:`rescore_all`)."""
    threadpool_limits(limits=1, user_api="blas")


def _start_forked_helper() -> None:
    forget_inherited_connections()
    _one_blas_thread()


def rescore_import(
    *, job_id: int, now: datetime, progress: Progress | None = None
) -> batch.RescoreSummary:
    """Score the leads an import created or merged into (the step after the import)."""
    with session_scope() as session:
        ids = list(session.scalars(
            select(Touchpoint.lead_id).where(Touchpoint.import_job_id == job_id).distinct()
        ))
    return rescore_all(now=now, ids=ids, progress=progress)


# --- training from the database -------------------------------------------------------------

TARGET = "converted"


class NotEnoughHistory(DomainError):
    """Too few known outcomes to learn from: scores stay on the rules (cold start)."""

    status_code = 409


def training_frame(
    *, now: datetime, window_days: int, chunk_size: int = 50_000,
) -> pd.DataFrame:
    """Leads with a known outcome, their model features and ``converted`` (1/0).

    Converted leads are 1; disqualified leads, and leads older than the outcome window that
    never converted, are 0; younger open leads have no outcome yet and are left out.
    """
    cutoff = now - timedelta(days=window_days)
    frames: list[pd.DataFrame] = []
    with session_scope() as session:
        chunks = _chunks(session, None, chunk_size)
    for chunk in chunks:
        with session_scope() as session:
            engagement = RulesetDocument().engagement
            batch = read_batch(session=session, now=now, engagement=engagement,
                               fields={"status", *MODEL_LEAD_FIELDS},
                               **chunk)  # type: ignore[arg-type]
            if not len(batch.frame):
                continue
            _, counts = engagement_scores(engagement, batch.events, len(batch.frame))
            frame = add_counts(batch.frame, counts)
            low, high = cast(tuple[int, int], chunk["id_range"])
            old = {int(i) for (i,) in session.execute(
                text("SELECT id FROM lead WHERE id >= :low AND id < :high "
                     "AND created_at < :cutoff"),
                {"low": low, "high": high, "cutoff": sql_timestamp(session, cutoff)})}
        status = frame["status"].astype(str)
        converted = status == LeadStatus.CONVERTED.value
        lost = (status == LeadStatus.DISQUALIFIED.value) | frame["lead_id"].isin(old)
        known = converted | lost
        part = frame.loc[known, ["lead_id", *MODEL_COLUMNS]].copy()
        part[TARGET] = converted[known].astype(int).to_numpy()
        frames.append(part)
    if not frames:
        return pd.DataFrame(columns=["lead_id", *MODEL_COLUMNS, TARGET])
    return pd.concat(frames, ignore_index=True)


def train_from_database(
    *, now: datetime, actor_id: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> ScoringModel:
    """Train on the leads' own history and make the model score the leads.

    Refuses (:class:`NotEnoughHistory`) below the rule set's cold-start minimums, so scores
    stay on the rules until there is enough to learn from.
    """
    with session_scope() as session:
        config = scoring_service.current_ruleset(session=session).document.model
    frame = training_frame(now=now, window_days=config.outcome_window_days)
    outcomes, positives = len(frame), int(frame[TARGET].sum()) if len(frame) else 0
    if outcomes < config.min_outcomes or positives < config.min_positive:
        raise NotEnoughHistory(
            f"only {outcomes} leads with a known outcome ({positives} converted); the model "
            f"joins at {config.min_outcomes} outcomes with {config.min_positive} converted — "
            "until then grades come from the rules alone"
        )
    result = learning.train(frame, target=TARGET, id_column="lead_id", progress=progress)
    with session_scope() as session:
        row = scoring_service.store_model(
            session=session, result=result, source="database", target=TARGET,
            id_column="lead_id", activate=True, actor_id=actor_id, now=now,
        )
        session.expunge(row)
    return row

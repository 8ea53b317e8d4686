"""File imports as jobs: stream the file, capture it chunk by chunk, commit per chunk.

A job is safe to kill: every committed chunk is complete (leads, touchpoints, rejects and
counters in one transaction), and running the same file again skips the records it already
holds, because each record's identity (source, external_id) is unique.
"""

from __future__ import annotations

import gc
import hashlib
import json
import multiprocessing
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from queue import Full
from typing import Any

from sqlalchemy import insert, select, text, update
from sqlalchemy.orm import Session

from leadflow import clock
from leadflow.cleaning.enrich import FirmographicTableProvider
from leadflow.cleaning.rules import MatchThresholds
from leadflow.config import get_settings
from leadflow.db import session_scope
from leadflow.leads import files
from leadflow.leads.capture import IncomingRecord, Outcome, Reject, capture_batch
from leadflow.leads.models import ImportJob, ImportReject, ImportStatus
from leadflow.leads.rules import CleanRecord, clean_record
from leadflow.scoring import totals as scoring_totals

# Below this many rows a second process costs more (start-up) than it saves.
PARALLEL_MIN_ROWS = 20_000

ProgressFn = Callable[[int, int | None], None]


def file_digest(path: Path) -> str:
    """SHA-256 of a file: without an id column, a row's identity is (file, row number)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def create_job(
    *,
    session: Session,
    path: Path,
    filename: str,
    source: str,
    campaign_id: int | None,
    actor_id: int | None,
    now: datetime,
) -> ImportJob:
    """Register an import of ``path`` (queued until :func:`run_job`)."""
    job = ImportJob(
        filename=filename, stored_path=str(path), source=source, campaign_id=campaign_id,
        status=ImportStatus.QUEUED, created_by_id=actor_id, created_at=now,
    )
    session.add(job)
    session.flush()
    return job


def _prepared(
    lead_file: files.LeadFile, digest: str, default_region: str
) -> Iterator[IncomingRecord]:
    """Records with their identity, cleaned and with the raw payload serialised: the work
    that needs no database, so it can run in a process of its own."""
    dumps = json.dumps
    for row_number, record, raw in lead_file.rows():
        external_id = record.pop("external_id", None) or f"{digest[:16]}#{row_number}"
        cleaned = clean_record(record, default_region=default_region)
        fields = cleaned.fields
        # JSON columns travel and are written as text, encoded here, off the writer's core.
        for name in ("tags", "custom_fields"):
            if fields.get(name):
                fields[name] = dumps(fields[name], ensure_ascii=False)
        yield IncomingRecord(
            external_id=external_id[:128], record={}, raw={}, row_number=row_number,
            cleaned=cleaned, raw_json=dumps(raw, ensure_ascii=False),
        )


# What crosses the process boundary: plain tuples, because unpickling dataclass instances
# costs more than the parent's whole share of the work.
_Wire = tuple[str, int | None, str | None, dict[str, Any], list[tuple[str, str]]]


def _to_wire(rec: IncomingRecord) -> _Wire:
    assert rec.cleaned is not None
    return (rec.external_id, rec.row_number, rec.raw_json, rec.cleaned.fields,
            rec.cleaned.errors)


def _from_wire(item: _Wire) -> IncomingRecord:
    external_id, row_number, raw_json, fields, errors = item
    return IncomingRecord(external_id=external_id, record={}, raw={}, row_number=row_number,
                          cleaned=CleanRecord(fields, errors), raw_json=raw_json)


def _rare_gc(chunks: Iterator[list[IncomingRecord]]) -> Iterator[list[IncomingRecord]]:
    """Run the cyclic garbage collector rarely while chunks are captured.

    A bulk capture allocates millions of short-lived, acyclic objects; with the default
    thresholds the collector's passes over them take a third of the run.
    """
    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield from chunks
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()


def _chunks(items: Iterator[IncomingRecord], size: int) -> Iterator[list[IncomingRecord]]:
    chunk: list[IncomingRecord] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _prepare_in_process(
    path: str, mapping: dict[str, str] | None, digest: str, size: int, region: str,
    queue: Any, parent: int,
) -> None:
    """Child process: read and clean the file, hand chunks to the parent through ``queue``.

    Stops by itself when the parent is gone (a killed import must not leave it behind).
    """
    try:
        lead_file = files.open_rows(Path(path), mapping=mapping)
        for chunk in _chunks(_prepared(lead_file, digest, region), size):
            wire = [_to_wire(rec) for rec in chunk]
            while True:
                try:
                    queue.put(wire, timeout=1)
                    break
                except Full:
                    if os.getppid() != parent:
                        return
        queue.put(None)
    except Exception as exc:  # reported to the parent, which fails the job with it
        queue.put(f"{type(exc).__name__}: {exc}")


def _prepared_chunks(
    path: Path, lead_file: files.LeadFile, mapping: dict[str, str] | None, digest: str,
    size: int, region: str,
) -> Iterator[list[IncomingRecord]]:
    """Chunks of prepared records: from a second process for big files, which puts the
    machine's other core to work while this one deduplicates and writes."""
    parallel = (lead_file.total_rows or 0) >= PARALLEL_MIN_ROWS and (os.cpu_count() or 1) > 1
    if not parallel:
        yield from _chunks(_prepared(lead_file, digest, region), size)
        return
    lead_file.close()
    # spawn, not fork: the parent may hold database connections and web-server threads.
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue(maxsize=4)
    child = ctx.Process(
        target=_prepare_in_process,
        args=(str(path), mapping, digest, size, region, queue, os.getpid()),
        daemon=True,
    )
    child.start()
    try:
        while True:
            item = queue.get()
            if item is None:
                break
            if isinstance(item, str):
                raise RuntimeError(f"reading {path.name} failed: {item}")
            yield [_from_wire(x) for x in item]
    finally:
        if child.is_alive():
            child.terminate()
        child.join(timeout=10)


@dataclass(frozen=True, slots=True)
class ImportSummary:
    """What an import did, as ``--json`` prints it."""

    job_id: int
    status: str
    rows_read: int
    created: int
    merged: int
    skipped: int
    rejected: int
    rejects_file: str | None

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def run_job(
    job_id: int,
    *,
    mapping: dict[str, str] | None = None,
    progress: ProgressFn | None = None,
    rejects_path: Path | None = None,
) -> ImportSummary:
    """Run (or re-run) an import job to the end, committing each chunk.

    1. Open the file, detect its encoding and headers, apply the user's mapping.
    2. For each chunk: capture it, store its rejects, add its counts to the job, commit.
    3. Write the rejects file (row number, field, reason, then the original columns).
    """
    settings = get_settings()
    thresholds = MatchThresholds(merge=settings.match_threshold)
    with session_scope() as session:
        job = session.get(ImportJob, job_id)
        assert job is not None, f"import job {job_id} not found"
        path, source, campaign_id = Path(job.stored_path or ""), job.source, job.campaign_id
        actor_id = job.created_by_id
        job.status = ImportStatus.RUNNING
    try:
        lead_file = files.open_rows(path, mapping=mapping)
        digest = file_digest(path)
        with session_scope() as session:
            session.execute(
                update(ImportJob).where(ImportJob.id == job_id)
                .values(total_rows=lead_file.total_rows)
            )
        done = 0
        provider = FirmographicTableProvider()
        chunks = _prepared_chunks(path, lead_file, mapping, digest,
                                  settings.import_chunk_size, settings.default_region)
        for number, chunk in enumerate(_rare_gc(chunks), start=1):
            if number & (number - 1) == 0:  # chunks 1, 2, 4, 8, …
                refresh_statistics()
            now = clock.now()
            with session_scope() as session:
                result = capture_batch(
                    session=session, records=chunk, source=source, campaign_id=campaign_id,
                    now=now, thresholds=thresholds, import_job_id=job_id,
                    default_region=settings.default_region,
                    provider=provider, actor_id=actor_id,
                )
                _store_rejects(session, job_id, result.rejects)
                # Leads merged into have new touchpoints, and are re-scored only after the
                # whole file (rescore_import): drop their stored engagement totals now.
                merged_into = sorted({r.lead_id for r in result.results
                                      if r.outcome == Outcome.MERGED and r.lead_id is not None})
                if merged_into:
                    scoring_totals.forget(session=session, lead_ids=merged_into)
                session.execute(
                    update(ImportJob).where(ImportJob.id == job_id).values(
                        rows_read=ImportJob.rows_read + len(chunk),
                        created=ImportJob.created + result.created,
                        merged=ImportJob.merged + result.merged,
                        skipped=ImportJob.skipped + result.skipped,
                        rejected=ImportJob.rejected + len(result.rejects),
                    )
                )
            done += len(chunk)
            if progress:
                progress(done, lead_file.total_rows)
    except Exception as exc:
        with session_scope() as session:
            session.execute(
                update(ImportJob).where(ImportJob.id == job_id)
                .values(status=ImportStatus.FAILED, error=str(exc)[:2000],
                        finished_at=clock.now())
            )
        raise
    with session_scope() as session:
        job = session.get(ImportJob, job_id)
        assert job is not None
        job.status = ImportStatus.DONE
        job.finished_at = clock.now()
        written = None
        if job.rejected:
            target = rejects_path or path.with_name(path.stem + ".rejects.csv")
            write_rejects(session=session, job_id=job_id, path=target,
                          headers=lead_file.headers)
            written = str(target)
        return ImportSummary(job.id, job.status, job.rows_read, job.created, job.merged,
                             job.skipped, job.rejected, written)


def refresh_statistics() -> None:
    """Let PostgreSQL's planner see how big the lead tables have become.

    An import into a young database outgrows the statistics the planner has (autovacuum
    analyses later): it would keep scanning tables it believes empty and slow down as they
    fill. Refreshing at chunks 1, 2, 4, 8, … keeps the plans indexed for little cost.
    """
    with session_scope() as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("ANALYZE lead, touchpoint"))


def _store_rejects(session: Session, job_id: int, rejects: list[Reject]) -> None:
    if not rejects:
        return
    session.execute(
        insert(ImportReject),
        [{"job_id": job_id, "row_number": r.row_number or 0, "field": r.field,
          "reason": r.reason[:300], "raw": r.raw} for r in rejects],
    )


def write_rejects(*, session: Session, job_id: int, path: Path, headers: list[str]) -> int:
    """The rejects file: row number, field and reason, then the row as it was."""
    rows = session.execute(
        select(ImportReject.row_number, ImportReject.field, ImportReject.reason,
               ImportReject.raw)
        .where(ImportReject.job_id == job_id)
        .order_by(ImportReject.row_number)
    )
    out_headers = ["row_number", "field", "reason", *headers]

    def lines() -> Iterator[list[object]]:
        for number, field, reason, raw in rows:
            yield [number, field, reason, *(raw.get(h, "") for h in headers)]

    fmt = "xlsx" if path.suffix.lower() == ".xlsx" else "csv"
    return files.write_rows(path, out_headers, lines(), fmt=fmt)


def import_file(
    *,
    path: Path,
    source: str,
    campaign_id: int | None,
    actor_id: int | None,
    mapping: dict[str, str] | None = None,
    progress: ProgressFn | None = None,
    rejects_path: Path | None = None,
) -> ImportSummary:
    """Create a job for ``path`` and run it (the CLI path)."""
    with session_scope() as session:
        job = create_job(session=session, path=path.resolve(), filename=path.name,
                         source=source, campaign_id=campaign_id, actor_id=actor_id,
                         now=clock.now())
        job_id = job.id
    return run_job(job_id, mapping=mapping, progress=progress, rejects_path=rejects_path)

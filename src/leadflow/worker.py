"""The worker: routing checks (SLA, recycling, away reps) and routing of due leads; cadence
work (due tasks into queues, automatic steps into the outbox, pauses that ran out, stale
claims); and delivery of the message outbox.

``leadflow worker`` runs it as a process; ``leadflow serve`` runs one in a thread for the
embedded default. Several workers on PostgreSQL share the work: every step claims its rows
with ``FOR UPDATE SKIP LOCKED``. A failing pass is logged and retried on the next tick, so
one bad row cannot crash-loop the worker.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

from leadflow import clock
from leadflow.cadences import jobs as cadence_jobs
from leadflow.messaging import jobs as messaging_jobs
from leadflow.routing import jobs as routing_jobs

log = logging.getLogger("leadflow.worker")


def worker_id() -> str:
    """This worker's name in logs and message leases: host and process."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 10_000}"


def run_once() -> dict[str, object]:
    """One pass of every periodic job, at the clock's now."""
    return {
        "routing": routing_jobs.sweep(now=clock.now()).as_dict(),
        "cadences": cadence_jobs.sweep(now=clock.now()).as_dict(),
        "messages": messaging_jobs.deliver_due(worker_id=worker_id()).as_dict(),
    }


def run_forever(*, interval_s: float, stop: threading.Event | None = None) -> None:
    """Run passes every ``interval_s`` seconds until ``stop`` is set."""
    stop = stop or threading.Event()
    while not stop.is_set():
        try:
            done = run_once()
            log.info("worker pass: %s", done)
        except Exception:  # isolate: log, then try again on the next tick
            log.exception("worker pass failed")
        stop.wait(interval_s)


def start_in_thread(*, interval_s: float) -> threading.Event:
    """Start a daemon worker thread (the embedded default); set the event to stop it."""
    stop = threading.Event()
    threading.Thread(target=run_forever, kwargs={"interval_s": interval_s, "stop": stop},
                     name="leadflow-worker", daemon=True).start()
    return stop

"""Automatic email steps through two worker processes to a real SMTP server (issue 5).

Builds, per engine, one rep, ``--steps`` leads (default 100,000) with distinct addresses
(seed 5), a cadence of two automatic email steps (day 0 and day 3, window 09:00–18:00) and
one enrollment per lead whose first step is due — the tasks are written with
``leadflow.db.bulk_insert``. The clock of every process is the run's start mapped to
Thursday 2026-11-26 10:00 Asia/Shanghai (a working day inside the window, outside quiet
hours), advancing in real time.

The SMTP server is aiosmtpd in a process of its own; it records the Message-ID of every
message it accepts. Then, in the same run:

* **leadflow**: two worker processes, each looping the real code paths
  ``cadences.jobs.run_automatic`` (due steps → outbox rows keyed ``task:<id>``, tasks done,
  next step scheduled) and ``messaging.jobs.deliver_pending`` (lease, send over SMTP,
  commit each outcome), ``--batch`` rows at a time with a ``--lease`` second lease (short,
  so the killed worker's leased rows come back within the run). About ``--kill-at`` (35%)
  through, one worker gets ``SIGKILL`` and a replacement is started. emails/s is the number
  of steps over the wall time from the workers' start to the last ``sent_at``; the rate
  before the kill is printed too. Checked afterwards: outbox rows per step (more than one
  is a duplicate row), steps without a message, tasks not done, messages not sent, next
  steps not scheduled, and at the SMTP server: deliveries, distinct Message-IDs,
  duplicates (a Message-ID received again: the in-doubt resend of a row whose worker died
  between the server's ``250`` and the commit) and missing Message-IDs.
* **raw baseline**: the very messages leadflow sent, rendered to bytes beforehand, sent by
  two processes with plain ``smtplib`` over one connection each (no database) to the same
  server; emails/s and the ratio. The rendering cost per message is printed beside it.

    python benchmarks/email_bench.py --engines postgres --steps 100000 --json

PostgreSQL databases are named ``bench_email_*`` and dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.table import Table
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).parent))
from common import (
    Database,
    analyze,
    console,
    emit,
    fresh_database,
    median,
    use_database,
    workdir,
)

SEED = 5
# Thursday 2026-11-26 10:00 in Shanghai: a working day, inside the steps' window.
NOW = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
MAIL_FROM = "Leadflow Sales <sales@corp.example>"
BASE_URL = "https://t.corp.example"
SUBJECT = "{{first_name}}，关于 {{company}} 的线索管理 / a quick question"
BODY = ("{{first_name}} 您好，\n\n我是 {{rep_name}}。We help teams like {{company}} in {{city}} "
        "answer every lead within five minutes.\nSee how: https://corp.example/demo?src=cadence "
        "and the pricing at https://corp.example/pricing.\n\n{{rep_name}}\n{{rep_email}}")
CITIES = ("北京", "上海", "深圳", "杭州", "成都", "Singapore", "Berlin")
SURNAMES = ("王", "李", "张", "刘", "陈", "杨", "赵", "黄")
GIVEN = ("伟", "芳", "娜", "敏", "静", "磊", "洋", "勇")
_MESSAGE_ID = re.compile(rb"(?im)^message-id:[ \t]*(<[^>\r\n]*>)")


# --------------------------------------------------------------------------- setup


def populate(url: str, steps: int) -> dict[str, int]:
    """One rep, ``steps`` leads, a two-step automatic email cadence, one enrollment per lead
    and its first step due now (bulk inserted)."""
    from leadflow.cadences import service as cadences_service
    from leadflow.cadences.models import Enrollment, Task
    from leadflow.cadences.schemas import CadenceIn, StepIn
    from leadflow.db import bulk_insert, session_scope
    from leadflow.leads.models import Lead
    from leadflow.routing.models import RepProfile
    from leadflow.users.models import Team, User

    rng = random.Random(SEED)
    with use_database(url), session_scope() as session:
        team = Team(name="inside sales", kind="sales", created_at=NOW)
        session.add(team)
        session.flush()
        rep = User(email="rep@corp.example", name="周晓明", role="rep", team_id=team.id,
                   locale="zh", timezone="Asia/Shanghai", is_active=True, created_at=NOW)
        session.add(rep)
        session.flush()
        session.add(RepProfile(user_id=rep.id, presence="available", capacity={}, weight=1.0,
                               languages=[], product_lines=[], holiday_calendar="CN",
                               updated_at=NOW))
        cadence = cadences_service.save_cadence(session=session, actor_id=None, now=NOW,
                                                data=CadenceIn(name="bench: two emails", steps=[
            StepIn(day_offset=0, channel="email", automatic=True, subject=SUBJECT, body=BODY),
            StepIn(day_offset=3, channel="email", automatic=True, subject="Re: " + SUBJECT,
                   body=BODY)]))
        first = cadences_service.steps_of(session=session, cadence_id=cadence.id)[0]
        ids = {"rep": rep.id, "team": team.id, "cadence": cadence.id, "step": first.id}
    with use_database(url), session_scope() as session:
        owned = NOW - timedelta(days=1)
        bulk_insert(session, Lead.__table__, [  # type: ignore[arg-type]
            {"id": i, "name": rng.choice(SURNAMES) + rng.choice(GIVEN) + str(i % 97),
             "email": f"lead{i}@customer{i % 50}.example", "company": f"测试科技{i % 900}有限公司",
             "city": rng.choice(CITIES), "status": "working", "owner_id": ids["rep"],
             "team_id": ids["team"], "owned_at": owned, "tags": [], "custom_fields": {},
             "do_not_contact": False, "recycle_count": 0, "created_at": owned,
             "updated_at": owned} for i in range(1, steps + 1)])
        bulk_insert(session, Enrollment.__table__, [  # type: ignore[arg-type]
            {"id": i, "lead_id": i, "cadence_id": ids["cadence"], "owner_id": ids["rep"],
             "status": "active", "next_position": 1, "attempts": 0, "attempt_budget": 6,
             "started_at": owned, "updated_at": owned} for i in range(1, steps + 1)])
        bulk_insert(session, Task.__table__, [  # type: ignore[arg-type]
            {"id": i, "lead_id": i, "owner_id": ids["rep"], "enrollment_id": i,
             "step_id": ids["step"], "kind": "step", "channel": "email", "automatic": True,
             "status": "scheduled", "due_at": NOW - timedelta(seconds=rng.randrange(3600)),
             "window_end_at": None, "bucket": 4, "rank": 0.0, "bucket_until": None,
             "attempt_no": 1, "note": "", "skips": 0, "created_at": owned}
            for i in range(1, steps + 1)])
        if session.get_bind().dialect.name == "postgresql":
            for table in ("lead", "enrollment", "task"):
                session.execute(text(f"SELECT setval('{table}_id_seq', :n)"), {"n": steps})
    analyze(url)
    return ids


# --------------------------------------------------------------------------- CPU accounting


def _own_cpu_s() -> float:
    """User + system CPU seconds of this process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _postgres_cpu_s() -> float:
    """CPU seconds of the local PostgreSQL: its live processes plus its ended children
    (the postmaster's reaped backends)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            raw = stat.read_text()
        except OSError:
            continue
        name = raw[raw.index("(") + 1:raw.rindex(")")]
        if name != "postgres":
            continue
        f = raw[raw.rindex(")") + 2:].split()
        total += int(f[11]) + int(f[12])  # utime, stime
        if f[1] == "1" or not Path(f"/proc/{f[1]}/stat").exists() or "(postgres)" not in \
                Path(f"/proc/{f[1]}/stat").read_text():
            total += int(f[13]) + int(f[14])  # postmaster: cutime, cstime
    return total / tick


# --------------------------------------------------------------------------- child processes


def _child(role: str, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """This script in another process, speaking one line at a time on stdin/stdout."""
    return subprocess.Popen([sys.executable, __file__, "--role", role, *extra],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})}, bufsize=1)


def _say(proc: subprocess.Popen[str], line: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()


def _hear(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"child {proc.args!r} ended without answering (rc {proc.poll()})")
    return line.strip()


class Sink:
    """The SMTP server process: ``dump`` returns the Message-IDs received since the last
    dump, in arrival order."""

    def __init__(self) -> None:
        self.proc = _child("sink")
        self.port = int(_hear(self.proc).split()[1])
        self.cpu_s = 0.0  # the server's CPU seconds up to the last dump
        self.dump()  # start counting CPU after its start-up

    def dump(self) -> list[str]:
        """Message-IDs received since the previous dump."""
        fd, name = tempfile.mkstemp(prefix="email-bench-sink-", suffix=".txt")
        os.close(fd)
        try:
            _say(self.proc, f"dump {name}")
            self.cpu_s = float(_hear(self.proc).split()[2])
            return Path(name).read_text().split()
        finally:
            Path(name).unlink(missing_ok=True)

    def count(self) -> int:
        """Messages received since the previous dump."""
        _say(self.proc, "count")
        return int(_hear(self.proc).split()[1])

    def stop(self) -> None:
        """End the server process."""
        if self.proc.poll() is None:
            _say(self.proc, "quit")
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def sink_main(args: argparse.Namespace) -> None:
    """Child: an aiosmtpd server recording Message-IDs; commands on stdin."""
    from aiosmtpd.controller import Controller

    received: list[bytes] = []

    class Recorder:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            content: bytes = envelope.original_content or envelope.content
            end = content.find(b"\r\n\r\n")
            m = _MESSAGE_ID.search(content, 0, end if end >= 0 else len(content))
            received.append(m.group(1) if m else b"<none>")
            return "250 OK"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    controller = Controller(Recorder(), hostname="127.0.0.1", port=port)
    controller.start()
    print(f"port {port}", flush=True)
    for line in sys.stdin:
        command, *rest = line.split()
        if command == "dump":
            taken, received[:] = received[:], []
            Path(rest[0]).write_bytes(b"\n".join(taken))
            print(f"ok {len(taken)} {_own_cpu_s():.3f}", flush=True)
        elif command == "count":
            print(f"ok {len(received)}", flush=True)
        elif command == "quit":
            break
    controller.stop()


def worker_env(url: str, port: int, pool: int = 2) -> dict[str, str]:
    """Settings of a worker process: the database, the SMTP server, the sender."""
    return {"LEADFLOW_DATABASE_URL": url, "LEADFLOW_EMAIL_PROVIDER": "smtp",
            "LEADFLOW_SMTP_HOST": "127.0.0.1", "LEADFLOW_SMTP_PORT": str(port),
            "LEADFLOW_MAIL_FROM": MAIL_FROM, "LEADFLOW_PUBLIC_BASE_URL": BASE_URL,
            "LEADFLOW_DB_POOL_SIZE": str(pool), "LEADFLOW_SECRET_KEY": "bench-secret-key"}


def worker_main(args: argparse.Namespace) -> None:
    """Child: a worker looping the real cadence and delivery jobs until nothing is left.

    Prints ``ready`` once imported and connected, waits for the run's start (a wall-clock
    epoch: its clock is ``NOW`` + seconds since then), and prints its counts as JSON at the
    end (a killed worker prints nothing).
    """
    from leadflow import clock
    from leadflow.cadences import jobs as cadence_jobs
    from leadflow.db import get_engine, session_scope
    from leadflow.messaging import jobs as messaging_jobs

    with get_engine().connect() as conn:
        conn.execute(text("SELECT 1"))
    print("ready", flush=True)
    start = float(sys.stdin.readline())
    clock.set_clock(lambda: NOW + timedelta(seconds=time.time() - start))
    worker_id = f"bench-{args.name}:{os.getpid()}"
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    counts: Counter[str] = Counter()
    idle = 0
    phase = os.open(args.phase_file, os.O_WRONLY | os.O_CREAT) if args.phase_file else None

    def enter(name: bytes) -> None:  # which job this worker is in, for the kill to aim at
        if phase is not None:
            os.pwrite(phase, name, 0)

    while True:
        enter(b"a")
        with session_scope() as session:
            ran, deferred = cadence_jobs.run_automatic(session=session, now=clock.now(),
                                                       limit=args.batch)
        counts["steps_run"] += ran
        counts["steps_deferred"] += deferred
        enter(b"d")
        done = messaging_jobs.deliver_pending(now=clock.now(), worker_id=worker_id,
                                              limit=args.batch, lease_s=args.lease)
        enter(b"i")
        counts.update({k: v for k, v in done.as_dict().items() if v})
        counts["batches"] += 1
        if ran or done.claimed:
            idle = 0
            continue
        with session_scope() as session:
            left = session.execute(text(
                "SELECT (SELECT count(*) FROM task WHERE status = 'scheduled' AND automatic "
                "  AND due_at <= :now) + (SELECT count(*) FROM message "
                "  WHERE status IN ('pending', 'sending'))"), {"now": clock.now()}).scalar_one()
        if not left:
            break
        idle += 1
        counts["idle_polls"] += 1
        time.sleep(0.05 if idle < 20 else 0.2)  # rows leased by a dead worker: wait
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    print(json.dumps({**counts, "cpu_s": round(_own_cpu_s(), 2)}), flush=True)


def raw_main(args: argparse.Namespace) -> None:
    """Child: the raw baseline's sender — renders its share of the sent messages to bytes
    (not timed), then, on ``go``, sends them with plain smtplib over one connection."""
    from leadflow.config import get_settings
    from leadflow.db import get_engine
    from leadflow.messaging.providers import Envelope, SmtpEmailProvider

    settings = get_settings()
    provider = SmtpEmailProvider(settings)
    with get_engine().connect() as conn:
        rows = conn.execute(text(
            "SELECT id, token, idempotency_key, lead_id, channel, to_address, subject, body "
            "FROM message WHERE id % :parts = :part ORDER BY id"),
            {"parts": args.parts, "part": args.part}).all()
    get_engine().dispose()
    started = time.perf_counter()
    rendered = []
    for row in rows:
        built = provider.build(Envelope(*row))  # bytes, or an EmailMessage in older versions
        rendered.append((row.to_address, built if isinstance(built, bytes) else built.as_bytes()))
    build_s = time.perf_counter() - started
    print("ready", flush=True)
    sys.stdin.readline()
    begin = time.time()
    smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port)
    sender = "sales@corp.example"
    for to, data in rendered:
        smtp.sendmail(sender, [to], data)
    smtp.quit()
    end = time.time()
    print(json.dumps({"begin": begin, "end": end, "sent": len(rendered),
                      "build_us_per_message": round(build_s / max(len(rows), 1) * 1e6, 1)}),
          flush=True)


# --------------------------------------------------------------------------- the parts


def run_workers(db: Database, sink: Sink, args: argparse.Namespace, run: int
                ) -> dict[str, Any]:
    """Two worker processes until every step is sent, one killed with SIGKILL mid-run."""
    env = worker_env(db.url, sink.port)
    opts = ["--batch", str(args.batch), "--lease", str(args.lease)]
    profile = str(Path(args.profile).with_suffix(f".r{run}.prof")) if args.profile else ""
    fd, phase_file = tempfile.mkstemp(prefix="email-bench-phase-")
    os.close(fd)
    workers = [_child("worker", *opts, "--name", f"w{k}",
                      *(["--phase-file", phase_file] if k == 0 else []),
                      *(["--profile", profile] if profile and k == 1 else []), env=env)
               for k in range(2)]
    for w in workers:
        assert _hear(w) == "ready"
    children0, sink0 = resource.getrusage(resource.RUSAGE_CHILDREN), sink.cpu_s
    pg0 = _postgres_cpu_s() if db.engine == "postgres" else 0.0
    start = time.time()
    for w in workers:
        _say(w, repr(start))
    kill: dict[str, Any] = {"killed": False}
    target = int(args.steps * args.kill_at)
    rng = random.Random(SEED + run)
    sent = 0
    while any(w.poll() is None for w in workers):
        sent = sink.count()  # progress from the SMTP server: no load on the database
        if args.kill and not kill["killed"] and sent >= target:
            # Aim at the worst moment: the victim in the middle of a delivery batch, with
            # rows leased and messages on the wire.
            victim = workers[0]
            deadline = time.monotonic() + 5
            while Path(phase_file).read_bytes()[:1] != b"d" and time.monotonic() < deadline:
                time.sleep(0.002)
            time.sleep(rng.uniform(0.02, 0.08))
            phase = Path(phase_file).read_bytes()[:1].decode() or "?"
            os.kill(victim.pid, signal.SIGKILL)
            at = time.time() - start
            victim.wait()
            sent = sink.count()
            kill = {"killed": True, "at_s": round(at, 2), "received_before_kill": sent,
                    "rate_before_kill": round(sent / at) if at else None,
                    "victim_job": {"a": "run_automatic", "d": "deliver_pending"}.get(
                        phase, "between jobs")}
            replacement = _child("worker", *opts, "--name", "w2", env=env)
            assert _hear(replacement) == "ready"
            _say(replacement, repr(start))
            kill["replacement_ready_s"] = round(time.time() - start, 2)
            workers.append(replacement)
        time.sleep(0.02 if args.steps < 5000 else 0.1)
    wall_exit = time.time() - start
    pg = _postgres_cpu_s() - pg0 if db.engine == "postgres" else 0.0
    if args.kill and not kill["killed"]:
        kill = {"killed": False, "note": "the run ended before the kill point"}
    counts = []
    for w in workers:
        out, _ = w.communicate()
        if w.returncode == 0:
            counts.append(json.loads(out.strip().splitlines()[-1]))
        elif w.returncode != -signal.SIGKILL:
            raise RuntimeError(f"worker failed with rc {w.returncode}")
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    Path(phase_file).unlink(missing_ok=True)
    received = sink.dump()
    cpu = {"workers": (
        children.ru_utime + children.ru_stime - children0.ru_utime - children0.ru_stime),
        "smtp_server": sink.cpu_s - sink0, "postgres": pg if db.engine == "postgres" else None}
    checks = check(db, received, args.steps)
    seconds = checks.pop("last_sent_s")
    return {"emails_per_s": round(args.steps / seconds) if seconds else None,
            "seconds": round(seconds, 2), "workers_exit_s": round(wall_exit, 2),
            "kill": kill, "worker_counts": counts, "checks": checks,
            "cpu_ms_per_email": {k: round(v * 1000 / args.steps, 3) if v is not None else None
                                 for k, v in cpu.items()}}


def check(db: Database, received: list[str], steps: int) -> dict[str, Any]:
    """The outbox, the tasks and the SMTP server's log against what the run should have."""
    from leadflow.messaging import rules
    from leadflow.messaging.providers import mail_domain

    engine = create_engine(db.url)
    with engine.connect() as conn:
        one = conn.execute(text(
            "SELECT (SELECT count(*) FROM message), "
            "  (SELECT count(*) FROM (SELECT task_id FROM message WHERE task_id IS NOT NULL "
            "     GROUP BY task_id HAVING count(*) > 1) d), "
            "  (SELECT count(*) FROM (SELECT idempotency_key FROM message "
            "     GROUP BY idempotency_key HAVING count(*) > 1) k), "
            "  :n - (SELECT count(DISTINCT task_id) FROM message WHERE task_id <= :n), "
            "  (SELECT count(*) FROM task WHERE id <= :n AND status <> 'done'), "
            "  (SELECT count(*) FROM message WHERE status <> 'sent'), "
            "  (SELECT count(*) FROM task WHERE id > :n AND status = 'scheduled'), "
            "  (SELECT count(*) FROM message WHERE attempts > 1)"), {"n": steps}).one()
        keys = conn.execute(text("SELECT idempotency_key, token FROM message")).all()
        last = conn.execute(text("SELECT max(sent_at) FROM message")).scalar_one()
    engine.dispose()
    if isinstance(last, str):  # SQLite keeps ISO text
        last = datetime.fromisoformat(last)
    if last is not None and last.tzinfo is None:
        last = last.replace(tzinfo=UTC)
    domain = mail_domain(MAIL_FROM)
    expected = {rules.message_id(key, token, domain) for key, token in keys}
    counted = Counter(received)
    distinct = set(counted)
    return {
        "messages": one[0], "steps_with_2plus_messages": one[1], "keys_with_2plus_rows": one[2],
        "steps_without_message": one[3], "tasks_not_done": one[4], "messages_not_sent": one[5],
        "next_steps_scheduled": one[6], "messages_claimed_again": one[7],
        "smtp_deliveries": len(received), "smtp_distinct_message_ids": len(distinct),
        "smtp_duplicates": sum(n - 1 for n in counted.values() if n > 1),
        "smtp_missing": len(expected - distinct), "smtp_unexpected": len(distinct - expected),
        "last_sent_s": (last - NOW).total_seconds() if last is not None else 0.0,
    }


def run_raw(db: Database, sink: Sink, args: argparse.Namespace) -> dict[str, Any]:
    """The same rendered messages by two plain smtplib senders, no database."""
    env = worker_env(db.url, sink.port)
    senders = [_child("raw", "--part", str(k), "--parts", "2", env=env) for k in range(2)]
    for s in senders:
        assert _hear(s) == "ready"
    for s in senders:
        _say(s, "go")
    outs = [json.loads(_hear(s)) for s in senders]
    for s in senders:
        s.wait()
    seconds = max(o["end"] for o in outs) - min(o["begin"] for o in outs)
    sent = sum(o["sent"] for o in outs)
    received = sink.dump()
    return {"emails_per_s": round(sent / seconds), "seconds": round(seconds, 2), "sent": sent,
            "smtp_deliveries": len(received), "smtp_distinct_message_ids": len(set(received)),
            "build_us_per_message": median([o["build_us_per_message"] for o in outs])}


# --------------------------------------------------------------------------- main


def _table(title: str, rows: list[tuple[str, str]]) -> None:
    """A figure-per-line table on stderr, printed as soon as a part is measured."""
    table = Table("figure", "value", title=title)
    for row in rows:
        table.add_row(*row)
    console.print(table)


def _run_rows(r: dict[str, Any]) -> list[tuple[str, str]]:
    c, k, cpu = r["checks"], r["kill"], r["cpu_ms_per_email"]
    if k.get("killed"):
        kill = (f"SIGKILL at {k['at_s']} s in {k['victim_job']} "
                f"({k['received_before_kill']:,} received); replacement ready at "
                f"{k['replacement_ready_s']} s")
    else:
        kill = k.get("note", "no kill")
    return [
        ("emails/s (steps / seconds to the last sent_at)", f"{r['emails_per_s']:,}"),
        ("seconds", str(r["seconds"])),
        ("emails/s before the kill", f"{k.get('rate_before_kill') or '-'}"),
        ("kill", kill),
        ("outbox rows: steps with more than one", str(c["steps_with_2plus_messages"])),
        ("steps without an outbox row", str(c["steps_without_message"])),
        ("tasks not done / messages not sent",
         f"{c['tasks_not_done']} / {c['messages_not_sent']}"),
        ("next steps scheduled", f"{c['next_steps_scheduled']:,}"),
        ("rows claimed again after their lease ran out", f"{c['messages_claimed_again']:,}"),
        ("SMTP received / distinct Message-IDs",
         f"{c['smtp_deliveries']:,} / {c['smtp_distinct_message_ids']:,}"),
        ("SMTP duplicates (in-doubt resend, same Message-ID)", str(c["smtp_duplicates"])),
        ("SMTP missing / unexpected", f"{c['smtp_missing']} / {c['smtp_unexpected']}"),
        ("CPU ms per email: workers / SMTP server / PostgreSQL",
         f"{cpu['workers']} / {cpu['smtp_server']} / {cpu['postgres'] or '-'}"),
    ]


def _raw_rows(raw: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        ("emails/s", f"{raw['emails_per_s']:,}"),
        ("seconds", str(raw["seconds"])),
        ("SMTP received / distinct Message-IDs",
         f"{raw['smtp_deliveries']:,} / {raw['smtp_distinct_message_ids']:,}"),
        ("rendering, µs per message (before the clock)", str(raw["build_us_per_message"])),
    ]


def bench_engine(engine: str, sink: Sink, args: argparse.Namespace) -> dict[str, Any]:
    """Setup, the worker runs and the raw baseline on one engine."""
    base = fresh_database(engine, f"bench_email_{engine}", workdir())
    dbs = [base]
    out: dict[str, Any] = {}
    try:
        t0 = time.perf_counter()
        populate(base.url, args.steps)
        out["setup_s"] = round(time.perf_counter() - t0, 1)
        console.print(f"{engine}: {args.steps:,} due steps written in {out['setup_s']} s")
        runs, raws = [], []
        for run in range(1, args.runs + 1):
            db = base.clone(f"r{run}") if args.runs > 1 else base
            if db is not base:
                dbs.append(db)
            r = run_workers(db, sink, args, run)
            runs.append(r)
            _table(f"{engine} run {run}: leadflow, 2 worker processes, {args.steps:,} steps",
                   _run_rows(r))
            raw = run_raw(db, sink, args)
            raws.append(raw)
            _table(f"{engine} run {run}: raw smtplib, 2 processes, the same messages",
                   _raw_rows(raw))
        rate = median([r["emails_per_s"] for r in runs])
        base_rate = median([r["emails_per_s"] for r in raws])
        out.update({"emails_per_s": rate, "raw_emails_per_s": base_rate,
                    "ratio_raw_over_leadflow": round(base_rate / rate, 2),
                    "runs": runs, "raw_runs": raws})
    finally:
        for db in dbs:
            db.drop()
    return out


def main() -> None:
    """Parse options; run the benchmark, or one of its child processes."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engines", default="postgres")
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--kill", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--kill-at", type=float, default=0.35,
                        help="share of the steps sent when one worker is killed")
    parser.add_argument("--batch", type=int, default=500, help="rows per job call")
    parser.add_argument("--lease", type=float, default=10.0, help="delivery lease, seconds")
    parser.add_argument("--profile", default="",
                        help="cProfile the second worker into this path (.r<run>.prof)")
    parser.add_argument("--json", action="store_true")
    # Child processes of the benchmark itself.
    parser.add_argument("--role", choices=("main", "sink", "worker", "raw"), default="main",
                        help=argparse.SUPPRESS)
    parser.add_argument("--name", default="w", help=argparse.SUPPRESS)
    parser.add_argument("--phase-file", default="", help=argparse.SUPPRESS)
    parser.add_argument("--part", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--parts", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role != "main":
        {"sink": sink_main, "worker": worker_main, "raw": raw_main}[args.role](args)
        return
    result: dict[str, Any] = {"benchmark": "email", "steps": args.steps, "workers": 2,
                              "kill": args.kill, "lease_s": args.lease, "batch": args.batch,
                              "seed": SEED, "now": NOW.isoformat()}
    rows: list[list[str]] = []
    sink = Sink()
    try:
        for engine in (e.strip() for e in args.engines.split(",")):
            result[engine] = r = bench_engine(engine, sink, args)
            worst = {k: max(run["checks"][k] for run in r["runs"])
                     for k in r["runs"][0]["checks"]}
            rows.append([engine, " · ".join(f"{x['emails_per_s']:,}" for x in r["runs"])
                         + f" → {r['emails_per_s']:,}", f"{r['raw_emails_per_s']:,}",
                         f"{r['ratio_raw_over_leadflow']}x",
                         f"rows>1 {worst['steps_with_2plus_messages']}, unsent "
                         f"{worst['messages_not_sent']}, SMTP dup {worst['smtp_duplicates']}, "
                         f"missing {worst['smtp_missing']}"])
    finally:
        sink.stop()
    emit(result, as_json=args.json,
         title=f"{args.steps:,} automatic email steps, 2 workers"
               f"{', one killed with SIGKILL' if args.kill else ''} "
               f"(median of {args.runs})",
         headers=["engine", "leadflow emails/s", "raw emails/s", "ratio", "worst checks"],
         rows=rows)


if __name__ == "__main__":
    main()

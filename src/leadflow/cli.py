"""The ``leadflow`` command line. Reporting commands take ``--json``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from leadflow import clock, terminal
from leadflow.cadences.cli import cadences_app
from leadflow.campaigns import service as campaigns_service
from leadflow.campaigns.models import Channel
from leadflow.campaigns.schemas import CampaignCreate
from leadflow.db import session_scope
from leadflow.errors import DomainError
from leadflow.routing.cli import routing_app
from leadflow.scoring.cli import scoring_app
from leadflow.users import service as users_service
from leadflow.users.models import Role, Segment, Team, TeamKind, User
from leadflow.users.rules import Permission

app = typer.Typer(help="leadflow: lead-to-cash for online sales teams.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
db_app = typer.Typer(help="Create or migrate the database.", no_args_is_help=True)
users_app = typer.Typer(help="Users and API tokens.", no_args_is_help=True)
teams_app = typer.Typer(help="Teams.", no_args_is_help=True)
campaigns_app = typer.Typer(help="Campaigns.", no_args_is_help=True)
enrich_app = typer.Typer(help="Company background for enrichment.", no_args_is_help=True)
forms_app = typer.Typer(help="Web forms posting to the webhook.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(teams_app, name="teams")
app.add_typer(campaigns_app, name="campaigns")
app.add_typer(enrich_app, name="enrich")
app.add_typer(forms_app, name="forms")
app.add_typer(scoring_app, name="scoring")
app.add_typer(routing_app, name="routing")
app.add_typer(cadences_app, name="cadences")

console = terminal.console
JsonOpt = terminal.JsonOpt
_emit, _fail, _actor = terminal.emit, terminal.fail, terminal.acting_user
_progress = terminal.progress


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Create or migrate the database named by LEADFLOW_DATABASE_URL."""
    from leadflow import dbadmin

    dbadmin.upgrade(revision=revision)
    console.print("database is up to date")


@db_app.command("downgrade")
def db_downgrade(revision: str = typer.Argument(..., help="target revision, or 'base'")) -> None:
    """Migrate the database down to REVISION."""
    from leadflow import dbadmin

    dbadmin.downgrade(revision=revision)


@users_app.command("add")
def users_add(
    email: str,
    name: Annotated[str, typer.Option(help="Display name")],
    role: Annotated[Role, typer.Option(help="Role")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True)],
    team: Annotated[str | None, typer.Option(help="Team name")] = None,
    locale: Annotated[str, typer.Option(help="en or zh")] = "en",
    as_json: JsonOpt = False,
) -> None:
    """Add a user."""
    with session_scope() as session:
        team_id = None
        if team:
            team_id = session.scalar(select(Team.id).where(Team.name == team))
            if team_id is None:
                _fail(f"no team {team!r}")
        user = users_service.create_user(
            session=session, email=email, name=name, role=role, password=password,
            team_id=team_id, locale=locale, now=clock.now(),
        )
        _emit({"id": user.id, "email": user.email, "role": user.role}, as_json, "user added")


@users_app.command("list")
def users_list(as_json: JsonOpt = False) -> None:
    """List users."""
    with session_scope() as session:
        users = [
            {"id": u.id, "email": u.email, "name": u.name, "role": u.role, "team_id": u.team_id}
            for u in session.scalars(select(User).order_by(User.id))
        ]
    if as_json:
        sys.stdout.write(json.dumps({"users": users}, ensure_ascii=False) + "\n")
        return
    table = Table("id", "email", "name", "role", "team")
    for u in users:
        table.add_row(*(str(u[k]) for k in ("id", "email", "name", "role", "team_id")))
    Console().print(table)


@users_app.command("token")
def users_token(email: str, name: Annotated[str, typer.Option()] = "integration") -> None:
    """Issue an API token for a user (printed once; only its digest is stored)."""
    with session_scope() as session:
        user = _actor(session, email)
        assert user is not None
        token = users_service.issue_api_token(session=session, user=user, name=name,
                                              now=clock.now())
    sys.stdout.write(token + "\n")


@teams_app.command("add")
def teams_add(
    name: str,
    kind: Annotated[TeamKind, typer.Option()],
    segment: Annotated[Segment | None, typer.Option()] = None,
    product_line: Annotated[str | None, typer.Option()] = None,
    region: Annotated[str | None, typer.Option()] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a team."""
    with session_scope() as session:
        team = users_service.create_team(
            session=session, name=name, kind=kind, segment=segment, product_line=product_line,
            region=region, now=clock.now(),
        )
        _emit({"id": team.id, "name": team.name, "kind": team.kind}, as_json, "team added")


@campaigns_app.command("add")
def campaigns_add(
    name: str,
    channel: Annotated[Channel, typer.Option()],
    cost: Annotated[str, typer.Option()] = "0",
    product_line: Annotated[str | None, typer.Option()] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a campaign."""
    from decimal import Decimal

    with session_scope() as session:
        campaign = campaigns_service.create_campaign(
            session=session,
            data=CampaignCreate(name=name, channel=channel, cost=Decimal(cost),
                                product_line=product_line),
            now=clock.now(),
        )
        _emit({"id": campaign.id, "name": campaign.name}, as_json, "campaign added")


@campaigns_app.command("list")
def campaigns_list(as_json: JsonOpt = False) -> None:
    """Campaigns with their leads and cost per lead."""
    with session_scope() as session:
        rows = [
            {"id": r.campaign.id, "name": r.campaign.name, "channel": r.campaign.channel,
             "cost": str(r.campaign.cost), "touchpoints": r.touchpoints, "leads": r.leads,
             "cost_per_lead": str(r.cost_per_lead) if r.cost_per_lead is not None else None}
            for r in campaigns_service.list_campaigns(session=session)
        ]
    if as_json:
        sys.stdout.write(json.dumps({"campaigns": rows}, ensure_ascii=False) + "\n")
        return
    table = Table(*rows[0].keys()) if rows else Table("campaigns")
    for r in rows:
        table.add_row(*(str(v) for v in r.values()))
    Console().print(table)


@app.command("import")
def import_cmd(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    source: Annotated[str | None, typer.Option(help="Source name (default: file name)")] = None,
    campaign: Annotated[str | None, typer.Option(help="Campaign id or name")] = None,
    mapping: Annotated[Path | None, typer.Option(help="Header mapping file")] = None,
    rejects: Annotated[Path | None, typer.Option(help="Where to write rejected rows")] = None,
    user: Annotated[str | None, typer.Option(help="Acting user's email")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Import leads from a .csv, .xlsx or .jsonl file; prints a summary."""
    import time

    from leadflow.leads import files, imports

    try:
        user_mapping = files.load_mapping_file(mapping) if mapping else None
        files.open_rows(file, mapping=user_mapping).close()  # fail fast on a bad file
    except ValueError as exc:
        _fail(str(exc))
    with session_scope() as session:
        camp = campaigns_service.resolve(session=session, ref=campaign)
        actor = _actor(session, user, Permission.LEADS_IMPORT if user else None)
        campaign_id, actor_id = (camp.id if camp else None), (actor.id if actor else None)
    started = time.perf_counter()
    with _progress() as bar:
        task = bar.add_task(f"importing {file.name}", total=None, rate="")

        def report(done: int, total: int | None) -> None:
            rate = done / max(time.perf_counter() - started, 1e-9)
            bar.update(task, completed=done, total=total, rate=f"{rate:,.0f} rows/s")

        summary = imports.import_file(
            path=file, source=source or _default_source(file), campaign_id=campaign_id,
            actor_id=actor_id, mapping=user_mapping, progress=report, rejects_path=rejects,
        )
    data = summary.as_dict()
    data["seconds"] = round(time.perf_counter() - started, 3)
    from leadflow.routing import jobs as routing_jobs
    from leadflow.scoring import jobs as scoring_jobs

    scored = scoring_jobs.rescore_import(job_id=summary.job_id, now=clock.now())
    data["scored"] = scored.leads
    data["new_mqls"] = scored.new_mqls
    # Everything due is routed, the import's new leads and MQLs among them.
    data["routed"] = routing_jobs.route_all_due(now=clock.now()).as_dict()
    _emit(data, as_json, f"import of {file.name}")


def _default_source(file: Path) -> str:
    return "file:" + file.stem[:35]


@enrich_app.command("load")
def enrich_load(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    as_json: JsonOpt = False,
) -> None:
    """Load a firmographic table (company, industry, headcount, region, domain, …)."""
    from leadflow.cleaning.enrich import load_firmographics

    with session_scope() as session:
        count = load_firmographics(session=session, path=file, now=clock.now())
    _emit({"companies": count, "file": str(file)}, as_json, "firmographics loaded")


@app.command("export")
def export_cmd(
    kind: Annotated[str, typer.Argument(help="leads or touchpoints")],
    out: Annotated[Path, typer.Option("--out", help="Output file")],
    user: Annotated[str, typer.Option(help="Acting user's email (needs export permission)")],
    fmt: Annotated[str, typer.Option("--format", help="csv or xlsx")] = "csv",
    as_json: JsonOpt = False,
) -> None:
    """Export leads or touchpoints; audited."""
    from leadflow.audit import service as audit_service
    from leadflow.leads.export import ExportKind, export

    if fmt not in ("csv", "xlsx"):
        _fail("--format must be csv or xlsx")
    try:
        export_kind = ExportKind(kind)
    except ValueError:
        _fail("KIND must be leads or touchpoints")
    with session_scope() as session:
        actor = _actor(session, user, Permission.LEADS_EXPORT)
        assert actor is not None
        count = export(session=session, user=actor, kind=export_kind, path=out, fmt=fmt)
        audit_service.record(session=session, actor_id=actor.id, action="export",
                             target=export_kind, now=clock.now(),
                             detail={"rows": count, "file": str(out), "format": fmt,
                                     "via": "cli"})
    _emit({"kind": export_kind, "rows": count, "out": str(out)}, as_json, "export")


@forms_app.command("add")
def forms_add(
    name: str,
    source: Annotated[str, typer.Option()] = "web-form",
    campaign: Annotated[str | None, typer.Option()] = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a web form; prints its URL path and signing secret."""
    from leadflow.config import get_settings
    from leadflow.leads import forms

    with session_scope() as session:
        camp = campaigns_service.resolve(session=session, ref=campaign)
        form = forms.create_form(session=session, name=name, source=source,
                                 campaign_id=camp.id if camp else None, now=clock.now())
        secret = forms.secret_of(form, get_settings().resolved_secret_key())
        _emit({"form_key": form.form_key, "url": f"/api/v1/forms/{form.form_key}",
               "secret": secret, "signature_header": forms.SIGNATURE_HEADER},
              as_json, "form added")


@app.command("demo")
def demo_cmd(
    leads: Annotated[int, typer.Option(help="How many leads to generate")] = 30_000,
    seed: Annotated[int, typer.Option()] = 7,
    as_json: JsonOpt = False,
) -> None:
    """Fill the database with a realistic demo organisation."""
    from leadflow.demo.organisation import build_demo

    summary = build_demo(leads=leads, seed=seed, console=console)
    _emit(summary, as_json, "demo organisation")


@app.command("worker")
def worker_cmd(
    interval: Annotated[float, typer.Option(help="Seconds between passes")] = 15.0,
    once: Annotated[bool, typer.Option(help="Run one pass and exit")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run the periodic jobs: routing of due leads, SLA checks, recycling, away reps."""
    from leadflow import worker

    if once:
        _emit(worker.run_once(), as_json, "worker pass")
        return
    worker.run_forever(interval_s=interval)


@app.command("serve")
def serve_cmd(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    with_worker: Annotated[bool, typer.Option("--worker/--no-worker",
                                              help="Run a worker in-process")] = True,
    interval: Annotated[float, typer.Option(help="Worker seconds between passes")] = 15.0,
) -> None:
    """Run the web app (with an in-process worker unless --no-worker)."""
    import uvicorn

    if with_worker:
        from leadflow import worker

        worker.start_in_thread(interval_s=interval)
    uvicorn.run("leadflow.main:create_app", factory=True, host=host, port=port,
                log_level="info")


def main() -> None:
    """Entry point that turns domain errors into one clear line (exit code 2)."""
    try:
        app()
    except DomainError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        sys.exit(2)

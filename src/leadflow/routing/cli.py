"""``leadflow routing …``: route due leads, run the periodic checks, show the rules."""

from __future__ import annotations

import time

import typer
from rich.table import Table

from leadflow import clock, terminal
from leadflow.db import session_scope

routing_app = typer.Typer(help="Routing, pools and SLAs.", no_args_is_help=True)


@routing_app.command("route")
def route_cmd(as_json: terminal.JsonOpt = False) -> None:
    """Route every lead that is due (new, newly MQL, rerouted), with a progress bar."""
    from leadflow.routing import jobs

    now = clock.now()
    with terminal.progress() as bar:
        task = bar.add_task("routing leads", total=None, rate="")
        started = time.perf_counter()

        def report(done: int, total: int) -> None:
            rate = done / max(time.perf_counter() - started, 1e-9)
            bar.update(task, completed=done, total=total, rate=f"{rate:,.0f} leads/s")

        summary = jobs.route_all_due(now=now, progress=report)
    terminal.emit(summary.as_dict(), as_json, "routing")


@routing_app.command("sweep")
def sweep_cmd(as_json: terminal.JsonOpt = False) -> None:
    """Run the periodic checks once: SLA escalations, recycling, away reps, then routing."""
    from leadflow.routing import jobs

    terminal.emit(jobs.sweep(now=clock.now()).as_dict(), as_json, "routing sweep")


@routing_app.command("rules")
def rules_cmd(as_json: terminal.JsonOpt = False) -> None:
    """The routing table in order."""
    from leadflow.routing import service

    with session_scope() as session:
        rows = [{"position": r.position, "id": r.id, "name": r.name, "active": r.is_active,
                 "conditions": r.conditions, "team_id": r.team_id, "pool_id": r.pool_id}
                for r in service.list_rules(session=session)]
    if as_json:
        terminal.emit({"rules": rows}, True, "")
        return
    table = Table("#", "name", "conditions", "team", "pool", "active")
    for r in rows:
        table.add_row(str(r["position"]), str(r["name"]), str(r["conditions"]),
                      str(r["team_id"] or ""), str(r["pool_id"] or ""), str(r["active"]))
    terminal.console.print(table)


@routing_app.command("defaults")
def defaults_cmd(as_json: terminal.JsonOpt = False) -> None:
    """Fill an empty routing table with the brief's defaults for your teams."""
    from leadflow.routing import service

    with session_scope() as session:
        rules = service.create_default_rules(session=session, actor_id=None, now=clock.now())
        names = [r.name for r in rules]
    terminal.emit({"rules": names}, as_json, "default routing table")


@routing_app.command("check")
def check_cmd(as_json: terminal.JsonOpt = False) -> None:
    """Check the routing invariants: no lead without owner or pool, no rep over capacity."""
    from leadflow.routing import invariants

    with session_scope() as session:
        report = invariants.check(session=session)
    terminal.emit(report, as_json, "routing check")
    if any(report.values()):
        raise typer.Exit(1)


@routing_app.command("weights")
def weights_cmd(
    team: str = typer.Argument(..., help="team name"),
    days: int = typer.Option(90, help="history window in days"),
    as_json: terminal.JsonOpt = False,
) -> None:
    """Set a team's rep weights from their conversion (for weighted routing)."""
    from sqlalchemy import select

    from leadflow.routing import service
    from leadflow.users.models import Team, User

    with session_scope() as session:
        team_id = session.scalar(select(Team.id).where(Team.name == team))
        if team_id is None:
            terminal.fail(f"no team named {team!r}")
            return
        weights = service.weights_from_performance(session=session, team_id=team_id,
                                                   now=clock.now(), days=days)
        names = {uid: name for uid, name in session.execute(
            select(User.id, User.name).where(User.id.in_(weights)))}
    terminal.emit({"team": team, "weights": {names[u]: w for u, w in weights.items()}},
                  as_json, "rep weights")

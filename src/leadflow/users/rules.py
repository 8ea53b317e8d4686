"""Who may do what: permissions follow from the role. Pure; no database."""

from __future__ import annotations

from enum import StrEnum

from leadflow.users.models import Role


class Permission(StrEnum):
    """A capability checked at the edge (routes, pages, CLI)."""

    LEADS_READ_ALL = "leads.read_all"
    LEADS_READ_TEAM = "leads.read_team"
    LEADS_READ_OWN = "leads.read_own"
    LEADS_CAPTURE = "leads.capture"
    LEADS_IMPORT = "leads.import"
    LEADS_MERGE = "leads.merge"
    LEADS_EXPORT = "leads.export"
    CAMPAIGNS_MANAGE = "campaigns.manage"
    CAMPAIGNS_READ = "campaigns.read"
    USERS_MANAGE = "users.manage"
    ENRICH_LOAD = "enrich.load"
    FORMS_MANAGE = "forms.manage"
    SCORING_MANAGE = "scoring.manage"
    SCORING_READ = "scoring.read"
    # Routing: edit rules, policies and pools, reroute triage, transfer any lead.
    ROUTING_MANAGE = "routing.manage"
    # A team lead's share of it: their team's board, triage, breaches and transfers.
    ROUTING_TEAM = "routing.team"
    # Claim from a pool, reject or return own leads, log touches.
    LEADS_WORK = "leads.work"
    # Cadences, nurture programs and A/B tests: edit them, read their reports.
    CADENCES_MANAGE = "cadences.manage"


_P = Permission
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.MANAGER: frozenset(
        {_P.LEADS_READ_ALL, _P.LEADS_CAPTURE, _P.LEADS_IMPORT, _P.LEADS_MERGE, _P.LEADS_EXPORT,
         _P.CAMPAIGNS_READ, _P.CAMPAIGNS_MANAGE, _P.ENRICH_LOAD, _P.FORMS_MANAGE,
         _P.SCORING_READ, _P.ROUTING_MANAGE, _P.ROUTING_TEAM, _P.CADENCES_MANAGE}
    ),
    Role.TEAM_LEAD: frozenset(
        {_P.LEADS_READ_TEAM, _P.LEADS_CAPTURE, _P.LEADS_MERGE, _P.CAMPAIGNS_READ,
         _P.SCORING_READ, _P.ROUTING_TEAM, _P.LEADS_WORK}
    ),
    Role.REP: frozenset({_P.LEADS_READ_OWN, _P.LEADS_CAPTURE, _P.CAMPAIGNS_READ,
                         _P.LEADS_WORK}),
    Role.PRESALES: frozenset({_P.LEADS_READ_OWN, _P.LEADS_CAPTURE, _P.CAMPAIGNS_READ,
                              _P.LEADS_WORK}),
    Role.MARKETER: frozenset(
        {_P.LEADS_READ_ALL, _P.LEADS_CAPTURE, _P.LEADS_IMPORT, _P.LEADS_EXPORT,
         _P.CAMPAIGNS_READ, _P.CAMPAIGNS_MANAGE, _P.ENRICH_LOAD, _P.FORMS_MANAGE,
         _P.SCORING_READ, _P.CADENCES_MANAGE}
    ),
    Role.ANALYST: frozenset(
        {_P.LEADS_READ_ALL, _P.LEADS_EXPORT, _P.CAMPAIGNS_READ, _P.SCORING_READ}
    ),
}


def has_permission(role: Role, permission: Permission) -> bool:
    """True when ``role`` grants ``permission``."""
    return permission in ROLE_PERMISSIONS[Role(role)]


class LeadScope(StrEnum):
    """Which leads a user may see."""

    ALL = "all"
    TEAM = "team"
    OWN = "own"


def lead_scope(role: Role) -> LeadScope:
    """The widest lead visibility ``role`` grants."""
    perms = ROLE_PERMISSIONS[Role(role)]
    if Permission.LEADS_READ_ALL in perms:
        return LeadScope.ALL
    if Permission.LEADS_READ_TEAM in perms:
        return LeadScope.TEAM
    return LeadScope.OWN

"""Imports every domain's models so metadata (and Alembic) sees all tables."""

from leadflow.audit.models import AuditEntry
from leadflow.cadences.models import (
    Cadence,
    CadenceStep,
    Enrollment,
    Experiment,
    ExperimentArm,
    Task,
)
from leadflow.campaigns.models import Campaign
from leadflow.cleaning.models import Firmographic, LeadMerge
from leadflow.db import Base
from leadflow.events.models import OutboxEvent
from leadflow.leads.models import (
    Activity,
    FormEndpoint,
    ImportJob,
    ImportReject,
    Lead,
    Touchpoint,
)
from leadflow.messaging.models import Message, Suppression, TrackingEvent
from leadflow.routing.models import (
    LeadPool,
    Notice,
    Ownership,
    RepAbsence,
    RepDayLoad,
    RepPass,
    RepProfile,
    RoutingRule,
    SlaBreach,
    TeamPolicy,
)
from leadflow.scoring.models import GradeFlag, LeadScore, ScoringModel, ScoringRuleset
from leadflow.users.models import ApiToken, Team, User

__all__ = [
    "Activity",
    "ApiToken",
    "AuditEntry",
    "Base",
    "Cadence",
    "CadenceStep",
    "Campaign",
    "Enrollment",
    "Experiment",
    "ExperimentArm",
    "Firmographic",
    "FormEndpoint",
    "GradeFlag",
    "ImportJob",
    "ImportReject",
    "Lead",
    "LeadMerge",
    "LeadPool",
    "LeadScore",
    "Message",
    "Notice",
    "OutboxEvent",
    "Ownership",
    "RepAbsence",
    "RepDayLoad",
    "RepPass",
    "RepProfile",
    "RoutingRule",
    "ScoringModel",
    "ScoringRuleset",
    "SlaBreach",
    "Suppression",
    "Task",
    "Team",
    "TeamPolicy",
    "Touchpoint",
    "TrackingEvent",
    "User",
]

"""Lead pages: the list, one lead with its timeline and merges, and file imports."""

from __future__ import annotations

import csv
import io
import logging
import re
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask
from starlette.datastructures import FormData, UploadFile

from leadflow import clock
from leadflow.audit import service as audit_service
from leadflow.cadences import pages as cadences_pages
from leadflow.campaigns import service as campaigns_service
from leadflow.campaigns.models import Campaign
from leadflow.cleaning import service as cleaning_service
from leadflow.config import get_settings
from leadflow.db import session_scope
from leadflow.deps import CsrfChecked, PageUser, SessionDep, require_page
from leadflow.errors import DomainError, InvalidInput, NotFound
from leadflow.leads import export as lead_export
from leadflow.leads import files, imports
from leadflow.leads import service as leads_service
from leadflow.leads.models import ImportJob, ImportReject, ImportStatus, LeadStatus
from leadflow.routing import boards as routing_boards
from leadflow.routing import jobs as routing_jobs
from leadflow.routing import pages as routing_pages
from leadflow.scoring import jobs as scoring_jobs
from leadflow.scoring import service as scoring_service
from leadflow.scoring.models import LeadScore
from leadflow.scoring.schemas import GRADES
from leadflow.users.models import User
from leadflow.users.rules import Permission
from leadflow.web.render import N_, flash, is_htmx, render

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

Merger = Annotated[User, Depends(require_page(Permission.LEADS_MERGE))]
Importer = Annotated[User, Depends(require_page(Permission.LEADS_IMPORT))]
# Declared after the user in page signatures: dependencies resolve in order, so an expired
# login redirects to the login page before the token is checked.
Csrf = Annotated[None, CsrfChecked]
# Ids are 32-bit integers in PostgreSQL; a larger number must be a 404, not a database error.
MAX_ID = 2**31 - 1
DbId = Annotated[int, PathParam(ge=1, le=MAX_ID)]

PER_PAGE = 50
MAX_UPLOAD_BYTES = 200 * 1024 * 1024
# Multipart framing and the other form fields ride on top of the file itself.
_MULTIPART_SLACK = 1024 * 1024
REJECTS_SHOWN = 200
RECENT_JOBS = 20
DEFAULT_SOURCE = "import"
_COPY_CHUNK = 1 << 20
_UNSAFE_FILENAME = re.compile(r"[^\w.\-]+")

STATUS_LABELS: dict[str, str] = {
    LeadStatus.NEW: N_("New"),
    LeadStatus.NURTURING: N_("Nurturing"),
    LeadStatus.ASSIGNED: N_("Assigned"),
    LeadStatus.WORKING: N_("Working"),
    LeadStatus.QUALIFIED: N_("Qualified"),
    LeadStatus.DISQUALIFIED: N_("Disqualified"),
    LeadStatus.CONVERTED: N_("Converted"),
    LeadStatus.MERGED: N_("Merged"),
}
TIMELINE_LABELS: dict[str, str] = {
    "captured": N_("Captured"),
    "merged": N_("Merged"),
    "merge_undone": N_("Merge undone"),
    "updated": N_("Lead updated"),
    "enriched": N_("Enriched"),
    "conflict": N_("Conflict"),
    "note": N_("Note"),
    "assigned": N_("Assigned"),
    "status_changed": N_("Status changed"),
    "form_submitted": N_("Form submitted"),
    "email_opened": N_("Email opened"),
    "email_clicked": N_("Email link clicked"),
    "content_read": N_("Content read"),
    "web_visit": N_("Website visit"),
    "webinar_attended": N_("Webinar attended"),
    "community_class": N_("Community class"),
    "paid_consultation": N_("Paid consultation"),
    "gift_claimed": N_("Free gift claimed"),
    "replied": N_("Replied"),
    "meeting_booked": N_("Meeting booked"),
    "email_bounced": N_("Email bounced"),
    "unsubscribed": N_("Unsubscribed"),
    "not_interested": N_("Not interested"),
    "grade_changed": N_("Grade changed"),
    "mql_reached": N_("Became an MQL"),
    "grade_flagged": N_("Grade flagged"),
    "pooled": N_("Put in a pool"),
    "rejected": N_("Rejected by the owner"),
    "returned": N_("Returned to nurture"),
    "recycled": N_("Recycled to the pool"),
    "recycle_warned": N_("Recycle warning"),
    "claimed": N_("Claimed"),
    "transferred": N_("Transferred"),
    "sla_breached": N_("SLA breached"),
    "call_logged": N_("Call"),
    "email_sent": N_("Email sent"),
    "message_sent": N_("Message sent"),
    "meeting_held": N_("Meeting held"),
    "enrolled": N_("Enrolled in a cadence"),
    "cadence_paused": N_("Cadence paused"),
    "cadence_resumed": N_("Cadence resumed"),
    "cadence_ended": N_("Cadence ended"),
    "task_skipped": N_("Task skipped"),
    "out_of_office": N_("Out of office"),
}
IMPORT_STATUS_LABELS: dict[str, str] = {
    ImportStatus.QUEUED: N_("Queued"),
    ImportStatus.RUNNING: N_("Running"),
    ImportStatus.DONE: N_("Done"),
    ImportStatus.FAILED: N_("Failed"),
}
# Lead fields, match keys and reject fields share one vocabulary.
FIELD_LABELS: dict[str, str] = {
    "name": N_("Name"),
    "given_name": N_("Given name"),
    "family_name": N_("Family name"),
    "phone": N_("Phone"),
    "phone_raw": N_("Phone as entered"),
    "email": N_("Email"),
    "wechat_id": N_("WeChat ID"),
    "title": N_("Title"),
    "company": N_("Company"),
    "company_key": N_("Company key"),
    "industry": N_("Industry"),
    "headcount": N_("Headcount"),
    "region": N_("Region"),
    "province": N_("Province"),
    "city": N_("City"),
    "address": N_("Address"),
    "postcode": N_("Postcode"),
    "product_interest": N_("Product interest"),
    "language": N_("Language"),
    "notes": N_("Notes"),
    "tags": N_("Tags"),
    "consent": N_("Consent"),
    "do_not_contact": N_("Do not contact"),
    "status": N_("Status"),
    "owner": N_("Owner"),
    "source": N_("Source"),
    "campaign": N_("Campaign"),
    "grade": N_("Grade"),
    "score": N_("Score"),
    "channel": N_("Channel"),
    "has_phone": N_("Has a phone number"),
    "has_email": N_("Has an email address"),
    "has_wechat": N_("Has a WeChat id"),
    "created_at": N_("Created"),
    "updated_at": N_("Last updated"),
    "manual": N_("merged by hand"),
    "_row": N_("Row"),
}
REASON_SOURCES: dict[str, str] = {
    "fit": N_("Fit"), "engagement": N_("Engagement"), "model": N_("Learned"),
    "override": N_("Rule"),
}
# Engagement reasons in words; %(n)s is how many times.
ACTIVITY_PHRASES: dict[str, str] = {
    "captured": N_("left details %(n)s×"),
    "form_submitted": N_("submitted forms %(n)s×"),
    "email_opened": N_("opened emails %(n)s×"),
    "email_clicked": N_("clicked email links %(n)s×"),
    "content_read": N_("read content %(n)s×"),
    "web_visit": N_("visited the website %(n)s×"),
    "webinar_attended": N_("attended webinars %(n)s×"),
    "community_class": N_("attended community classes %(n)s×"),
    "paid_consultation": N_("paid for a consultation %(n)s×"),
    "gift_claimed": N_("claimed a free gift %(n)s×"),
    "replied": N_("replied %(n)s×"),
    "meeting_booked": N_("booked meetings %(n)s×"),
    "email_bounced": N_("email bounced %(n)s×"),
    "unsubscribed": N_("unsubscribed %(n)s×"),
    "not_interested": N_("said not interested %(n)s×"),
}
# Shown on the detail page, in this order (name and status head the page).
DETAIL_FIELDS: tuple[str, ...] = (
    "phone", "phone_raw", "email", "wechat_id", "title", "company", "industry", "headcount",
    "region", "province", "city", "address", "postcode", "product_interest", "language",
)


class FileTooLarge(DomainError):
    """An upload over :data:`MAX_UPLOAD_BYTES`."""

    status_code = 413


def _labels() -> dict[str, dict[str, str]]:
    return {"status_labels": STATUS_LABELS, "timeline_labels": TIMELINE_LABELS,
            "import_status_labels": IMPORT_STATUS_LABELS, "field_labels": FIELD_LABELS}


def _int_or_none(value: object) -> int | None:
    """A positive id typed by a user (``#12`` too), else ``None``."""
    text = str(value or "").strip().lstrip("#")
    if not text.isascii() or not text.isdigit() or not 0 < int(text) <= MAX_ID:
        return None
    return int(text)


def _campaign_names(session: Session) -> dict[int, str]:
    """Campaign id → name for selects and labels (campaigns are few; no service for it)."""
    rows = session.execute(select(Campaign.id, Campaign.name).order_by(Campaign.name))
    return {campaign_id: name for campaign_id, name in rows}


def _user_names(session: Session, ids: set[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = session.execute(select(User.id, User.name).where(User.id.in_(wanted)))
    return {user_id: name for user_id, name in rows}


# --------------------------------------------------------------------------- lead list


@router.get("/leads", response_class=HTMLResponse)
def lead_list(
    request: Request,
    session: SessionDep,
    user: PageUser,
    q: str = "",
    status: str = "",
    campaign: str = "",
    source: str = "",
    grade: str = "",
    page: str = "1",
) -> HTMLResponse:
    """Leads the user may see, filtered; HTMX requests get only the table."""
    status_value = status if status in {s.value for s in LeadStatus} else ""
    flt = leads_service.LeadFilter(
        q=q.strip() or None,
        status=LeadStatus(status_value) if status_value else None,
        campaign_id=_int_or_none(campaign),
        source=source.strip() or None,
        grade=grade if grade in GRADES else None,
    )
    result = leads_service.list_leads(session=session, user=user, flt=flt,
                                      page=_int_or_none(page) or 1, per_page=PER_PAGE)
    filters = {"q": flt.q or "", "status": status_value,
               "campaign": str(flt.campaign_id or ""), "source": flt.source or "",
               "grade": flt.grade or ""}
    query = {k: v for k, v in filters.items() if v}

    def page_url(number: int) -> str:
        return "/leads?" + urlencode({**query, "page": number})

    context = {
        "result": result, "filters": filters, "page_url": page_url,
        "export_query": urlencode(query),
        "campaigns": _campaign_names(session),
        "statuses": [s for s in LeadStatus if s is not LeadStatus.MERGED],
        "grades": GRADES,
        **_labels(),
    }
    template = "leads/_table.html" if is_htmx(request) else "leads/list.html"
    return render(request, template, context, user=user)


@router.get("/leads/export")
def export_leads(
    session: SessionDep,
    user: Annotated[User, Depends(require_page(Permission.LEADS_EXPORT))],
    q: str = "",
    status: str = "",
    campaign: str = "",
    source: str = "",
    grade: str = "",
    format: str = "csv",
) -> FileResponse:
    """The current list as CSV or Excel; needs the export permission and is audited."""
    fmt = "xlsx" if format == "xlsx" else "csv"
    flt = leads_service.LeadFilter(
        q=q.strip() or None,
        status=LeadStatus(status) if status in {s.value for s in LeadStatus} else None,
        campaign_id=_int_or_none(campaign), source=source.strip() or None,
        grade=grade if grade in GRADES else None,
    )
    handle = tempfile.NamedTemporaryFile(suffix=f".{fmt}", delete=False)  # noqa: SIM115
    handle.close()
    path = Path(handle.name)
    count = lead_export.export(session=session, user=user, kind=lead_export.ExportKind.LEADS,
                               path=path, fmt=fmt, flt=flt)
    audit_service.record(session=session, actor_id=user.id, action="export", target="leads",
                         now=clock.now(), detail={"rows": count, "format": fmt, "via": "web",
                                                  "filter": {"q": q, "status": status,
                                                             "campaign": campaign,
                                                             "source": source,
                                                             "grade": grade}})
    return FileResponse(path, filename=f"leads.{fmt}",
                        background=BackgroundTask(path.unlink, missing_ok=True))


# --------------------------------------------------------------------------- one lead


@router.get("/leads/{lead_id}", response_class=HTMLResponse)
def lead_detail(lead_id: DbId, request: Request, session: SessionDep,
                user: PageUser) -> HTMLResponse:
    """A lead: fields, timeline with match reasons, touchpoints and merges."""
    lead = leads_service.get_lead(session=session, user=user, lead_id=lead_id)
    merges = cleaning_service.merges_of(session=session, lead_id=lead.id)
    now = clock.now()
    score = session.get(LeadScore, lead.id)
    explanation = None if lead.merged_into_id else scoring_service.explain(
        session=session, lead_id=lead.id, now=now)
    context = {
        "lead": lead,
        "score": score,
        "explanation": explanation.decision if explanation else None,
        "next_grade": explanation.next_grade if explanation else None,
        "reason_sources": REASON_SOURCES,
        "activity_phrases": ACTIVITY_PHRASES,
        "timeline": leads_service.timeline(session=session, lead_id=lead.id),
        "touchpoints": leads_service.touchpoints(session=session, lead_id=lead.id),
        "merges": merges,
        "merges_by_id": {m.id: m for m in merges},
        "campaigns": _campaign_names(session),
        "people": _user_names(session, {lead.owner_id, *(m.actor_id for m in merges)}),
        "detail_fields": DETAIL_FIELDS,
        "ownership": None if lead.merged_into_id else routing_boards.ownership_card(
            session=session, lead=lead, viewer=user),
        "cadence_card": None if lead.merged_into_id else cadences_pages.lead_card(
            session=session, lead=lead, viewer=user),
        **cadences_pages.LABELS,
        **routing_pages.LABELS,
        **_labels(),
    }
    return render(request, "leads/detail.html", context, user=user)


@router.post("/leads/{lead_id}/merge")
def merge_lead(
    lead_id: DbId,
    request: Request,
    session: SessionDep,
    user: Merger,
    _csrf: Csrf,
    other: Annotated[str, Form()] = "",
) -> RedirectResponse:
    """Merge this lead with lead number ``other``; the earlier lead survives."""
    other_id = _int_or_none(other)
    if other_id is None:
        raise InvalidInput(N_("Enter the number of the lead to merge with."), field="other")
    # Both leads must be visible to the user: a 404 otherwise, as for reading them.
    for visible_id in (lead_id, other_id):
        leads_service.get_lead(session=session, user=user, lead_id=visible_id)
    merge = cleaning_service.merge_leads(session=session, lead_ids=(lead_id, other_id),
                                         actor_id=user.id, now=clock.now())
    flash(request, N_("The leads were merged."))
    return RedirectResponse(f"/leads/{merge.survivor_id}", status_code=303)


@router.post("/leads/{lead_id}/merges/{merge_id}/undo")
def undo_merge(
    lead_id: DbId, merge_id: DbId, request: Request, session: SessionDep, user: Merger,
    _csrf: Csrf,
) -> RedirectResponse:
    """Undo a merge this (visible) lead took part in."""
    lead = leads_service.get_lead(session=session, user=user, lead_id=lead_id)
    if all(m.id != merge_id for m in cleaning_service.merges_of(session=session,
                                                                 lead_id=lead.id)):
        raise NotFound(f"merge {merge_id} not found")
    cleaning_service.undo_merge(session=session, merge_id=merge_id, actor_id=user.id,
                                now=clock.now())
    flash(request, N_("The merge was undone."))
    return RedirectResponse(f"/leads/{lead.id}", status_code=303)


# --------------------------------------------------------------------------- imports


def _recent_jobs(session: Session) -> list[ImportJob]:
    return list(session.scalars(select(ImportJob).order_by(ImportJob.id.desc())
                                .limit(RECENT_JOBS)))


def _import_form(
    request: Request, session: Session, user: User, *, error: str | None = None,
    values: dict[str, str] | None = None, status_code: int = 200,
) -> HTMLResponse:
    context = {
        "jobs": _recent_jobs(session),
        "campaigns": _campaign_names(session),
        "suffixes": sorted(files.SUPPORTED_SUFFIXES),
        "max_mb": MAX_UPLOAD_BYTES // (1024 * 1024),
        "error": error,
        "values": values or {"source": DEFAULT_SOURCE, "campaign": ""},
        **_labels(),
    }
    return render(request, "imports/index.html", context, user=user, status_code=status_code)


@router.get("/imports", response_class=HTMLResponse)
def import_page(request: Request, session: SessionDep, user: Importer) -> HTMLResponse:
    """The upload form and the recent import jobs."""
    return _import_form(request, session, user)


def _refuse_oversized(request: Request) -> None:
    """Refuse a declared oversized upload before its body is read and spooled."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES + _MULTIPART_SLACK:
        raise FileTooLarge(N_("The file is larger than 200 MB."), field="file")


async def _form(request: Request) -> FormData:
    """The parsed form (parsed once; the CSRF check reads the same one)."""
    return await request.form()


def _safe_name(filename: str) -> str:
    """A file name safe to put on disk: word characters, dots and dashes only."""
    stem, suffix = Path(filename).stem, Path(filename).suffix.lower()
    stem = _UNSAFE_FILENAME.sub("_", stem).strip("._")[:100] or "upload"
    return stem + suffix


def _save_upload(source: IO[bytes], dest: Path) -> int:
    """Copy the upload to ``dest`` in chunks; refuse (and delete) it past the size cap."""
    size = 0
    try:
        with dest.open("wb") as out:
            while chunk := source.read(_COPY_CHUNK):
                size += len(chunk)
                if size > MAX_UPLOAD_BYTES:
                    raise FileTooLarge(N_("The file is larger than 200 MB."), field="file")
                out.write(chunk)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return size


def _run_import(job_id: int) -> None:
    """Thread body: run the job; a failure is already recorded on the job, so just log it."""
    try:
        imports.run_job(job_id)
        scoring_jobs.rescore_import(job_id=job_id, now=clock.now())
        routing_jobs.route_all_due(now=clock.now())
    except Exception:
        log.exception("import job %s failed", job_id)


@router.post("/imports", response_model=None,
             dependencies=[Depends(_refuse_oversized)])
def upload_import(
    request: Request,
    session: SessionDep,
    user: Importer,
    _csrf: Csrf,
    form: Annotated[FormData, Depends(_form)],
) -> HTMLResponse | RedirectResponse:
    """Store the upload, queue an import job, run it in a thread and show its report."""
    upload = form.get("file")
    source = str(form.get("source") or "").strip()[:40] or DEFAULT_SOURCE
    campaign_id = _int_or_none(form.get("campaign"))
    values = {"source": source, "campaign": str(campaign_id or "")}
    if not isinstance(upload, UploadFile) or not upload.filename:
        return _import_form(request, session, user, error=N_("Choose a file to import."),
                            values=values, status_code=422)
    if Path(upload.filename).suffix.lower() not in files.SUPPORTED_SUFFIXES:
        return _import_form(request, session, user,
                            error=N_("This file type cannot be imported."),
                            values=values, status_code=422)
    campaign = campaigns_service.resolve(session=session, ref=campaign_id)
    folder = get_settings().upload_dir
    folder.mkdir(parents=True, exist_ok=True)
    filename = upload.filename.replace("\\", "/").rsplit("/", 1)[-1][:255]
    dest = folder / f"{uuid.uuid4().hex}_{_safe_name(filename)}"
    _save_upload(upload.file, dest)
    job = imports.create_job(
        session=session, path=dest.resolve(), filename=filename, source=source,
        campaign_id=campaign.id if campaign else None, actor_id=user.id, now=clock.now(),
    )
    # The job runs in its own sessions on another thread: it must be able to read it now.
    session.commit()
    threading.Thread(target=_run_import, args=(job.id,), name=f"import-{job.id}",
                     daemon=True).start()
    return RedirectResponse(f"/imports/{job.id}", status_code=303)


def _job(session: Session, job_id: int) -> ImportJob:
    job = session.get(ImportJob, job_id)
    if job is None:
        raise NotFound(f"import {job_id} not found")
    return job


def _status_context(session: Session, job: ImportJob) -> dict[str, Any]:
    finished = job.status in (ImportStatus.DONE, ImportStatus.FAILED)
    rejects: list[ImportReject] = []
    if finished and job.rejected:
        rejects = list(session.scalars(
            select(ImportReject).where(ImportReject.job_id == job.id)
            .order_by(ImportReject.row_number).limit(REJECTS_SHOWN)
        ))
    if job.status == ImportStatus.DONE:
        percent = 100
    elif job.total_rows:
        percent = min(100, round(100 * job.rows_read / job.total_rows))
    else:
        percent = 0
    campaign = session.get(Campaign, job.campaign_id) if job.campaign_id else None
    return {"job": job, "finished": finished, "rejects": rejects, "percent": percent,
            "campaign": campaign, **_labels()}


@router.get("/imports/{job_id}", response_class=HTMLResponse)
def import_report(job_id: DbId, request: Request, session: SessionDep,
                  user: Importer) -> HTMLResponse:
    """An import's report; it follows the job's progress while it runs."""
    job = _job(session, job_id)
    return render(request, "imports/report.html", _status_context(session, job), user=user)


@router.get("/imports/{job_id}/progress", response_class=HTMLResponse)
def import_progress(job_id: DbId, request: Request, session: SessionDep,
                    user: Importer) -> HTMLResponse:
    """The status block of an import, polled by the report page."""
    job = _job(session, job_id)
    return render(request, "imports/_status.html", _status_context(session, job), user=user)


def _original_headers(session: Session, job: ImportJob) -> list[str]:
    """The uploaded file's columns, in file order; from the rejects if the file is gone."""
    if job.stored_path and Path(job.stored_path).exists():
        try:
            with files.open_rows(Path(job.stored_path)) as lead_file:
                return list(lead_file.headers)
        except (OSError, ValueError):
            log.warning("cannot read headers of %s", job.stored_path, exc_info=True)
    raw = session.scalar(select(ImportReject.raw).where(ImportReject.job_id == job.id)
                         .order_by(ImportReject.row_number).limit(1))
    return [h for h in (raw or {}) if h != "_extra"]


def _reject_lines(job_id: int, headers: list[str]) -> Iterator[str]:
    """The rejects as CSV text, a batch of rows at a time, from the job's own session."""
    # A BOM so Excel on Chinese Windows opens the file as UTF-8, not GBK.
    yield "\ufeff"
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(["row_number", "field", "reason", *headers])
    with session_scope() as session:
        rows = session.execute(
            select(ImportReject.row_number, ImportReject.field, ImportReject.reason,
                   ImportReject.raw)
            .where(ImportReject.job_id == job_id)
            .order_by(ImportReject.row_number)
            .execution_options(yield_per=1000)
        )
        for count, (number, field, reason, raw) in enumerate(rows, start=1):
            writer.writerow([number, field or "", reason, *(raw.get(h, "") for h in headers)])
            if count % 1000 == 0:
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
    yield buf.getvalue()


@router.get("/imports/{job_id}/rejects.csv")
def import_rejects(job_id: DbId, session: SessionDep, user: Importer) -> StreamingResponse:
    """Download the rejected rows: row number, field, reason, then the row as it was."""
    job = _job(session, job_id)
    headers = _original_headers(session, job)
    return StreamingResponse(
        _reject_lines(job.id, headers),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="import-{job.id}-rejects.csv"'},
    )

"""Public web forms posting to ``/api/v1/forms/{form_key}`` with an HMAC-SHA256 signature."""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy import select
from sqlalchemy.orm import Session

from leadflow.cleaning.rules import MatchThresholds
from leadflow.errors import InvalidInput, NotAuthenticated, NotFound
from leadflow.leads import files
from leadflow.leads.capture import CaptureResult, IncomingRecord, capture_retrying
from leadflow.leads.models import FormEndpoint
from leadflow.users import security

SIGNATURE_HEADER = "X-Leadflow-Signature"
_ID_KEYS = ("submission_id", "external_id", "id")


def create_form(
    *, session: Session, name: str, source: str, campaign_id: int | None, now: datetime,
    field_mapping: dict[str, str] | None = None,
) -> FormEndpoint:
    """Register a form; its secret is derived (see :func:`secret_of`)."""
    form = FormEndpoint(
        form_key=secrets.token_urlsafe(12), name=name, source=source, campaign_id=campaign_id,
        secret_nonce=secrets.token_urlsafe(16), field_mapping=field_mapping or {},
        created_at=now,
    )
    session.add(form)
    session.flush()
    return form


def secret_of(form: FormEndpoint, app_secret: str) -> str:
    """The form's signing secret, shown to the admin to configure the sender."""
    return security.form_secret(app_secret, form.form_key, form.secret_nonce)


def parse_body(body: bytes, content_type: str) -> dict[str, Any]:
    """A form post as a flat dict: JSON object or urlencoded fields."""
    try:
        if "json" in content_type or body.lstrip().startswith(b"{"):
            data = json.loads(body)
            if not isinstance(data, dict):
                raise InvalidInput("the body must be a JSON object")
            return data
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=False))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"unreadable form body: {exc}") from exc


def receive(
    *,
    session: Session,
    form_key: str,
    body: bytes,
    content_type: str,
    signature: str | None,
    idempotency_key: str | None,
    app_secret: str,
    now: datetime,
    thresholds: MatchThresholds,
) -> CaptureResult:
    """Verify and capture one form submission.

    1. The form must exist and be active; the signature must match the raw body.
    2. The record's identity is the payload's submission id, else the Idempotency-Key
       header, else a digest of the body, so a retried delivery creates nothing twice.
    3. Fields map through the form's own mapping, then the common header names.
    """
    form = session.scalar(select(FormEndpoint).where(FormEndpoint.form_key == form_key))
    if form is None or not form.is_active:
        raise NotFound("unknown form")
    if not security.verify_signature(secret_of(form, app_secret), body, signature):
        raise NotAuthenticated(f"missing or wrong {SIGNATURE_HEADER} signature")
    data = parse_body(body, content_type)
    external_id = next((str(data[k]) for k in _ID_KEYS if data.get(k)), None)
    external_id = external_id or idempotency_key or (
        "sha256:" + hashlib.sha256(body).hexdigest()[:40]
    )
    raw = {k: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
           for k, v in data.items()}
    mapping = {**files.detect_mapping(list(raw)), **form.field_mapping}
    record = files.apply_mapping(raw, mapping)
    for key in _ID_KEYS:  # the identity lives on the touchpoint, not in custom fields
        record.pop(f"custom:{key}", None)
    incoming = IncomingRecord(external_id=external_id[:128], record=record, raw=data)
    return capture_retrying(
        session=session, records=[incoming], source=form.source, campaign_id=form.campaign_id,
        now=now, thresholds=thresholds,
    )

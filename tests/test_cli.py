"""The command line: users, exports with permission and audit, enrichment, forms."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from leadflow.audit.models import AuditEntry


def leadflow(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "leadflow", *args], capture_output=True,
                          text=True, timeout=300, input=input)


def test_users_add_and_list(db: Engine) -> None:
    out = leadflow("users", "add", "ops@corp.cn", "--name", "运营", "--role", "marketer",
                   "--password", "long-enough-pw", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["role"] == "marketer"
    listed = json.loads(leadflow("users", "list", "--json").stdout)
    assert [u["email"] for u in listed["users"]] == ["ops@corp.cn"]
    again = leadflow("users", "add", "ops@corp.cn", "--name", "x", "--role", "rep",
                     "--password", "long-enough-pw")
    assert again.returncode == 2 and "already exists" in again.stderr


def test_export_needs_permission_and_is_audited(db: Engine, session: Session,
                                                tmp_path: Path) -> None:
    for email, role in (("rep@corp.cn", "rep"), ("analyst@corp.cn", "analyst")):
        assert leadflow("users", "add", email, "--name", role, "--role", role,
                        "--password", "long-enough-pw").returncode == 0
    source = tmp_path / "list.csv"
    source.write_text("id,姓名,手机\n1,张伟,13800138000\n2,李娜,13900139000\n", encoding="utf-8")
    assert leadflow("import", str(source), "--source", "expo").returncode == 0
    out = tmp_path / "tp.csv"
    refused = leadflow("export", "touchpoints", "--out", str(out), "--user", "rep@corp.cn")
    assert refused.returncode == 2 and not out.exists()
    done = leadflow("export", "touchpoints", "--out", str(out), "--user", "analyst@corp.cn",
                    "--json")
    assert done.returncode == 0, done.stderr
    with out.open(encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["external_id"] for r in rows} == {"1", "2"}
    assert {"source", "external_id", "lead_id", "campaign", "received_at"} <= set(rows[0])
    entry = session.scalars(select(AuditEntry)).one()
    assert entry.action == "export" and entry.detail["rows"] == 2


def test_enrich_load_and_forms_add(db: Engine, tmp_path: Path) -> None:
    firms = tmp_path / "firms.csv"
    firms.write_text("公司名称,行业,人数,城市,domain\n星辰数据科技有限公司,教育,300,北京,xc.cn\n",
                     encoding="utf-8")
    loaded = leadflow("enrich", "load", str(firms), "--json")
    assert json.loads(loaded.stdout)["companies"] == 1
    form = json.loads(leadflow("forms", "add", "官网表单", "--json").stdout)
    assert form["url"].startswith("/api/v1/forms/") and len(form["secret"]) == 64


def test_cadences_install_list_and_run(db: Engine) -> None:
    out = leadflow("cadences", "install", "7in7", "--grade", "A+", "--grade", "A", "--json")
    assert out.returncode == 0, out.stderr
    installed = json.loads(out.stdout)
    assert installed["auto_enroll"] is True
    listed = json.loads(leadflow("cadences", "list", "--json").stdout)["cadences"]
    assert [c["steps"] for c in listed if c["id"] == installed["id"]] == [7]
    assert listed[0]["conditions"]["grades"] == ["A+", "A"]
    ran = json.loads(leadflow("cadences", "run", "--json").stdout)
    assert ran["sent"] == 0 and ran["opened"] == 0
    bad = leadflow("cadences", "install", "nope")
    assert bad.returncode != 0 and "no preset" in bad.stderr

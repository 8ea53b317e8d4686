"""File imports end to end: report, rejects file, re-runs and resumes lose nothing."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from leadflow.leads import imports
from leadflow.leads.models import ImportJob, ImportStatus, Lead, Touchpoint

HEADER = "编号,姓名,手机号,邮箱,公司名称,城市,来源渠道\n"
ROWS = [
    "A1,张伟,138 0013 8000,,北京星辰数据科技有限公司,北京,展会",
    "A2,李娜,13900139000,lina@qq.com,上海云帆网络技术有限公司,上海,展会",
    "A3,张伟,+86 13800138000,zhangwei@xingchen.cn,,北京市,展会",
    "A4,王芳,12345,,,,展会",
    "A5,,,,只有公司,,展会",
    "A6,Amy Chen,,AMY@acme.com,Acme Inc,Shanghai,expo",
]


def write_csv(path: Path, rows: list[str], encoding: str = "utf-8-sig") -> Path:
    path.write_text(HEADER + "\n".join(rows) + "\n", encoding=encoding)
    return path


def count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
def test_import_reports_created_merged_rejected(db: Engine, session: Session, tmp_path: Path,
                                                encoding: str) -> None:
    path = write_csv(tmp_path / "expo.csv", ROWS, encoding)
    summary = imports.import_file(path=path, source="expo", campaign_id=None, actor_id=None)
    assert (summary.rows_read, summary.created, summary.merged, summary.rejected) == (6, 3, 1, 2)
    assert summary.status == ImportStatus.DONE
    lead = session.scalar(select(Lead).where(Lead.name == "张伟"))
    assert lead is not None and lead.email == "zhangwei@xingchen.cn"
    assert lead.custom_fields == {"来源渠道": "展会"}
    with open(summary.rejects_file or "", encoding="utf-8-sig") as fh:
        rejects = list(csv.DictReader(fh))
    assert [(r["row_number"], r["field"]) for r in rejects] == [("5", "phone"), ("6", "name")]
    assert rejects[0]["姓名"] == "王芳" and "12345" in rejects[0]["reason"]


def test_rerunning_the_same_file_creates_nothing(db: Engine, session: Session,
                                                 tmp_path: Path) -> None:
    path = write_csv(tmp_path / "expo.csv", ROWS)
    imports.import_file(path=path, source="expo", campaign_id=None, actor_id=None)
    before = (count(session, Lead), count(session, Touchpoint))
    again = imports.import_file(path=path, source="expo", campaign_id=None, actor_id=None)
    assert (again.created, again.merged, again.skipped, again.rejected) == (0, 0, 4, 2)
    assert (count(session, Lead), count(session, Touchpoint)) == before


def test_rows_without_id_column_are_identified_by_file_and_row(db: Engine, session: Session,
                                                               tmp_path: Path) -> None:
    one = tmp_path / "one.csv"
    one.write_text("name,phone\n赵敏,13700137001\n", encoding="utf-8")
    two = tmp_path / "two.csv"
    two.write_text("name,phone\n周芷若,13700137002\n", encoding="utf-8")
    imports.import_file(path=one, source="list", campaign_id=None, actor_id=None)
    second = imports.import_file(path=two, source="list", campaign_id=None, actor_id=None)
    assert second.created == 1  # same source, same row number, different file: not skipped
    assert imports.import_file(path=two, source="list", campaign_id=None,
                               actor_id=None).skipped == 1


def test_an_import_killed_half_way_resumes_without_loss_or_duplicates(
    db: Engine, session: Session, tmp_path: Path
) -> None:
    n = 3000
    path = tmp_path / "big.csv"
    lines = ["id,name,phone,company"]
    lines += [f"r{i},客户{i:05d},1{3 + i % 7}{i:09d},公司{i % 97}" for i in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = {"LEADFLOW_IMPORT_CHUNK_SIZE": "500"}
    # The child kills itself (SIGKILL) right after its third chunk commits.
    code = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from leadflow.leads import imports\n"
        "def progress(done, total):\n"
        "    if done >= 1500: os.kill(os.getpid(), signal.SIGKILL)\n"
        f"imports.import_file(path=Path({str(path)!r}), source='crm', campaign_id=None,"
        " actor_id=None, progress=progress)\n"
    )
    import os

    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, timeout=300)
    assert proc.returncode == -9
    assert count(session, Touchpoint) == 1500
    killed = session.scalars(select(ImportJob)).one()
    assert killed.status == ImportStatus.RUNNING and killed.rows_read == 1500
    summary = imports.import_file(path=path, source="crm", campaign_id=None, actor_id=None)
    assert summary.skipped == 1500 and summary.created == n - 1500
    assert count(session, Touchpoint) == n and count(session, Lead) == n


def test_cli_import_prints_json_summary(db: Engine, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "expo.csv", ROWS)
    out = subprocess.run(
        [sys.executable, "-m", "leadflow", "import", str(path), "--source", "expo", "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert (data["created"], data["merged"], data["rejected"]) == (3, 1, 2)

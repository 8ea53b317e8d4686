"""Tests for the lead file layer: header mapping, readers and writers."""

from __future__ import annotations

import json
import re
import string
import zipfile
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook, load_workbook

from leadflow.leads.files import (
    LEAD_FIELDS,
    LeadRow,
    apply_mapping,
    cell_to_str,
    detect_mapping,
    load_mapping_file,
    open_rows,
    validate_mapping,
    write_rows,
)


def read_all(path: Path, mapping: dict[str, str] | None = None) -> list[LeadRow]:
    with open_rows(path, mapping=mapping) as lead_file:
        return list(lead_file.rows())


# ------------------------------------------------------------------ header detection

SPEC_ALIASES = {
    "external_id": ["id", "external_id", "record id", "编号", "线索编号", "客户编号"],
    "name": ["name", "full name", "contact", "contact name", "姓名", "名字", "联系人", "客户姓名"],
    "given_name": ["first name", "given name", "firstname", "名"],
    "family_name": ["last name", "surname", "family name", "姓"],
    "phone": [
        "phone", "mobile", "mobile phone", "cell", "tel", "telephone", "phone number",
        "手机", "手机号", "手机号码", "电话", "联系电话", "电话号码",
    ],
    "email": ["email", "e-mail", "email address", "邮箱", "电子邮箱", "邮件"],
    "wechat_id": ["wechat", "wechat id", "weixin", "微信", "微信号"],
    "title": ["title", "job title", "position", "职位", "职务", "头衔"],
    "company": [
        "company", "company name", "organization", "organisation", "account",
        "公司", "公司名称", "企业", "企业名称", "单位",
    ],
    "industry": ["industry", "行业", "所属行业"],
    "headcount": [
        "employees", "headcount", "company size", "size", "number of employees",
        "人数", "规模", "员工人数", "公司规模",
    ],
    "address": ["address", "street", "地址", "详细地址"],
    "city": ["city", "城市", "市"],
    "province": ["province", "state", "省份", "省"],
    "region": ["region", "area", "地区", "区域", "大区"],
    "postcode": ["postcode", "postal code", "zip", "zip code", "邮编", "邮政编码"],
    "product_interest": [
        "product", "product interest", "interest", "意向产品", "感兴趣的产品", "产品",
    ],
    "notes": ["notes", "note", "comments", "remark", "备注"],
    "tags": ["tags", "标签"],
    "consent": ["consent", "opt in"],
    "language": ["language", "语言"],
}


@pytest.mark.parametrize(
    ("header", "field"),
    [(alias, field) for field, aliases in SPEC_ALIASES.items() for alias in aliases],
)
def test_every_documented_alias_is_detected(header: str, field: str) -> None:
    assert detect_mapping([header]) == {header: field}


def test_spec_alias_table_covers_every_field() -> None:
    assert set(SPEC_ALIASES) == set(LEAD_FIELDS)


def test_detection_ignores_case_spacing_punctuation_and_full_width() -> None:
    headers = [
        " E-Mail Address ", "WECHAT_ID", "First-Name", "ＩＤ", "手机号（必填）", "*姓名",
        "Company Name:",
    ]
    assert detect_mapping(headers) == {
        " E-Mail Address ": "email",
        "WECHAT_ID": "wechat_id",
        "First-Name": "given_name",
        "ＩＤ": "external_id",
        "手机号（必填）": "phone",
        "*姓名": "name",
        "Company Name:": "company",
    }
    assert detect_mapping(["Ｅｍａｉｌ"]) == {"Ｅｍａｉｌ": "email"}


def test_chinese_row_counter_is_not_an_id() -> None:
    mapping = detect_mapping(["序号", "编号", "姓名"])
    assert "序号" not in mapping
    assert mapping == {"编号": "external_id", "姓名": "name"}


def test_duplicate_targets_first_wins() -> None:
    mapping = detect_mapping(["手机", "电话", "Email", "邮箱", "备注"])
    assert mapping == {"手机": "phone", "Email": "email", "备注": "notes"}


def test_unknown_headers_are_left_out() -> None:
    assert detect_mapping(["来源", "Lead Score", "", "#"]) == {}


# --------------------------------------------------------------------- mapping files


def test_load_mapping_text_file(tmp_path: Path) -> None:
    path = tmp_path / "mapping.txt"
    path.write_text(
        "# mapping for the trade-show export\n"
        "\n"
        "客户: name\n"
        "手机：phone   # full-width colon typed on a Chinese IME\n"
        "来源: custom:lead_source\n"
        "序号: ignore\n"
        "'Phone: home': Notes\n",
        encoding="utf-8-sig",
    )
    assert load_mapping_file(path) == {
        "客户": "name",
        "手机": "phone",
        "来源": "custom:lead_source",
        "序号": "ignore",
        "Phone: home": "notes",
    }


def test_load_mapping_json_file(tmp_path: Path) -> None:
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps({"Mobile": "phone", "Score": "custom:score"}), encoding="utf-8")
    assert load_mapping_file(path) == {"Mobile": "phone", "Score": "custom:score"}


@pytest.mark.parametrize("suffix", [".json", ".txt"])
def test_mapping_file_with_unknown_target_names_it(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"mapping{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps({"Mobile": "mobile_phone"}), encoding="utf-8")
    else:
        path.write_text("Mobile: mobile_phone\n", encoding="utf-8")
    with pytest.raises(ValueError, match="mobile_phone"):
        load_mapping_file(path)


def test_mapping_rejects_two_headers_on_one_field() -> None:
    with pytest.raises(ValueError, match="phone"):
        validate_mapping({"手机": "phone", "电话": "phone"})
    with pytest.raises(ValueError, match="custom:"):
        validate_mapping({"A": "custom:"})


def test_user_mapping_overrides_detection(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_text(
        "序号,Phone,Mobile,客户,来源\n1,010-1234,13800138000,张三,展会\n", encoding="utf-8"
    )
    user = {"mobile": "phone", "客户": "name", "来源": "custom:source", "序号": "ignore"}
    with open_rows(path, mapping=user) as lead_file:
        # "Mobile" is matched case-insensitively; "Phone" lost the field to it.
        assert lead_file.mapping == {
            "序号": "ignore",
            "Phone": "custom:Phone",
            "Mobile": "phone",
            "客户": "name",
            "来源": "custom:source",
        }
        rows = list(lead_file.rows())
    assert rows == [
        (
            2,
            {
                "custom:Phone": "010-1234",
                "phone": "13800138000",
                "name": "张三",
                "custom:source": "展会",
            },
            {
                "序号": "1",
                "Phone": "010-1234",
                "Mobile": "13800138000",
                "客户": "张三",
                "来源": "展会",
            },
        )
    ]


def test_open_rows_validates_user_mapping(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="'nmae'"):
        open_rows(path, mapping={"a": "nmae"})


def test_apply_mapping_for_form_payloads() -> None:
    raw: dict[str, object] = {
        "手机": " 13800138000 ",
        "电话": "010-1234",
        "姓名": "",
        "name": "Ada",
        "utm_source": "wechat",
        "tags": ["vip", "expo"],
        "secret": "x",
    }
    mapping = {**detect_mapping(list(raw)), "电话": "phone", "name": "name", "secret": "ignore"}
    assert apply_mapping(raw, mapping) == {
        "phone": "13800138000",
        "custom:电话": "010-1234",  # phone already taken by the first non-empty value
        "name": "Ada",  # 姓名 was empty, so the later "name" fills the field
        "custom:utm_source": "wechat",
        "tags": "vip,expo",
    }
    with pytest.raises(ValueError, match="'fone'"):
        apply_mapping({"a": "1"}, {"a": "fone"})


# ------------------------------------------------------------------------------ CSV

ZH_HEADER = "序号,姓名,手机号,公司名称,城市,备注\n"
ZH_ROWS = (
    "1,张三,13800138000,北京示例科技有限公司,北京,想要报价\n"
    "2,李四,13900139000,上海某某集团,上海,\n"
)


@pytest.mark.parametrize(
    ("encoding", "detected"),
    [("utf-8", "utf-8-sig"), ("utf-8-sig", "utf-8-sig"), ("gb18030", "gb18030")],
)
def test_csv_encodings(tmp_path: Path, encoding: str, detected: str) -> None:
    path = tmp_path / "leads.csv"
    path.write_text(ZH_HEADER + ZH_ROWS, encoding=encoding)
    with open_rows(path) as lead_file:
        assert lead_file.encoding == detected
        # The BOM must not leak into the first header.
        assert lead_file.headers == ["序号", "姓名", "手机号", "公司名称", "城市", "备注"]
        rows = list(lead_file.rows())
    assert rows[0] == (
        2,
        {
            "custom:序号": "1",
            "name": "张三",
            "phone": "13800138000",
            "company": "北京示例科技有限公司",
            "city": "北京",
            "notes": "想要报价",
        },
        {
            "序号": "1",
            "姓名": "张三",
            "手机号": "13800138000",
            "公司名称": "北京示例科技有限公司",
            "城市": "北京",
            "备注": "想要报价",
        },
    )
    assert rows[1][0] == 3
    assert rows[1][1]["company"] == "上海某某集团"
    assert "notes" not in rows[1][1]


@pytest.mark.parametrize("encoding", ["utf-8", "gb18030"])
def test_multibyte_char_cut_at_sample_boundary(tmp_path: Path, encoding: str) -> None:
    # Put a multi-byte character across the 1 MiB encoding-detection boundary.
    body = bytearray("姓名,公司\n".encode(encoding))
    while len(body) < (1 << 20) - 100:
        body += b"a,b\n"
    padding = (1 << 20) - 1 - len(body) - len(b"x,\ny,")
    body += b"x," + b"z" * padding + b"\ny,"
    cut = "张" * 10
    body += (cut + "\n").encode(encoding)
    # The first byte of 张 is the last byte of the sample, the rest is beyond it.
    assert len(body) - len((cut + "\n").encode(encoding)) == (1 << 20) - 1
    path = tmp_path / "big.csv"
    path.write_bytes(bytes(body))
    with open_rows(path) as lead_file:
        assert lead_file.encoding == ("utf-8-sig" if encoding == "utf-8" else encoding)
        last = list(lead_file.rows())[-1]
    assert last[1] == {"name": "y", "company": cut}


def test_utf16_tab_text_from_excel(tmp_path: Path) -> None:
    path = tmp_path / "export.txt"
    path.write_text("姓名\t手机\r\n王五\t13700137000\r\n", encoding="utf-16")
    with open_rows(path) as lead_file:
        assert lead_file.delimiter == "\t"
        assert list(lead_file.rows()) == [
            (2, {"name": "王五", "phone": "13700137000"}, {"姓名": "王五", "手机": "13700137000"})
        ]


@pytest.mark.parametrize("suffix", [".tsv", ".txt", ".csv"])
def test_tab_delimited(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"leads{suffix}"
    path.write_text("Name\tCompany\tNotes\nAda\tAcme, Inc\tcalls, emails\n", encoding="utf-8")
    with open_rows(path) as lead_file:
        assert lead_file.delimiter == "\t"
        rows = list(lead_file.rows())
    assert rows == [
        (
            2,
            {"name": "Ada", "company": "Acme, Inc", "notes": "calls, emails"},
            {"Name": "Ada", "Company": "Acme, Inc", "Notes": "calls, emails"},
        )
    ]


def test_semicolon_delimited_with_commas_in_values(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_text(
        "Name;Company;City\nAda;Acme, Inc;Paris\nBob;Foo, Ltd;Lyon\n", encoding="utf-8"
    )
    with open_rows(path) as lead_file:
        assert lead_file.delimiter == ";"
        assert [r[1]["company"] for r in lead_file.rows()] == ["Acme, Inc", "Foo, Ltd"]


def test_csv_row_numbers_count_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_text(
        "name,phone\r\nAda,1\r\n\r\n , \r\n,\r\nBob,2\r\n\"Multi\nline\",3\r\nCy,4",
        encoding="utf-8",
    )
    with open_rows(path) as lead_file:
        rows = list(lead_file.rows())
        assert lead_file.total_rows is not None and lead_file.total_rows >= 6
    # Spreadsheet rows: header=1, Ada=2, three blank rows 3-5, Bob=6, quoted cell=7.
    assert [(n, r.get("name")) for n, r, _ in rows] == [
        (2, "Ada"), (6, "Bob"), (7, "Multi\nline"), (8, "Cy"),
    ]


def test_csv_header_after_leading_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_text("\n\nname,email\nAda,ada@example.com\n", encoding="utf-8")
    with open_rows(path) as lead_file:
        assert lead_file.headers == ["name", "email"]
        assert [r[0] for r in lead_file.rows()] == [4]


def test_csv_extra_and_missing_fields(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_text("name,phone\nAda,1,extra one,extra two\nBob\n", encoding="utf-8")
    rows = read_all(path)
    assert rows[0][2] == {"name": "Ada", "phone": "1", "_extra": "extra one,extra two"}
    assert rows[0][1] == {"name": "Ada", "phone": "1"}
    assert rows[1] == (3, {"name": "Bob"}, {"name": "Bob", "phone": ""})


def test_csv_values_are_stripped_in_record_not_in_raw(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_text("name,notes,来源\n  Ada  ,   ,web\n", encoding="utf-8")
    [(number, record, raw)] = read_all(path)
    assert number == 2
    assert record == {"name": "Ada", "custom:来源": "web"}
    assert raw == {"name": "  Ada  ", "notes": "   ", "来源": "web"}


def test_csv_empty_and_duplicate_headers_keep_values(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_text("name,,name\nAda,x,Bob\n", encoding="utf-8")
    with open_rows(path) as lead_file:
        assert lead_file.headers == ["name", "column_2", "name_2"]
        [(_, record, raw)] = list(lead_file.rows())
    assert raw == {"name": "Ada", "column_2": "x", "name_2": "Bob"}
    assert record["name"] == "Ada"
    assert record["custom:column_2"] == "x"


def test_csv_total_rows(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    write_rows(path, ["name"], ([f"n{i}"] for i in range(25)), fmt="csv")
    with open_rows(path) as lead_file:
        assert lead_file.total_rows == 25
        assert sum(1 for _ in lead_file.rows()) == 25


def test_unsupported_extension(tmp_path: Path) -> None:
    path = tmp_path / "leads.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0")
    with pytest.raises(ValueError, match=r"\.csv.*\.tsv.*\.txt.*\.xlsx.*\.jsonl.*\.ndjson"):
        open_rows(path)


def test_rows_can_be_iterated_twice(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_text("name\nAda\n", encoding="utf-8")
    with open_rows(path) as lead_file:
        assert list(lead_file.rows()) == list(lead_file.rows())
        assert len(list(lead_file.rows())) == 1


# ----------------------------------------------------------------------------- XLSX


def test_xlsx_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "leads.xlsx"
    headers = ["编号", "姓名", "手机", "规模", "创建日期", "备注"]
    rows = [
        [1001, "张三", 13800138000, 50, date(2024, 5, 1), "=HYPERLINK(\"x\")"],
        [1002, "李四", 13900139000.0, 12.5, datetime(2024, 5, 2, 9, 30), "bell\x07ring"],
    ]
    assert write_rows(path, headers, iter(rows), fmt="xlsx") == 2
    with open_rows(path) as lead_file:
        assert lead_file.headers == headers
        result = list(lead_file.rows())
    assert result[0] == (
        2,
        {
            "external_id": "1001",
            "name": "张三",
            "phone": "13800138000",
            "headcount": "50",
            "custom:创建日期": "2024-05-01",
            # A formula-looking value is exported as text, not evaluated.
            "notes": '=HYPERLINK("x")',
        },
        {
            "编号": "1001",
            "姓名": "张三",
            "手机": "13800138000",
            "规模": "50",
            "创建日期": "2024-05-01",
            "备注": '=HYPERLINK("x")',
        },
    )
    assert result[1][0] == 3
    assert result[1][1]["phone"] == "13900139000"
    assert result[1][1]["headcount"] == "12.5"
    assert result[1][1]["custom:创建日期"] == "2024-05-02 09:30:00"
    assert result[1][1]["notes"] == "bellring"


def test_xlsx_excel_row_numbers_header_not_first_row(tmp_path: Path) -> None:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet["A2"] = "Name"
    sheet["B2"] = "Phone"
    sheet["A3"] = "Ada"
    sheet["B3"] = 13800138000
    # Row 4 left empty, row 5 has whitespace only, row 6 has data.
    sheet["A5"] = "   "
    sheet["A6"] = "Bob"
    sheet["C6"] = "stray"
    second = workbook.create_sheet("other")
    second["A1"] = "ignored"
    path = tmp_path / "leads.xlsx"
    workbook.save(path)

    with open_rows(path) as lead_file:
        assert lead_file.headers == ["Name", "Phone"]
        assert lead_file.total_rows == 4
        rows = list(lead_file.rows())
    assert rows == [
        (3, {"name": "Ada", "phone": "13800138000"}, {"Name": "Ada", "Phone": "13800138000"}),
        (6, {"name": "Bob"}, {"Name": "Bob", "Phone": "", "_extra": "stray"}),
    ]


def test_xlsx_with_understated_dimension_reads_every_row(tmp_path: Path) -> None:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in (["Name"], ["Ada"], ["Bob"], ["Cy"]):
        sheet.append(row)
    good = tmp_path / "good.xlsx"
    workbook.save(good)
    # Some generators write a <dimension> smaller than the data; rewrite it to A1:A2.
    path = tmp_path / "leads.xlsx"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data, replaced = re.subn(
                    rb'<dimension ref="A1:A4"\s*/>', b'<dimension ref="A1:A2"/>', data
                )
                assert replaced == 1
            dst.writestr(item, data)
    assert [r[1]["name"] for r in read_all(path)] == ["Ada", "Bob", "Cy"]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (13800138000.0, "13800138000"),
        (13800138000, "13800138000"),
        (-3.0, "-3"),
        (12.5, "12.5"),
        (1e20, "1e+20"),
        (True, "true"),
        (None, ""),
        (date(2024, 5, 1), "2024-05-01"),
        (datetime(2024, 5, 1), "2024-05-01"),
        (datetime(2024, 5, 1, 8, 5, 3), "2024-05-01 08:05:03"),
        ("  kept  ", "  kept  "),
    ],
)
def test_cell_to_str(value: object, text: str) -> None:
    assert cell_to_str(value) == text


def test_invalid_xlsx_raises_value_error(tmp_path: Path) -> None:
    path = tmp_path / "leads.xlsx"
    path.write_text("name,phone\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"not a valid \.xlsx"):
        open_rows(path)


# ---------------------------------------------------------------------------- JSONL


def test_jsonl_rows_bad_line_and_numbering(tmp_path: Path) -> None:
    path = tmp_path / "leads.jsonl"
    lines = [
        json.dumps({"name": "Ada", "mobile": 13800138000.0, "tags": ["vip", "expo"]}),
        "",
        '{"name": "Bob", "mobile": ',
        json.dumps({"姓名": "张三", "extra": {"k": "值"}, "consent": True, "notes": None}),
        "[1, 2]",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with open_rows(path) as lead_file:
        assert lead_file.headers == ["name", "mobile", "tags", "姓名", "extra", "consent", "notes"]
        assert lead_file.total_rows == 5
        rows = list(lead_file.rows())
    assert rows[0] == (
        1,
        {"name": "Ada", "phone": "13800138000", "tags": "vip,expo"},
        {"name": "Ada", "mobile": "13800138000", "tags": "vip,expo"},
    )
    number, record, raw = rows[1]
    assert number == 3
    assert set(record) == {"_error"}
    assert record["_error"].startswith("invalid JSON: ")
    assert raw == {"_raw": '{"name": "Bob", "mobile":'}
    # 姓名 maps to "name" too, but "name" came first: it stays a custom field.
    assert rows[2] == (
        4,
        {"custom:姓名": "张三", "custom:extra": '{"k": "值"}', "consent": "true"},
        {"姓名": "张三", "extra": '{"k": "值"}', "consent": "true", "notes": ""},
    )
    assert rows[3][0] == 5
    assert rows[3][1]["_error"].startswith("invalid JSON: ")


def test_jsonl_keys_after_header_sample_are_mapped_lazily(tmp_path: Path) -> None:
    path = tmp_path / "leads.ndjson"
    with path.open("w", encoding="utf-8") as fh:
        for i in range(1000):
            fh.write(json.dumps({"name": f"n{i}"}) + "\n")
        fh.write(json.dumps({"name": "late", "E-mail": "late@example.com", "score": 9}) + "\n")
    with open_rows(path) as lead_file:
        assert lead_file.headers == ["name"]
        last = list(lead_file.rows())[-1]
        assert lead_file.mapping["E-mail"] == "email"
        assert lead_file.headers == ["name", "E-mail", "score"]
    assert last == (
        1001,
        {"name": "late", "email": "late@example.com", "custom:score": "9"},
        {"name": "late", "E-mail": "late@example.com", "score": "9"},
    )


# --------------------------------------------------------------------------- writers


def test_write_csv_has_bom_and_streams(tmp_path: Path) -> None:
    consumed: list[int] = []

    def generate() -> Iterator[list[object]]:
        for i in range(3):
            consumed.append(i)
            yield [f"张{i}", 13800138000 + i, None]

    path = tmp_path / "out.csv"
    assert write_rows(path, ["姓名", "手机", "备注"], generate(), fmt="csv") == 3
    assert consumed == [0, 1, 2]
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    assert data.decode("utf-8-sig").splitlines()[1] == '"张0","13800138000",""'
    assert list(tmp_path.iterdir()) == [path]


def test_write_failure_leaves_no_file(tmp_path: Path) -> None:
    def boom() -> Iterator[list[object]]:
        yield ["a"]
        raise RuntimeError("database went away")

    path = tmp_path / "out.xlsx"
    with pytest.raises(RuntimeError):
        write_rows(path, ["name"], boom(), fmt="xlsx")
    assert list(tmp_path.iterdir()) == []


def test_write_rows_rejects_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'xls'"):
        write_rows(tmp_path / "out.xls", ["a"], [], fmt="xls")


def test_written_xlsx_opens_with_openpyxl(tmp_path: Path) -> None:
    path = tmp_path / "out.xlsx"
    write_rows(path, ["name"], [["Ada"]], fmt="xlsx")
    workbook = load_workbook(path)
    sheet = workbook.worksheets[0]
    assert [[c.value for c in row] for row in sheet.iter_rows()] == [["name"], ["Ada"]]
    assert sheet["A2"].data_type == "s"


# ------------------------------------------------------------------------ properties

_text = st.text(
    alphabet=st.sampled_from(string.printable)
    | st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5),
    max_size=12,
)


@st.composite
def _tables(draw: st.DrawFn) -> tuple[list[str], list[list[str]]]:
    headers = draw(
        st.lists(
            _text.map(str.strip).filter(bool), min_size=1, max_size=5, unique=True
        )
    )
    rows = draw(
        st.lists(st.lists(_text, min_size=len(headers), max_size=len(headers)), max_size=8)
    )
    return headers, rows


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(table=_tables())
# Delimiter look-alikes in the values: only QUOTE_ALL exports survive these.
@example(table=(["a;b;c", "d"], [["x;y;z", "w"]]))
@example(table=(["a\tb\tc", "d"], [["x\ty", "w"], [" ", "\t"]]))
@example(table=(["only;one;column"], [["x;y"], ["p;q"]]))
def test_csv_round_trip_property(tmp_path: Path, table: tuple[list[str], list[list[str]]]) -> None:
    headers, rows = table
    path = tmp_path / "round.csv"
    assert write_rows(path, headers, rows, fmt="csv") == len(rows)
    with open_rows(path) as lead_file:
        assert lead_file.headers == headers
        assert lead_file.delimiter == ","
        result = list(lead_file.rows())
    # Blank rows (only whitespace) are skipped but keep their row number.
    expected = [
        (index + 2, row) for index, row in enumerate(rows) if any(v.strip() for v in row)
    ]
    assert [(number, [raw[h] for h in headers]) for number, _, raw in result] == expected
    for (_, record, raw), (_, row) in zip(result, expected, strict=True):
        assert set(raw) == set(headers)
        assert all(value == value.strip() and value for value in record.values())
        assert sorted(record.values()) == sorted(v.strip() for v in row if v.strip())

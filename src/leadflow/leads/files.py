"""File layer of lead import/export: header mapping, streaming readers and writers.

Readers turn CSV/TSV, XLSX and JSONL files into ``(row_number, record, raw)`` tuples:

* ``row_number`` is the row the user sees in their spreadsheet (header = row 1) or the
  line number in a JSONL file, so rejection reports can point at it;
* ``record`` holds canonical lead fields (see :data:`LEAD_FIELDS`) and ``"custom:<name>"``
  keys, only non-empty, stripped values;
* ``raw`` is the row as it was in the file (header -> string), for error reports.

Everything streams: a 1,000,000-row file is never held in memory, neither on import nor
on export.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import json
import os
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from itertools import islice
from operator import itemgetter
from pathlib import Path
from typing import Any

__all__ = [
    "HEADER_ALIASES",
    "LEAD_FIELDS",
    "SUPPORTED_SUFFIXES",
    "LeadFile",
    "LeadRow",
    "apply_mapping",
    "cell_to_str",
    "detect_mapping",
    "load_mapping_file",
    "normalize_header",
    "open_rows",
    "validate_mapping",
    "write_rows",
]

LEAD_FIELDS: tuple[str, ...] = (
    "external_id",
    "name",
    "given_name",
    "family_name",
    "phone",
    "email",
    "wechat_id",
    "title",
    "company",
    "industry",
    "headcount",
    "region",
    "province",
    "city",
    "address",
    "postcode",
    "product_interest",
    "notes",
    "tags",
    "consent",
    "language",
)

#: Mapping targets besides the canonical fields.
IGNORE = "ignore"
CUSTOM_PREFIX = "custom:"

#: ``(row_number, record, raw)`` as yielded by :meth:`LeadFile.rows`.
LeadRow = tuple[int, dict[str, str], dict[str, str]]

#: Extension -> reader kind. ``.txt`` is read as delimited text because that is what
#: Excel's "Text (Tab delimited)" / "Unicode Text" exports are called.
SUPPORTED_SUFFIXES: dict[str, str] = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".xlsx": "xlsx",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}

# Header spellings seen in real exports, written as people type them; they are passed
# through normalize_header() once at import time, so "E-Mail Address", "email_address"
# and "ＥＭＡＩＬ" all hit the same entry. 序号/行号/No. are deliberately absent: they
# are row counters in Chinese spreadsheets, not identifiers of the lead.
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "external_id": (
        "id", "external id", "record id", "lead id", "customer id",
        "编号", "线索编号", "客户编号",
    ),
    "name": (
        "name", "full name", "contact", "contact name",
        "姓名", "名字", "联系人", "客户姓名", "联系人姓名",
    ),
    "given_name": ("first name", "given name", "firstname", "名"),
    "family_name": ("last name", "surname", "family name", "姓"),
    "phone": (
        "phone", "mobile", "mobile phone", "mobile number", "cell", "cell phone", "tel",
        "telephone", "phone number", "phone no", "contact number", "contact phone",
        "手机", "手机号", "手机号码", "电话", "联系电话", "电话号码", "联系方式", "移动电话",
    ),
    "email": (
        "email", "e-mail", "email address", "contact email",
        "邮箱", "电子邮箱", "邮件", "电子邮件", "邮箱地址",
    ),
    "wechat_id": ("wechat", "wechat id", "weixin", "微信", "微信号", "微信id"),
    "title": ("title", "job title", "position", "职位", "职务", "头衔", "岗位"),
    "company": (
        "company", "company name", "organization", "organisation", "organization name",
        "account", "account name",
        "公司", "公司名称", "企业", "企业名称", "单位", "公司全称", "单位名称",
    ),
    "industry": ("industry", "行业", "所属行业"),
    "headcount": (
        "employees", "headcount", "company size", "size", "number of employees",
        "no of employees",
        "人数", "规模", "员工人数", "公司规模", "企业规模",
    ),
    "region": ("region", "area", "地区", "区域", "大区"),
    "province": ("province", "state", "省份", "省", "所在省份"),
    "city": ("city", "城市", "市", "所在城市"),
    "address": ("address", "street", "地址", "详细地址"),
    "postcode": ("postcode", "postal code", "zip", "zip code", "邮编", "邮政编码"),
    "product_interest": (
        "product", "product interest", "interest",
        "意向产品", "感兴趣的产品", "产品",
    ),
    "notes": ("notes", "note", "comments", "comment", "remark", "remarks", "备注"),
    "tags": ("tags", "tag", "标签"),
    "consent": ("consent", "opt in", "opt-in"),
    "language": ("language", "语言"),
}

_NON_ALNUM = re.compile(r"[\W_]+")
# Bracketed qualifiers such as "手机号（必填）" or "Email [work]" or "【备注】"; only
# dropped on a second attempt so that a header that *is* a known alias wins first.
_BRACKETED = re.compile(r"\(.*?\)|\[.*?\]|【.*?】|<.*?>")


def normalize_header(header: str) -> str:
    """Return the comparison key of a header: NFKC, case-folded, letters/digits only.

    NFKC turns full-width forms (``ＩＤ``, ``（``) into ASCII; dropping every
    non-alphanumeric character makes spaces, ``_``, ``-`` and punctuation irrelevant.
    """
    return _NON_ALNUM.sub("", unicodedata.normalize("NFKC", header).casefold())


def _build_alias_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for field, aliases in HEADER_ALIASES.items():
        assert field in LEAD_FIELDS, field
        for alias in (field, *aliases):
            key = normalize_header(alias)
            # Two fields claiming one spelling would make detection order-dependent.
            if index.setdefault(key, field) != field:
                raise RuntimeError(f"header alias {alias!r} claimed by {index[key]} and {field}")
    return index


_ALIAS_INDEX = _build_alias_index()


def _detect_field(header: str) -> str | None:
    field = _ALIAS_INDEX.get(normalize_header(header))
    if field is None:
        stripped = _BRACKETED.sub("", unicodedata.normalize("NFKC", header))
        key = normalize_header(stripped)
        if key:
            field = _ALIAS_INDEX.get(key)
    return field


def detect_mapping(headers: list[str]) -> dict[str, str]:
    """Guess the canonical lead field of each header (see :func:`_detect_mapping`)."""
    return dict(_detect_mapping(tuple(headers)))


@lru_cache(maxsize=1024)
def _detect_mapping(headers: tuple[str, ...]) -> dict[str, str]:
    """Guess the canonical lead field of each header.

    Returns ``{raw_header: field}`` for the headers that were recognised; unknown
    headers are left out (the importer keeps them as custom fields). When two headers
    map to the same field the first one wins and the later one stays unmapped, so a
    sheet with both 手机 and 电话 keeps the second number as a custom field instead of
    silently overwriting the first.
    """
    mapping: dict[str, str] = {}
    used: set[str] = set()
    for header in headers:
        if header in mapping:
            continue
        field = _detect_field(header)
        if field is not None and field not in used:
            mapping[header] = field
            used.add(field)
    return mapping


def _validate_target(header: str, target: str) -> str:
    cleaned = target.strip()
    lowered = cleaned.lower()
    if lowered in LEAD_FIELDS or lowered == IGNORE:
        return lowered
    if lowered.startswith(CUSTOM_PREFIX):
        name = cleaned[len(CUSTOM_PREFIX):].strip()
        if name:
            return CUSTOM_PREFIX + name
    raise ValueError(
        f"unknown target field {target!r} for header {header!r}; expected one of "
        f"{', '.join(LEAD_FIELDS)}, 'custom:<name>' or 'ignore'"
    )


def validate_mapping(mapping: Mapping[str, str]) -> dict[str, str]:
    """Check a user mapping ``{raw_header: target}`` and return it cleaned.

    A target is a canonical field of :data:`LEAD_FIELDS` (case-insensitive),
    ``"custom:<name>"`` or ``"ignore"``. Raises ``ValueError`` naming the bad target,
    or naming both headers when two of them are sent to the same target (one would
    silently overwrite the other).
    """
    cleaned: dict[str, str] = {}
    owner: dict[str, str] = {}
    for header, target in mapping.items():
        if not isinstance(header, str) or not isinstance(target, str):
            raise ValueError(f"mapping entries must be strings, got {header!r}: {target!r}")
        value = _validate_target(header, target)
        if value != IGNORE:
            if value in owner:
                raise ValueError(
                    f"target {value!r} is used by both {owner[value]!r} and {header!r}"
                )
            owner[value] = header
        cleaned[header.strip()] = value
    return cleaned


def apply_mapping(raw: Mapping[str, object], mapping: Mapping[str, str]) -> dict[str, str]:
    """Turn one raw row or form payload into a record, as :meth:`LeadFile.rows` does.

    ``mapping`` is ``{raw_header: target}`` (canonical field, ``"custom:<name>"`` or
    ``"ignore"``; an unknown target raises ``ValueError``). Headers it does not name
    become ``"custom:<header>"``. Values are stringified (lists joined by ",", dicts as
    JSON), stripped, and kept only when non-empty. When several headers target the
    same key, the first non-empty value wins and the others are kept as
    ``"custom:<header>"`` so nothing is lost.
    """
    record: dict[str, str] = {}
    for header, value in raw.items():
        target = mapping.get(header)
        key = CUSTOM_PREFIX + header if target is None else _validate_target(header, target)
        if key == IGNORE:
            continue
        text = (value if isinstance(value, str) else _json_to_str(value)).strip()
        if not text:
            continue
        if key in record:
            key = CUSTOM_PREFIX + header
        record.setdefault(key, text)
    return record


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


# key: value, where the separator is the first colon (ASCII or full-width) followed by
# whitespace, so that "备注2: custom:备注2" keeps the colon inside the value. Keys with
# ": " inside can be quoted: '"Phone: home": phone'.
_QUOTED_LINE = re.compile(r"""^(?P<q>["'])(?P<key>.*?)(?P=q)\s*[:：]\s*(?P<value>.*)$""")
_SPACED_SEP = re.compile(r"[:：]\s+")
_BARE_SEP = re.compile(r"[:：]")


def _parse_mapping_text(text: str, source: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _QUOTED_LINE.match(stripped)
        if match is None:
            # Prefer "key: value" (colon + space); fall back to the first bare colon.
            sep = _SPACED_SEP.search(stripped) or _BARE_SEP.search(stripped)
            if sep is None:
                raise ValueError(f"{source}:{lineno}: expected 'header: field', got {line!r}")
            key, value = stripped[: sep.start()], stripped[sep.end():]
        else:
            key, value = match["key"], match["value"]
        # Trailing comments are only recognised after whitespace, so "Phone #" as a
        # quoted key or "custom:#1" as a value survive.
        value = re.split(r"\s+#", value, maxsplit=1)[0].strip()
        key = _unquote(key.strip()).strip()
        value = _unquote(value).strip()
        if not key or not value:
            raise ValueError(f"{source}:{lineno}: expected 'header: field', got {line!r}")
        if key in result:
            raise ValueError(f"{source}:{lineno}: header {key!r} is mapped twice")
        result[key] = value
    return result


def load_mapping_file(path: Path) -> dict[str, str]:
    """Read a user mapping ``{raw_header: target}`` from ``path`` and validate it.

    ``.json`` files hold one object of strings. Any other file is a simple text format,
    one ``header: field`` per line with ``#`` comments (a YAML subset, so no YAML
    dependency is needed); ``:`` may be full-width (``：``) as typed on a Chinese IME.
    Targets are validated by :func:`validate_mapping` (``ValueError`` on a bad one).
    """
    path = Path(path)
    # utf-8-sig: Windows Notepad likes to prepend a BOM.
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json":
        try:
            data: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path.name}: invalid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"{path.name}: expected a JSON object of header -> field")
        return validate_mapping(data)
    return validate_mapping(_parse_mapping_text(text, path.name))


class _Mapper:
    """Resolves every header to its final target, possibly lazily (JSONL keys)."""

    def __init__(self, user: Mapping[str, str] | None) -> None:
        self.user = validate_mapping(user) if user else {}
        # Users type headers by hand; match them the same forgiving way as detection.
        self._user_by_key = {normalize_header(k): v for k, v in self.user.items()}
        self.final: dict[str, str] = {}
        self._claimed: set[str] = set()

    def _user_target(self, header: str) -> str | None:
        target = self.user.get(header)
        if target is None:
            target = self.user.get(header.strip())
        if target is None:
            target = self._user_by_key.get(normalize_header(header))
        return target

    def add(self, headers: Iterable[str]) -> None:
        new = [h for h in dict.fromkeys(headers) if h not in self.final]
        if not new:
            return
        resolved: dict[str, str] = {}
        # User choices first, so detection never takes a field the user assigned.
        for header in new:
            target = self._user_target(header)
            if target is None:
                continue
            if target in LEAD_FIELDS or target.startswith(CUSTOM_PREFIX):
                if target in self._claimed:
                    # Only reachable for JSONL keys discovered late, after detection
                    # already gave the field away; keep the data as a custom field.
                    target = CUSTOM_PREFIX + header
                self._claimed.add(target)
            resolved[header] = target
        for header in new:
            if header in resolved:
                continue
            field = _detect_field(header)
            if field is None or field in self._claimed:
                resolved[header] = CUSTOM_PREFIX + header
            else:
                resolved[header] = field
                self._claimed.add(field)
        for header in new:
            self.final[header] = resolved[header]

    def record_key(self, header: str) -> str:
        """Key in ``record`` for a header; ``""`` means dropped (target ``ignore``)."""
        target = self.final[header]
        return "" if target == IGNORE else target


def _unique_headers(cells: Sequence[str]) -> list[str]:
    # Empty or repeated header cells would make raw/record keys collide and lose data.
    headers: list[str] = []
    seen: set[str] = set()
    for index, cell in enumerate(cells, start=1):
        name = cell.strip() or f"column_{index}"
        candidate, suffix = name, 2
        while candidate in seen:
            candidate = f"{name}_{suffix}"
            suffix += 1
        seen.add(candidate)
        headers.append(candidate)
    return headers


# Filtering (key, value) pairs on the value's truthiness in C: a Python predicate here
# costs ~30% of CSV throughput.
_second = itemgetter(1)


def _build(
    headers: list[str], keys: list[str], values: list[str], extra_sep: str
) -> tuple[dict[str, str], dict[str, str]] | None:
    """Make ``(record, raw)`` from one row of cell strings; ``None`` for a blank row."""
    width = len(headers)
    raw = dict(zip(headers, values, strict=False))
    if len(values) > width:
        extra = values[width:]
        while extra and not extra[-1]:
            extra.pop()
        if extra:
            raw["_extra"] = extra_sep.join(extra)
    elif len(values) < width:
        raw.update(dict.fromkeys(headers[len(values):], ""))
    record = dict(filter(_second, zip(keys, map(str.strip, values), strict=False)))
    record.pop("", None)
    if not record and not any(map(str.strip, values)):
        return None
    return record, raw


class LeadFile:
    """An opened lead file: its headers, the final mapping and a row iterator.

    ``mapping`` sends every header to a canonical field, ``"custom:<name>"`` or
    ``"ignore"``. ``total_rows`` is a cheap estimate of data rows for progress bars
    (it counts blank rows; quoted multi-line cells and a wrong XLSX ``<dimension>``
    skew it), ``None`` when unknown. ``kind`` is "csv", "xlsx" or "jsonl"; ``encoding``
    and ``delimiter`` are what was detected (``None`` where meaningless). For JSONL,
    keys first seen while iterating are appended to ``headers`` and ``mapping``.
    Use as a context manager or call :meth:`close` to release an XLSX workbook early.
    """

    kind: str = ""

    def __init__(self, path: Path, headers: list[str], mapper: _Mapper) -> None:
        self.path = path
        self.headers = headers
        self._mapper = mapper
        mapper.add(headers)
        self.mapping: dict[str, str] = mapper.final
        self.total_rows: int | None = None
        self.encoding: str | None = None
        self.delimiter: str | None = None

    def rows(self) -> Iterator[LeadRow]:
        """Yield ``(row_number, record, raw)`` for every non-blank data row.

        Row numbers are what the user sees (spreadsheet row, header = 1; JSONL line)
        and still count skipped blank rows. Values beyond the header width are joined
        into ``raw["_extra"]``; an unparsable JSONL line yields
        ``record == {"_error": "invalid JSON: ..."}`` and ``raw == {"_raw": line}``.
        Each call starts a fresh pass over the file.
        """
        raise NotImplementedError

    def __iter__(self) -> Iterator[LeadRow]:
        return self.rows()

    def close(self) -> None:
        """Release resources held between :func:`open_rows` and :meth:`rows`."""

    def __enter__(self) -> LeadFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path.name!r} {len(self.headers)} columns>"


# --------------------------------------------------------------------------- CSV

_SAMPLE_BYTES = 1 << 20
_SNIFF_ROWS = 20
_DELIMITERS = (",", "\t", ";")


def _detect_encoding(head: bytes, complete: bool) -> str:
    """Pick the codec of a delimited text file from its first bytes.

    Chinese Excel saves "CSV" as GBK (a subset of GB18030), everything modern writes
    UTF-8. UTF-8 goes first because it is strict: GBK text practically never passes as
    UTF-8, whereas GB18030 accepts most byte soup, UTF-8 included (as mojibake). The
    decoders are incremental so a multi-byte character cut at the 1 MB boundary is not
    an error. charset-normalizer is slow, hence only the last resort.
    """
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        # Excel's "Unicode Text" export (tab-delimited UTF-16).
        return "utf-16"
    for encoding in ("utf-8", "gb18030"):
        decoder = codecs.getincrementaldecoder(encoding)("strict")
        try:
            decoder.decode(head, final=complete)
        except UnicodeDecodeError:
            continue
        # utf-8-sig reads plain UTF-8 too and keeps a BOM out of the first header.
        return "utf-8-sig" if encoding == "utf-8" else encoding
    from charset_normalizer import from_bytes  # imported lazily: rarely needed

    best = from_bytes(head).best()
    return best.encoding if best is not None else "utf-8"


def _sniff_delimiter(sample: str) -> str | None:
    """Choose among comma, tab and semicolon by parsing the first rows with each.

    A candidate is rejected if a strict parse fails (a closing quote not followed by
    the delimiter means the quotes belong to another delimiter) or the header has one
    column; among the rest the one giving the most rows with the header's width wins,
    then the widest header. Simple counting would be fooled by "Acme, Inc" in a
    semicolon file; csv.Sniffer is slow and often guesses letters on small samples.
    """
    best: tuple[float, int, int] | None = None
    chosen: str | None = None
    for preference, delimiter in enumerate(_DELIMITERS):
        reader = csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter, strict=True)
        try:
            rows = [r for r in islice(reader, _SNIFF_ROWS * 3) if any(r)][:_SNIFF_ROWS]
        except csv.Error:
            continue
        if not rows or len(rows[0]) < 2:
            continue
        width = len(rows[0])
        data = rows[1:]
        consistency = sum(len(r) == width for r in data) / len(data) if data else 1.0
        score = (consistency, width, -preference)
        if best is None or score > best:
            best, chosen = score, delimiter
    return chosen


def _count_newlines(path: Path) -> tuple[int, bool]:
    """Count ``\\n`` bytes in binary chunks (~1 GB/s); also report a final newline.

    Counting bytes is safe for UTF-8 and GB18030: neither uses 0x0A inside a
    multi-byte character.
    """
    count = 0
    last = b""
    with path.open("rb") as fh:
        while chunk := fh.read(_SAMPLE_BYTES):
            count += chunk.count(b"\n")
            last = chunk
    return count, last.endswith((b"\n", b"\r"))


class _CsvLeadFile(LeadFile):
    kind = "csv"

    def __init__(
        self,
        path: Path,
        headers: list[str],
        mapper: _Mapper,
        *,
        encoding: str,
        delimiter: str,
        header_row: int,
    ) -> None:
        super().__init__(path, headers, mapper)
        self.encoding = encoding
        self.delimiter = delimiter
        self._header_row = header_row

    def _open(self) -> io.TextIOWrapper:
        # errors="replace": only the first 1 MB was checked; a stray bad byte at row
        # 900,000 should show up as U+FFFD in that lead, not abort the whole import.
        # newline="" is what the csv module needs for quoted multi-line cells.
        return self.path.open("r", encoding=self.encoding, errors="replace", newline="")

    def rows(self) -> Iterator[LeadRow]:
        """Yield ``(row_number, record, raw)``; row 1 is the header line."""
        headers = self.headers
        keys = [self._mapper.record_key(h) for h in headers]
        width = len(headers)
        delimiter = self.delimiter or ","
        strip = str.strip
        row_number = self._header_row
        with self._open() as fh:
            reader = csv.reader(fh, delimiter=delimiter)
            try:
                for _ in islice(reader, self._header_row):
                    pass
                # The hot loop: everything per cell happens in C (zip/map/filter/dict)
                # except the strip, which is what keeps this above 300k rows/s.
                for row in reader:
                    row_number += 1
                    if len(row) == width:
                        raw = dict(zip(headers, row, strict=False))
                        record = dict(filter(_second, zip(keys, map(strip, row), strict=False)))
                        record.pop("", None)
                        if not record and not any(map(strip, row)):
                            continue
                        yield row_number, record, raw
                    elif row:
                        built = _build(headers, keys, row, delimiter)
                        if built is not None:
                            yield row_number, built[0], built[1]
            except csv.Error as exc:
                raise ValueError(
                    f"{self.path.name}: malformed CSV at row {row_number + 1}: {exc}"
                ) from exc


def _open_csv(path: Path, mapper: _Mapper) -> LeadFile:
    with path.open("rb") as fh:
        head = fh.read(_SAMPLE_BYTES + 1)
    complete = len(head) <= _SAMPLE_BYTES
    head = head[:_SAMPLE_BYTES]
    encoding = _detect_encoding(head, complete)

    if path.suffix.lower() == ".tsv":
        delimiter = "\t"
    else:
        sample = codecs.getincrementaldecoder(encoding)("replace").decode(head, final=complete)
        if not complete:
            # A half line at the end would look like a ragged row.
            sample = sample[: sample.rfind("\n") + 1] or sample
        delimiter = _sniff_delimiter(sample) or ("\t" if encoding == "utf-16" else ",")

    header_cells: list[str] = []
    header_row = 0
    with path.open("r", encoding=encoding, errors="replace", newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        try:
            for row in reader:
                header_row += 1
                if any(cell.strip() for cell in row):
                    header_cells = row
                    break
        except csv.Error as exc:
            raise ValueError(f"{path.name}: malformed CSV header: {exc}") from exc
    lead_file = _CsvLeadFile(
        path,
        _unique_headers(header_cells),
        mapper,
        encoding=encoding,
        delimiter=delimiter,
        header_row=header_row,
    )
    if encoding != "utf-16":  # 0x0A bytes occur inside UTF-16 characters
        newlines, ends_with_newline = _count_newlines(path)
        lines = newlines + (0 if ends_with_newline or not head else 1)
        lead_file.total_rows = max(0, lines - header_row)
    return lead_file


# -------------------------------------------------------------------------- XLSX


def cell_to_str(value: object) -> str:
    """Render a spreadsheet/JSON scalar the way a user expects to see it as text.

    Phone numbers typed into Excel are stored as floats (13800138000.0); integral
    floats lose the ``.0``. Dates become ISO strings (date only at midnight).
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # Beyond 1e16 floats are no longer exact integers; keep the float spelling.
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return repr(value)
    if isinstance(value, datetime):
        if value.tzinfo is None and value.time() == time(0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    return str(value)


def _load_sheet(path: Path) -> Any:
    """The first sheet, read with calamine (Rust): ~20x faster than openpyxl's reader,
    which matters for the 200k-row lists ops teams bring from events."""
    from python_calamine import CalamineError, CalamineWorkbook

    try:
        return CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0)
    except (CalamineError, ValueError, OSError) as exc:
        raise ValueError(
            f"{path.name} is not a valid .xlsx workbook ({exc}); an old .xls file must be "
            "re-saved as .xlsx"
        ) from exc


def _sheet_rows(sheet: Any) -> Iterator[tuple[int, list[object]]]:
    """``(excel_row_number, cells)``: calamine yields rows from the sheet's first row."""
    for offset, cells in enumerate(sheet.iter_rows()):
        yield offset + 1, cells


class _XlsxLeadFile(LeadFile):
    kind = "xlsx"

    def __init__(
        self, path: Path, headers: list[str], mapper: _Mapper, *, header_row: int, sheet: Any
    ) -> None:
        super().__init__(path, headers, mapper)
        self._header_row = header_row
        self._sheet: Any = sheet

    def close(self) -> None:
        self._sheet = None

    def rows(self) -> Iterator[LeadRow]:
        """Yield ``(row_number, record, raw)`` with Excel's own row numbers."""
        sheet, self._sheet = self._sheet, None
        if sheet is None:
            sheet = _load_sheet(self.path)
        headers = self.headers
        keys = [self._mapper.record_key(h) for h in headers]
        for row_number, cells in _sheet_rows(sheet):
            if row_number <= self._header_row or not cells:
                continue
            values = [cell_to_str(v) for v in cells]
            built = _build(headers, keys, values, ",")
            if built is not None:
                yield row_number, built[0], built[1]


def _open_xlsx(path: Path, mapper: _Mapper) -> LeadFile:
    sheet = _load_sheet(path)
    header_cells: list[str] = []
    header_row = 0
    for row_number, cells in _sheet_rows(sheet):
        values = [cell_to_str(v).strip() for v in cells]
        if any(values):
            while not values[-1]:
                values.pop()  # styled-but-empty cells to the right
            header_cells, header_row = values, row_number
            break
    lead_file = _XlsxLeadFile(
        path, _unique_headers(header_cells), mapper, header_row=header_row, sheet=sheet
    )
    last_row = sheet.end[0] + 1 if sheet.end else 0
    lead_file.total_rows = max(0, last_row - header_row) if header_cells else 0
    return lead_file


# ------------------------------------------------------------------------- JSONL

_JSONL_HEADER_LINES = 1000


def _json_to_str(value: object) -> str:
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return ",".join(_json_to_str(v) for v in value)
    return cell_to_str(value)


def _parse_json_line(line: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        obj = json.loads(line)
    except ValueError as exc:
        return None, f"invalid JSON: {exc}"
    if not isinstance(obj, dict):
        return None, f"invalid JSON: expected an object, got {type(obj).__name__}"
    return obj, None


class _JsonlLeadFile(LeadFile):
    kind = "jsonl"

    def _open(self) -> io.TextIOWrapper:
        # JSON is UTF-8 by definition; tolerate a BOM and stray bad bytes.
        return self.path.open("r", encoding="utf-8-sig", errors="replace")

    def rows(self) -> Iterator[LeadRow]:
        """Yield ``(line_number, record, raw)``; bad lines carry ``record["_error"]``."""
        mapper = self._mapper
        known = mapper.final
        with self._open() as fh:
            for line_number, line in enumerate(fh, start=1):
                text = line.strip()
                if not text:
                    continue
                obj, error = _parse_json_line(text)
                if obj is None:
                    yield line_number, {"_error": error or "invalid JSON"}, {"_raw": text}
                    continue
                raw = {str(k): _json_to_str(v) for k, v in obj.items()}
                new = [k for k in raw if k not in known]
                if new:
                    # Keys first seen after the header sample are mapped on the fly.
                    mapper.add(new)
                    self.headers.extend(new)
                record: dict[str, str] = {}
                for header, value in raw.items():
                    key = mapper.record_key(header)
                    value = value.strip()
                    if key and value:
                        record[key] = value
                if not record and not any(v.strip() for v in raw.values()):
                    continue
                yield line_number, record, raw


def _open_jsonl(path: Path, mapper: _Mapper) -> LeadFile:
    headers: dict[str, None] = {}
    with path.open("r", encoding="utf-8-sig", errors="replace") as fh:
        for line in islice(fh, _JSONL_HEADER_LINES):
            text = line.strip()
            if text:
                obj, _ = _parse_json_line(text)
                if obj is not None:
                    headers.update(dict.fromkeys(str(k) for k in obj))
    lead_file = _JsonlLeadFile(path, list(headers), mapper)
    lead_file.encoding = "utf-8-sig"
    newlines, ends_with_newline = _count_newlines(path)
    has_content = path.stat().st_size > 0
    lead_file.total_rows = newlines + (0 if ends_with_newline or not has_content else 1)
    return lead_file


# ------------------------------------------------------------------------ public


def open_rows(path: Path, *, mapping: Mapping[str, str] | None = None) -> LeadFile:
    """Open a lead file for streaming import.

    The format follows the extension (see :data:`SUPPORTED_SUFFIXES`); CSV encoding
    (UTF-8 with or without BOM, GB18030/GBK, UTF-16) and delimiter (comma, tab,
    semicolon) are detected. ``mapping`` (``{raw_header: target}``, see
    :func:`validate_mapping`) overrides header detection for the headers it names;
    the other headers are detected, and unknown ones become ``"custom:<header>"``.
    Headers are stripped; empty ones are named ``column_<n>`` and repeated ones get a
    ``_2``, ``_3`` suffix so no value is lost. Raises ``ValueError`` for an unsupported
    extension, a bad mapping or an unreadable workbook.
    """
    path = Path(path)
    kind = SUPPORTED_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        supported = ", ".join(SUPPORTED_SUFFIXES)
        hint = " (re-save old .xls workbooks as .xlsx)" if path.suffix.lower() == ".xls" else ""
        raise ValueError(
            f"unsupported file type {path.suffix or '(none)'!r} for {path.name}; "
            f"supported: {supported} (.txt is read as CSV){hint}"
        )
    mapper = _Mapper(mapping)
    if kind == "csv":
        return _open_csv(path, mapper)
    if kind == "xlsx":
        return _open_xlsx(path, mapper)
    return _open_jsonl(path, mapper)


def _counted(rows: Iterable[Sequence[object]], counter: list[int]) -> Iterator[Sequence[object]]:
    for row in rows:
        counter[0] += 1
        yield row


def _write_csv(path: Path, headers: list[str], rows: Iterable[Sequence[object]]) -> int:
    counter = [0]
    # UTF-8 *with* BOM: Excel on Chinese Windows opens a BOM-less CSV as GBK and shows
    # mojibake; the BOM is the only signal it honours, and our reader accepts it.
    # QUOTE_ALL makes our own exports unambiguous to re-import: a wrong delimiter
    # candidate always breaks a strict parse, whatever characters the values contain.
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
        writer.writerow(headers)
        writer.writerows(_counted(rows, counter))
    return counter[0]


def _xlsx_values(
    sheet: Any, row: Sequence[object], cell_cls: Any, illegal: re.Pattern[str]
) -> list[object]:
    values: list[object] = []
    for value in row:
        if isinstance(value, str):
            if illegal.search(value):
                # Control characters pasted into CRM fields make openpyxl raise.
                value = illegal.sub("", value)
            if value.startswith("="):
                # openpyxl would store it as a live formula: a lead named
                # "=HYPERLINK(...)" must stay text (and must not run in Excel).
                cell = cell_cls(sheet, value=value)
                cell.data_type = "s"
                values.append(cell)
                continue
        values.append(value)
    return values


def _write_xlsx(path: Path, headers: list[str], rows: Iterable[Sequence[object]]) -> int:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    # write_only streams rows to a temporary file instead of building a cell grid.
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("leads")
    count = 0
    try:
        sheet.append(_xlsx_values(sheet, headers, WriteOnlyCell, ILLEGAL_CHARACTERS_RE))
        for row in rows:
            sheet.append(_xlsx_values(sheet, row, WriteOnlyCell, ILLEGAL_CHARACTERS_RE))
            count += 1
        workbook.save(path)
    except BaseException:
        _discard_write_only_sheet(sheet)
        raise
    return count


def _discard_write_only_sheet(sheet: Any) -> None:
    # Finish openpyxl's half-written sheet and delete its temporary file now. Left
    # alone, the XML generator is garbage-collected later and raises "I/O operation on
    # closed file", and the temporary file lingers until interpreter exit.
    with contextlib.suppress(Exception):
        sheet.close()
    writer = getattr(sheet, "_writer", None)
    if writer is not None:
        with contextlib.suppress(Exception):
            writer.cleanup()


def write_rows(
    path: Path, headers: list[str], rows: Iterable[Sequence[object]], *, fmt: str
) -> int:
    """Write ``headers`` then ``rows`` to ``path`` as ``fmt`` ("csv" or "xlsx").

    Rows are consumed lazily, so a generator of a million rows is never materialised.
    The file is written next to ``path`` and renamed into place, so a failure midway
    leaves no truncated export behind. Returns the number of data rows written.
    """
    path = Path(path)
    fmt = fmt.lower().lstrip(".")
    writers = {"csv": _write_csv, "xlsx": _write_xlsx}
    writer = writers.get(fmt)
    if writer is None:
        raise ValueError(f"unsupported export format {fmt!r}; expected 'csv' or 'xlsx'")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        count = writer(tmp, headers, rows)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return count

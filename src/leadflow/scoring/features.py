"""Reading a conversion history and turning its columns into model features.

A history is any table of leads with a known outcome: every column other than the target and
the id is a candidate feature. :func:`infer_spec` decides, once, which columns are numeric,
which are categorical (and which categories they keep) and which to drop; the resulting
:class:`FeatureSpec` is stored with the model as JSON, so that scoring encodes a lead exactly
as training did. It has two encoders that must agree to the last bit: a vectorised one for
frames and a pure-Python one for a single lead.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leadflow.errors import DomainError

SPEC_VERSION = 1
NUMERIC_SHARE = 0.95  # a column is numeric when this share of its values parse as numbers
ID_UNIQUE_SHARE = 0.9  # categorical with this share of distinct values looks like an identifier
MIN_ID_ROWS = 20  # below this many values, uniqueness says nothing
MIN_INTEGER_KEY_ROWS = 100  # distinct integers in this many rows are a key, not a measurement


class HistoryError(DomainError):
    """The history cannot be learned from: unknown column, bad target, too few rows…"""


class ColumnKind(StrEnum):
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"


_POSITIVE = {
    "1", "1.0", "true", "t", "yes", "y", "converted", "won", "win", "closed won", "closed_won",
    "是", "成交", "已成交", "转化", "已转化", "赢单", "成功",
}
_NEGATIVE = {
    "0", "0.0", "false", "f", "no", "n", "not converted", "not_converted", "unconverted",
    "lost", "loss", "closed lost", "closed_lost", "否", "未成交", "未转化", "输单", "失败", "丢单",
}
_THOUSANDS = re.compile(r"[,，_]")


def read_history(path: Path) -> pd.DataFrame:
    """Read a history CSV with every column as text (missing and blank cells are NaN).

    The encoding is UTF-8 (with or without BOM), falling back to GB18030, which covers GBK
    and GB2312 exports from Chinese spreadsheets. Column names are stripped.
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise HistoryError(f"cannot read {path}: {exc.strerror or exc}") from exc
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise HistoryError(f"{path}: not UTF-8 or GB18030 text")
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise HistoryError(f"{path}: not a readable CSV ({str(exc).strip()})") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def parse_target(values: pd.Series) -> np.ndarray:
    """The outcome column as an int8 array of 1 (converted) and 0 (not converted).

    Accepts 1/0, true/false, yes/no, y/n, converted/not converted, won/lost, 是/否,
    成交/未成交 and a few more, case-insensitively. Anything else, including a blank, raises
    :class:`HistoryError` naming the value and its file row (data row + 1 for the header).
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    mapped = np.empty(len(uniques) + 1, dtype=np.int8)
    mapped[-1] = -1  # codes of -1 (missing) index the last slot
    for i, value in enumerate(uniques):
        text = _text(value)
        key = text.lower() if text is not None else None
        mapped[i] = 1 if key in _POSITIVE else 0 if key in _NEGATIVE else -1
    out = mapped[codes]
    bad = np.flatnonzero(out < 0)
    if len(bad):
        first = int(bad[0])
        value = values.iloc[first]
        shown = "a blank" if _text(value) is None else repr(value)
        raise HistoryError(
            f"row {first + 2}: target {values.name or ''} is {shown}, expected an outcome such "
            f"as 1/0, yes/no, won/lost or 成交/未成交 ({len(bad)} such rows)",
            field=str(values.name) if values.name is not None else None,
        )
    return out


def _text(value: Any) -> str | None:
    """A cell as stripped text, None when missing; integral floats lose their ``.0``.

    Why the ``.0`` rule: a column of whole numbers read from a database arrives as ints but
    becomes float64 in a frame as soon as one cell is missing; both must map to one category.
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float):
        if value != value:
            return None
        if value.is_integer():
            return str(int(value))
    text = str(value).strip()
    return text or None


def _number(value: Any) -> float:
    """A cell as a finite float, NaN when missing or not a number. ``1,200`` is 1200."""
    if value is None or value is pd.NA or value is pd.NaT:
        return math.nan
    if isinstance(value, str):
        text = _THOUSANDS.sub("", value.strip())
        if not text:
            return math.nan
        try:
            number = float(text)
        except ValueError:
            return math.nan
    else:
        try:
            number = float(value)
        except (TypeError, ValueError):
            return math.nan
    return number if math.isfinite(number) else math.nan


@dataclass
class ColumnSpec:
    """One input column: its kind and, for a categorical column, the categories it keeps.

    Categorical codes are the index in ``categories``; any other value is the "other" code
    ``len(categories)``; a missing value is NaN.
    """

    name: str
    kind: ColumnKind
    categories: list[str] = field(default_factory=list)
    missing_share: float = 0.0

    def __post_init__(self) -> None:
        self.kind = ColumnKind(self.kind)  # accept "numeric" as well as the enum

    @property
    def other_code(self) -> int:
        return len(self.categories)

    def label(self, code: float) -> str:
        """The category or number behind an encoded value, for explanations."""
        if code != code:
            return "missing"
        if self.kind is ColumnKind.NUMERIC:
            return str(int(code)) if code.is_integer() and abs(code) < 1e15 else f"{code:.4g}"
        index = int(code)
        return self.categories[index] if index < len(self.categories) else "other"


@dataclass
class FeatureSpec:
    """The model's input columns, in order; JSON-serialisable."""

    columns: list[ColumnSpec]
    dropped: dict[str, str] = field(default_factory=dict)  # column -> why it is not a feature
    _lookups: list[dict[str, int] | None] = field(init=False, repr=False, compare=False)
    _plan: list[tuple[str, dict[str, int] | None, int]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        self._lookups = [
            {c: i for i, c in enumerate(col.categories)}
            if col.kind is ColumnKind.CATEGORICAL
            else None
            for col in self.columns
        ]
        # Precomputed per column so encode_row is one tight loop.
        self._plan = [
            (col.name, lookup, col.other_code)
            for col, lookup in zip(self.columns, self._lookups, strict=True)
        ]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def to_json(self) -> dict[str, Any]:
        """A plain dict for storage beside the model."""
        return {
            "version": SPEC_VERSION,
            "columns": [
                {"name": c.name, "kind": str(c.kind), "categories": list(c.categories),
                 "missing_share": c.missing_share}
                for c in self.columns
            ],
            "dropped": dict(self.dropped),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FeatureSpec:
        """Rebuild a spec written by :meth:`to_json`."""
        if data.get("version") != SPEC_VERSION:
            raise HistoryError(f"unsupported feature spec version {data.get('version')!r}")
        return cls(
            columns=[
                ColumnSpec(
                    name=str(c["name"]),
                    kind=ColumnKind(c["kind"]),
                    categories=[str(v) for v in c.get("categories", [])],
                    missing_share=float(c.get("missing_share", 0.0)),
                )
                for c in data["columns"]
            ],
            dropped={str(k): str(v) for k, v in data.get("dropped", {}).items()},
        )

    def encode_frame(self, frame: pd.DataFrame, codes: ColumnCodes | None = None) -> np.ndarray:
        """The frame as a float64 matrix (rows × columns of the spec).

        Categoricals become their code (unknown or rare values: the "other" code; missing:
        NaN); numerics are parsed (not a number: NaN). A column absent from ``frame`` is all
        NaN. Vectorised: each distinct value is parsed once (``codes`` may already know the
        distinct values of a column), then codes are gathered.
        """
        out = np.empty((len(frame), len(self.columns)), dtype=np.float64)
        for j, (col, lookup) in enumerate(zip(self.columns, self._lookups, strict=True)):
            if col.name not in frame.columns:
                out[:, j] = np.nan
                continue
            series = frame[col.name]
            if col.kind is ColumnKind.NUMERIC and series.dtype.kind in "iufb":
                values = series.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
                values[~np.isfinite(values)] = np.nan
                out[:, j] = values
                continue
            value_codes, uniques = factorize_column(series, codes)
            table = np.empty(len(uniques) + 1, dtype=np.float64)
            table[-1] = np.nan  # the missing sentinel -1 picks the last slot
            if lookup is None:
                table[:-1] = [_number(u) for u in uniques]
            else:
                table[:-1] = [_code(_text(u), lookup, col.other_code) for u in uniques]
            out[:, j] = table[value_codes]
        return out

    def encode_row(self, row: Mapping[str, Any]) -> np.ndarray:
        """One lead as a 1 × F float64 matrix, identical to :meth:`encode_frame`'s row."""
        return np.array([self.encode_values(row)], dtype=np.float64)

    def encode_values(self, row: Mapping[str, Any]) -> list[float]:
        """One lead as a list of floats: the pure-Python path behind single-lead scoring."""
        out: list[float] = []
        append = out.append
        nan = math.nan
        for name, lookup, other in self._plan:
            value = row.get(name)
            if lookup is None:
                append(_number(value))
            else:
                text = _text(value)
                append(nan if text is None else float(lookup.get(text, other)))
        return out


# Column name → the column's values factorized (codes, distinct values): one batch's text
# columns, shared by every rule and model feature that reads them.
ColumnCodes = dict[Any, tuple[np.ndarray, Any]]


def factorize_column(column: pd.Series, codes: ColumnCodes | None = None) -> tuple[np.ndarray, Any]:
    """``pd.factorize`` of ``column`` (lists compared as tuples), kept in ``codes`` under the
    column's name for the next reader of the same batch."""
    known = codes.get(column.name) if codes is not None else None
    if known is None:
        try:
            known = pd.factorize(column, use_na_sentinel=True)
        except TypeError:  # lists (tags) are not hashable: compare them as tuples
            known = pd.factorize(column.map(_hashable), use_na_sentinel=True)
        if codes is not None:
            codes[column.name] = known
    return known


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _code(text: str | None, lookup: Mapping[str, int], other: int) -> float:
    return math.nan if text is None else float(lookup.get(text, other))


def infer_spec(
    frame: pd.DataFrame,
    *,
    exclude: Collection[str],
    max_categories: int = 40,
    min_count: int | None = None,
) -> FeatureSpec:
    """Decide which columns of a history are features, and how to encode them.

    1. Values are stripped; blank is missing. A column that is all missing or has one
       distinct value is dropped: it cannot separate anything.
    2. A column is numeric when at least 95% of its non-missing values parse as numbers
       (``1,200`` included); the few that do not become missing.
    3. Otherwise it is categorical: it keeps its ``max_categories`` most frequent values seen
       at least ``min_count`` times (default: 20, fewer for small histories); the rest share
       an "other" code, so rare values neither overfit nor break scoring.
    4. Identifier-like columns are dropped: a categorical column with nearly every value
       distinct, or a numeric one holding distinct integers only (a key, not a measure).
    """
    n_rows = len(frame)
    if min_count is None:
        min_count = max(3, min(20, n_rows // 100))
    columns: list[ColumnSpec] = []
    dropped: dict[str, str] = {}
    for name in frame.columns:
        if name in exclude:
            continue
        counts = _value_counts(frame[name])
        present = sum(counts.values())
        label = str(name)
        if present == 0:
            dropped[label] = "all values missing"
            continue
        if len(counts) == 1:
            dropped[label] = f"constant ({next(iter(counts))!r})"
            continue
        missing_share = round(1 - present / n_rows, 6)
        numbers = {text: _number(text) for text in counts}
        numeric = sum(c for t, c in counts.items() if numbers[t] == numbers[t])
        if numeric >= NUMERIC_SHARE * present:
            parsed = [v for v in numbers.values() if v == v]
            if (
                present >= MIN_INTEGER_KEY_ROWS
                and max(counts.values()) == 1
                and all(v.is_integer() for v in parsed)
            ):
                dropped[label] = f"identifier-like ({present} distinct integers)"
                continue
            columns.append(ColumnSpec(label, ColumnKind.NUMERIC, [], missing_share))
            continue
        if present >= MIN_ID_ROWS and len(counts) >= ID_UNIQUE_SHARE * present:
            dropped[label] = f"identifier-like ({len(counts)} distinct of {present} values)"
            continue
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        keep = [t for t, c in ranked if c >= min_count][:max_categories]
        if not keep and missing_share == 0:
            dropped[label] = f"no value occurs {min_count} times"
            continue
        columns.append(ColumnSpec(label, ColumnKind.CATEGORICAL, keep, missing_share))
    return FeatureSpec(columns=columns, dropped=dropped)


def _value_counts(series: pd.Series) -> dict[str, int]:
    """Counts of the stripped, non-missing texts of a column."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    per_code = np.bincount(codes[codes >= 0], minlength=len(uniques))
    counts: dict[str, int] = {}
    for value, count in zip(uniques, per_code, strict=True):
        text = _text(value)
        if text is not None:
            counts[text] = counts.get(text, 0) + int(count)
    return counts

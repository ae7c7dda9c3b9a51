"""Recognise a table form by its header row, pick out its data rows, check every cell.

A form is found by its header, never by the file or sheet name: senders rename
both. Rows that are not data are skipped: title rows above the header, the
"示例：" marker, the template's example row, numbered rows left empty, and footers.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from openpyxl.utils import get_column_letter

from parsers.spreadsheet import Sheet, SheetRow
from rules.campaign import Campaign, Column, Form, header_key
from rules.findings import Finding

#: A header must be among the first rows; the template's is row 4.
HEADER_SEARCH_ROWS = 30
#: Share of a form's columns that a header row must name to be that form.
MIN_HEADER_MATCH = 0.8

_YEAR = re.compile(r"^(\d{4})(?:\.0+)?\s*年?$")
_AMOUNT_UNITS = re.compile(r"(万元|万|￥|¥|,)")


@dataclass
class TableRow:
    """One data row: normalised values by column key, and the cells as sent."""

    number: int
    values: dict[str, Any]
    original: dict[str, Any]


@dataclass
class TableResult:
    """A recognised table form: where it sits, its data rows and their findings."""

    form: Form
    sheet: str
    header_row: int
    rows: list[TableRow] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)


@dataclass(frozen=True)
class _Layout:
    form: Form
    sheet: Sheet
    header_index: int
    #: Column index (0-based) for each column key.
    positions: dict[str, int]
    #: Rows the header spans (1 or 2); data starts below the last.
    header_rows: int = 1


def read_table(sheets: list[Sheet], campaign: Campaign, *, file: str) -> TableResult | None:
    """Find a table form in `sheets` and check it; None when no sheet contains one."""
    layout = _find_layout(sheets, campaign)
    if layout is None:
        return None

    last_header = layout.header_index + layout.header_rows - 1
    result = TableResult(form=layout.form, sheet=layout.sheet.name, header_row=layout.sheet.rows[last_header].number)
    for sheet_row in layout.sheet.rows[last_header + 1:]:
        cells = {key: _cell(sheet_row, index) for key, index in layout.positions.items()}
        uncached = {key for key, index in layout.positions.items() if index in sheet_row.uncached_formulas}
        if not uncached and not _is_data_row(cells, campaign, first_key=min(layout.positions, key=layout.positions.__getitem__)):
            continue
        row, findings = _check_row(sheet_row.number, cells, layout, file, uncached=uncached)
        result.rows.append(row)
        result.findings.extend(findings)

    for column in layout.form.columns:
        if column.required and column.key not in layout.positions:
            result.findings.append(Finding(code="missing-column", file=file, sheet=layout.sheet.name,
                                           row=result.header_row, column=column.label))
    _check_duplicate_ids(result, file)

    if not result.rows:
        result.findings.append(Finding(code="no-data-rows", file=file, sheet=layout.sheet.name))
    return result


def _check_duplicate_ids(result: TableResult, file: str) -> None:
    first_row: dict[str, int] = {}
    for row in result.rows:
        code = row.values.get("申请编号")
        if not isinstance(code, str) or not code:
            continue
        if code in first_row:
            result.findings.append(Finding(code="duplicate-id", file=file, sheet=result.sheet, row=row.number,
                                           column="申请编号", value=code, params={"first_row": first_row[code]}))
        else:
            first_row[code] = row.number


def _find_layout(sheets: list[Sheet], campaign: Campaign) -> _Layout | None:
    best: tuple[float, int, int, _Layout] | None = None
    for sheet in sheets:
        for index, row in enumerate(sheet.rows[:HEADER_SEARCH_ROWS]):
            for header_rows, keys in _header_candidates(sheet, index):
                for form in campaign.forms:
                    if form.kind != "table":
                        continue
                    if header_rows == 2 and not _continues_header(sheet.rows[index + 1], form):
                        continue
                    positions = _match_columns(form, keys)
                    share = len(positions) / len(form.columns)
                    if share < MIN_HEADER_MATCH:
                        continue
                    # On a tie the two-row reading wins: its lower row is part of the header.
                    candidate = (share, len(form.columns), header_rows, _Layout(form, sheet, index, positions, header_rows))
                    if best is None or candidate[:3] > best[:3]:
                        best = candidate
    return best[3] if best else None


def _continues_header(row: SheetRow, form: Form) -> bool:
    """True when every cell of `row` is a column name of `form` or a piece of one."""
    labels = [re.sub(r"\s+", "", unicodedata.normalize("NFKC", c.label)) for c in form.columns]
    cells = [re.sub(r"\s+", "", unicodedata.normalize("NFKC", str(v))) for v in row.values if v is not None]
    return bool(cells) and all(isinstance(v, str) for v in row.values if v is not None) and all(
        any(cell in label for label in labels) for cell in cells)


def _header_candidates(sheet: Sheet, index: int) -> list[tuple[int, list[set[str]]]]:
    """Return the header keys of each column, read from one row and from two rows.

    A header may span two rows: a group label above ("金额（万元）" over 合同金额
    and 服务券金额), or a name split over both rows. Each column then matches by
    the upper cell, the lower cell or both joined.
    """
    row = sheet.rows[index]
    single = [{_key(v)} for v in row.values]
    candidates = [(1, single)]

    if index + 1 < len(sheet.rows) and sheet.rows[index + 1].number == row.number + 1:
        lower = sheet.rows[index + 1].values
        spread = _spread_merges(row, sheet)
        width = max(len(spread), len(lower))
        upper = spread + (None,) * (width - len(spread))
        below = lower + (None,) * (width - len(lower))
        joined = [{_key(a), _key(b), _key(f"{a or ''}{b or ''}")} for a, b in zip(upper, below)]
        candidates.append((2, joined))
    return candidates


def _spread_merges(row: SheetRow, sheet: Sheet) -> tuple[Any, ...]:
    """Copy a header cell merged across columns ("工业企业" over 名称, 地址, 联系方式) onto each column."""
    values = list(row.values)
    for number, first, last in sheet.row_merges:
        if number != row.number or first > len(values):
            continue
        values.extend([None] * (last - len(values)))
        for column in range(first, last):
            if values[column] is None:
                values[column] = values[first - 1]
    return tuple(values)


def _key(value: Any) -> str:
    return header_key(str(value)) if value is not None else ""


def _match_columns(form: Form, keys: list[set[str]]) -> dict[str, int]:
    positions: dict[str, int] = {}
    for column in form.columns:
        for index, options in enumerate(keys):
            if column.match_key in options and index not in positions.values():
                positions[column.key] = index
                break
    return positions


def _cell(row: SheetRow, index: int) -> Any:
    value = row.values[index] if index < len(row.values) else None
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _is_data_row(cells: dict[str, Any], campaign: Campaign, *, first_key: str) -> bool:
    """Tell data rows from the marker, example, empty numbered rows and footers."""
    filled = {key: value for key, value in cells.items() if value is not None}
    if not filled:
        return False

    # Only the leftmost column filled: an empty numbered row, "示例：" or a footer
    # (merged across the row, so its text sits in the first cell).
    if set(filled) <= {"序号", first_key}:
        return False

    # A totals row closes many Chinese forms: 合计, 小计 or 总计 in one of its first cells.
    leading = [_normalise_text(value) for value in list(cells.values())[:3]]
    if any(text is not None and re.fullmatch(r"(合\s*计|小\s*计|总\s*计)[:：]?", text) for text in leading):
        return False

    code = _normalise_text(cells.get("申请编号"))
    if code is not None and code.upper() in campaign.example_ids:
        return False
    return True


def _check_row(number: int, cells: dict[str, Any], layout: _Layout, file: str, *,
               uncached: set[str]) -> tuple[TableRow, list[Finding]]:
    values: dict[str, Any] = {}
    original: dict[str, Any] = {}
    findings: list[Finding] = []

    for column in layout.form.columns:
        if column.key not in layout.positions:
            continue
        raw = cells.get(column.key)
        original[column.key] = _display(raw)
        value, code = normalise(column, raw)
        if column.key in uncached:
            code = "formula-without-value"
        values[column.key] = value
        if code is None:
            continue
        findings.append(Finding(
            code=code, file=file, sheet=layout.sheet.name, row=number, column=column.key,
            column_letter=get_column_letter(layout.positions[column.key] + 1), value=_display(raw),
            params={"hint": column.hint, "choices": "、".join(str(c) for c in column.choices)},
        ))

    for check in layout.form.row_checks:
        left, right = values.get(check.column), values.get(check.than)
        if isinstance(left, float) and isinstance(right, float) and left > right:
            findings.append(Finding(
                code="amount-exceeds", file=file, sheet=layout.sheet.name, row=number, column=check.column,
                column_letter=get_column_letter(layout.positions[check.column] + 1),
                value=_display(cells.get(check.column)),
                params={"other_column": check.than, "other_value": _display(cells.get(check.than))},
            ))

    return TableRow(number=number, values=values, original=original), findings


def normalise(column: Column, raw: Any) -> tuple[Any, str | None]:
    """Return the normalised value of one cell and a finding code, or None if valid."""
    text = _normalise_text(raw)
    if text is None:
        return None, ("missing-cell" if column.required else None)

    if column.type == "year":
        year = _year(raw, text)
        if year is None or (column.choices and year not in column.choices):
            return (year if year is not None else text), "invalid-year"
        return year, None

    if column.type == "amount":
        amount = _amount(raw, text)
        return (amount, None) if amount is not None else (text, "invalid-number")

    if column.type == "pattern":
        compact = re.sub(r"\s+", "", text).upper()
        return (compact, None) if re.fullmatch(column.pattern, compact) else (text, "invalid-pattern")

    if column.type == "choice":
        return (text, None) if text in column.choices else (text, "invalid-choice")

    return text, None


def _normalise_text(raw: Any) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    text = unicodedata.normalize("NFKC", str(raw)).strip()
    text = re.sub(r"\s+", " ", text)
    return text or None


def _year(raw: Any, text: str) -> int | None:
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return int(raw) if float(raw).is_integer() else None
    match = _YEAR.match(text)
    return int(match.group(1)) if match else None


def _amount(raw: Any, text: str) -> float | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, (int, float)):
        return float(raw)
    try:
        return float(_AMOUNT_UNITS.sub("", text).strip())
    except ValueError:
        return None


def _display(raw: Any) -> str:
    if raw is None:
        return ""
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    return str(raw).strip()

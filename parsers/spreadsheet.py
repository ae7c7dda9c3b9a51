"""Read the cell values of .xlsx/.xlsm (openpyxl) and .xls (xlrd) workbooks.

Values come back as the sender sees them: Excel row numbers start at 1 and
cached formula results are used, never the formula. openpyxl parses XML through
defusedxml when it is installed (it is a dependency), so entity expansion is off.
"""

from __future__ import annotations

import io
import logging
import zipfile
from dataclasses import dataclass
from collections.abc import Iterator
from typing import Any

import openpyxl
import xlrd
from lxml import etree
from openpyxl.worksheet.cell_range import CellRange

from parsers.problems import FileProblem
from parsers.sniff import FileKind

log = logging.getLogger(__name__)

#: Default bound on rows read from one sheet; the notice's forms have ten rows.
DEFAULT_MAX_ROWS = 5000
#: Columns past this are ignored; the widest form has 13.
MAX_COLUMNS = 64
#: Namespace of worksheet parts.
SHEET_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
#: Merged ranges taken from one sheet; a form has a few dozen at most.
MAX_MERGES = 10000
#: Bytes of one sheet part scanned for formulas; a bomb-sized part stops here.
FORMULA_SCAN_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class SheetRow:
    """One row: its Excel number (1-based) and its cell values from column A on."""

    number: int
    values: tuple[Any, ...]
    #: Column indices (0-based) of formulas saved without a cached result.
    uncached_formulas: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Sheet:
    """One worksheet's name and its non-empty rows."""

    name: str
    rows: tuple[SheetRow, ...]
    #: Cells merged across columns within one row: (row number, first column, last column),
    #: 1-based. A header cell such as "工业企业" may cover the columns below it.
    row_merges: tuple[tuple[int, int, int], ...] = ()


def read_workbook(data: bytes, kind: FileKind, *, max_rows: int = DEFAULT_MAX_ROWS) -> list[Sheet]:
    """Return the sheets of the workbook in `data` (an XLSX or XLS by `kind`).

    Raises FileProblem("unreadable-file") when the file is broken and
    FileProblem("too-many-rows") when a sheet contains more than `max_rows` rows.
    """
    if kind == FileKind.XLS:
        return _read_xls(data, max_rows)
    return _read_xlsx(data, max_rows)


def _read_xlsx(data: bytes, max_rows: int) -> list[Sheet]:
    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True, keep_links=False)
    except Exception as err:  # zipfile, zlib, lxml and openpyxl raise many unrelated types on corrupt parts
        raise FileProblem("unreadable-file", reason=f"{type(err).__name__}: {err}") from err

    formulas = _formula_workbook(data)
    sheets = []
    try:
        for index, worksheet in enumerate(workbook.worksheets):
            formula_rows = _rows(formulas.worksheets[index]) if formulas is not None else None
            merges, row_merges = _merges(data, worksheet._worksheet_path)
            carried: dict[tuple[int, int], Any] = {}
            rows = []
            for number, values in enumerate(_rows(worksheet), start=1):
                if number > max_rows:
                    raise FileProblem("too-many-rows", sheet=worksheet.title, limit=max_rows)
                if merges:
                    values = _fill_merged(number, values, merges, carried)
                written = next(formula_rows, ()) if formula_rows is not None else ()
                trimmed = _trim(values)
                uncached = frozenset(i for i, cell in enumerate(written)
                                     if _is_formula(cell) and (i >= len(values) or values[i] is None))
                if trimmed or uncached:
                    rows.append(SheetRow(number=number, values=trimmed, uncached_formulas=uncached))
            sheets.append(Sheet(name=worksheet.title, rows=tuple(rows), row_merges=row_merges))
    except FileProblem:
        raise
    except Exception as err:  # openpyxl raises many unrelated types on corrupt parts
        raise FileProblem("unreadable-file", reason=f"{type(err).__name__}: {err}") from err
    finally:
        workbook.close()
        if formulas is not None:
            formulas.close()
    return sheets


def _merges(data: bytes, part: str) -> tuple[list[CellRange], tuple[tuple[int, int, int], ...]]:
    """Return the sheet's vertical merges and its merges across columns of one row.

    Senders merge a value down a column (one 供应商名称 for several rows); the
    read-only reader shows it only in the top cell, so these are filled down.
    Merges across one row are titles, "示例：", footers and header group labels;
    they are returned apart and never filled into data. The <mergeCells>
    element follows the cell data, so the part is streamed.
    """
    vertical: list[CellRange] = []
    across: list[tuple[int, int, int]] = []
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive, archive.open(part.lstrip("/")) as stream:
            for _, element in etree.iterparse(stream, events=("end",), tag=f"{{{SHEET_MAIN}}}mergeCell",
                                              resolve_entities=False, no_network=True, huge_tree=False):
                reference = element.get("ref", "")
                element.clear()
                try:
                    cell_range = CellRange(reference)
                except (ValueError, TypeError):
                    continue
                _sort_merge(cell_range, vertical, across)
                if len(vertical) + len(across) >= MAX_MERGES:
                    break
    except Exception as err:  # the value pass reports a broken file; merges are only a refinement
        log.debug("merged cells unreadable in %s: %s", part, err)
    return vertical, tuple(across)


def _sort_merge(cell_range: CellRange, vertical: list[CellRange], across: list[tuple[int, int, int]]) -> None:
    if cell_range.min_col == cell_range.max_col and cell_range.max_row > cell_range.min_row:
        vertical.append(cell_range)
    elif cell_range.min_row == cell_range.max_row and cell_range.max_col > cell_range.min_col:
        across.append((cell_range.min_row, cell_range.min_col, cell_range.max_col))


def _fill_merged(number: int, values: tuple[Any, ...], merges: list[CellRange],
                 carried: dict[tuple[int, int], Any]) -> tuple[Any, ...]:
    """Copy the top value of each vertical merge into the cells below it."""
    cells = list(values)
    for cell_range in merges:
        column = cell_range.min_col - 1
        if column >= MAX_COLUMNS:
            continue
        if number == cell_range.min_row:
            carried[(cell_range.min_row, column)] = cells[column] if column < len(cells) else None
        elif cell_range.min_row < number <= cell_range.max_row:
            value = carried.get((cell_range.min_row, column))
            if value is not None:
                cells.extend([None] * (column + 1 - len(cells)))
                if cells[column] is None:
                    cells[column] = value
    return tuple(cells)


def _rows(worksheet: Any) -> Iterator[tuple[Any, ...]]:
    # WPS writes a <dimension> of A1 whatever the sheet contains, and the
    # read-only reader trusts it; resetting makes it scan the real rows.
    worksheet.reset_dimensions()
    return worksheet.iter_rows(values_only=True, max_col=MAX_COLUMNS)


def _formula_workbook(data: bytes) -> Any:
    """Open the workbook a second time for its formulas, when any sheet has one.

    The value pass shows a formula saved without its result (as openpyxl and
    some converters save them) as an empty cell; the formula pass tells the two apart.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            sheets = [name for name in archive.namelist() if name.startswith("xl/worksheets/")]
            if not any(_contains_formula(archive, name) for name in sheets):
                return None
        return openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=False, keep_links=False)
    except Exception as err:  # the value pass reports a broken file; this pass is only a hint
        log.debug("formula pass skipped: %s", err)
        return None


def _contains_formula(archive: zipfile.ZipFile, name: str) -> bool:
    """Stream one sheet part looking for an <f> element, reading at most FORMULA_SCAN_BYTES."""
    tail = b""
    read = 0
    with archive.open(name) as stream:
        while read < FORMULA_SCAN_BYTES and (chunk := stream.read(64 * 1024)):
            read += len(chunk)
            window = tail + chunk
            if b"<f>" in window or b"<f " in window:
                return True
            tail = window[-3:]
    return False


def _is_formula(cell: Any) -> bool:
    return (isinstance(cell, str) and cell.startswith("=")) or type(cell).__name__ in ("ArrayFormula", "DataTableFormula")


def _read_xls(data: bytes, max_rows: int) -> list[Sheet]:
    # xlrd writes its warnings about damaged files to a log file, stdout by default.
    # formatting_info gives the merged cells; xlrd only reads it for .xls files.
    warnings = io.StringIO()
    try:
        book = xlrd.open_workbook(file_contents=data, on_demand=True, logfile=warnings, formatting_info=True)
    except Exception as err:  # xlrd raises XLRDError, struct.error, AssertionError ...
        raise FileProblem("unreadable-file", reason=f"{type(err).__name__}: {err}") from err

    sheets = []
    try:
        for index in range(book.nsheets):
            sheet = book.sheet_by_index(index)
            if sheet.nrows > max_rows:
                raise FileProblem("too-many-rows", sheet=sheet.name, limit=max_rows)
            merges: list[CellRange] = []
            across: list[tuple[int, int, int]] = []
            for low_row, high_row, low_col, high_col in sheet.merged_cells[:MAX_MERGES]:
                # xlrd ranges are 0-based and exclusive at the high end.
                _sort_merge(CellRange(min_col=low_col + 1, min_row=low_row + 1, max_col=high_col, max_row=high_row),
                            merges, across)
            carried: dict[tuple[int, int], Any] = {}
            rows = []
            for r in range(sheet.nrows):
                values = tuple(_xls_value(sheet.cell(r, c), book.datemode) for c in range(min(sheet.ncols, MAX_COLUMNS)))
                if merges:
                    values = _fill_merged(r + 1, values, merges, carried)
                trimmed = _trim(values)
                if trimmed:
                    rows.append(SheetRow(number=r + 1, values=trimmed))
            sheets.append(Sheet(name=sheet.name, rows=tuple(rows), row_merges=tuple(across)))
            book.unload_sheet(index)
    except FileProblem:
        raise
    except Exception as err:  # on_demand parses each sheet here, with the same error types as opening
        raise FileProblem("unreadable-file", reason=f"{type(err).__name__}: {err}") from err
    finally:
        book.release_resources()
    if warnings.getvalue():
        log.debug("xlrd warnings: %s", warnings.getvalue()[:500])
    return sheets


def _xls_value(cell: xlrd.sheet.Cell, datemode: int) -> Any:
    if cell.ctype in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK):
        return None
    if cell.ctype == xlrd.XL_CELL_NUMBER:
        number = float(cell.value)
        return int(number) if number.is_integer() else number
    if cell.ctype == xlrd.XL_CELL_DATE:
        try:
            return xlrd.xldate.xldate_as_datetime(cell.value, datemode)
        except (ValueError, OverflowError):
            return cell.value
    if cell.ctype == xlrd.XL_CELL_BOOLEAN:
        return bool(cell.value)
    if cell.ctype == xlrd.XL_CELL_ERROR:
        return None
    return cell.value


def _trim(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop trailing empty cells; return () for an empty row."""
    cleaned = [None if (isinstance(v, str) and not v.strip()) else v for v in values]
    while cleaned and cleaned[-1] is None:
        cleaned.pop()
    return tuple(cleaned)

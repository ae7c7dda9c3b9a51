"""The consolidated workbook: the current rows of every form, a sheet per form."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter

from daemon.errors import IntakeError
from daemon.reporting import current_submissions, latest_passed

if TYPE_CHECKING:
    from daemon.service import Service

SOURCE_COLUMNS = ["发件人", "发件人名称", "接收时间", "Message-ID", "文件名", "原表行号", "是否逾期"]
#: Excel refuses cells longer than this many characters.
MAX_CELL_CHARS = 32767


def export_workbook(service: Service, out: Path) -> dict[str, int]:
    """Write the workbook to `out`; return the number of rows written per form id."""
    campaign = service.campaign
    zone = campaign.timezone
    workbook = Workbook()
    workbook.remove(workbook.active)
    written: dict[str, int] = {}

    with service.database.session() as session:
        submissions = current_submissions(session)
        for form in campaign.forms:
            sheet = workbook.create_sheet(title=form.attachment or form.id)
            entries = latest_passed(submissions, form.id)
            if form.kind == "table":
                header = [c.key for c in form.columns] + SOURCE_COLUMNS
                sheet.append(header)
                count = 0
                for entry in entries:
                    for row in entry.file.rows:
                        values = [_cell(row.values.get(c.key)) for c in form.columns]
                        sheet.append(values + _source(entry, zone, row.excel_row))
                        count += 1
            else:
                header = ["项目牵头单位", *form.sections] + SOURCE_COLUMNS
                sheet.append(header)
                count = 0
                for entry in entries:
                    texts = {s.heading: s.text for s in entry.file.sections}
                    sheet.append([entry.file.unit, *(_cell(texts.get(s, "")) for s in form.sections)]
                                 + _source(entry, zone, None))
                    count += 1
            _style(sheet, len(header))
            written[form.id] = count

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        workbook.save(out)
    except OSError as err:
        raise IntakeError(f"无法写入汇总表 {out}：{err}") from err
    return written


def _source(entry: Any, zone: Any, excel_row: int | None) -> list[Any]:
    submission = entry.submission
    received = submission.received_at.astimezone(zone).replace(tzinfo=None)
    return [submission.forwarded_from or submission.sender, submission.sender_name, received,
            submission.message.message_id, entry.file.name, excel_row, "是" if entry.file.late else "否"]


def _cell(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_CELL_CHARS:
        return value[:MAX_CELL_CHARS]
    return value


def _style(sheet: Any, width: int) -> None:
    for index in range(1, width + 1):
        cell = sheet.cell(row=1, column=index)
        cell.font = Font(bold=True)
        cell.alignment = Alignment(wrap_text=True, vertical="center")
        sheet.column_dimensions[get_column_letter(index)].width = 18
    sheet.freeze_panes = "A2"
    for row in sheet.iter_rows(min_row=2):
        for cell in row:
            # A submitted "=..." must stay text: openpyxl would write it as a formula.
            if isinstance(cell.value, str) and cell.value.startswith("="):
                cell.data_type = "s"
            if hasattr(cell.value, "year") and hasattr(cell.value, "hour"):
                cell.number_format = "yyyy-mm-dd hh:mm"

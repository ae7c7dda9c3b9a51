"""Tests for rules.tables.read_table against the notice 858 campaign's Form 1 and Form 3."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from parsers.sniff import FileKind
from parsers.spreadsheet import Sheet, SheetRow, read_workbook
from rules.campaign import Campaign, load_campaign
from rules.findings import Finding
from rules.tables import TableResult, read_table
from tests.builders import (
    FORM1_EXAMPLE_ROW,
    FORM1_FOOTER,
    FORM1_HEADER,
    form1_row,
    form1_workbook,
    form3_row,
    form3_workbook,
)

CAMPAIGN_FILE = Path(__file__).resolve().parent.parent / "rules" / "notice_2020_858.toml"
FILE = "附件1汇总表.xlsx"

# Rows of the template: 附件N, title, filler, header, 示例：, example row, then data.
HEADER_ROW = 4
FIRST_DATA_ROW = 7


@pytest.fixture(scope="module")
def campaign() -> Campaign:
    return load_campaign(CAMPAIGN_FILE)


def _read(data: bytes, campaign: Campaign, file: str = FILE) -> TableResult | None:
    return read_table(read_workbook(data, FileKind.XLSX), campaign, file=file)


def _table(data: bytes, campaign: Campaign) -> TableResult:
    result = _read(data, campaign)
    assert result is not None, "no form recognised"
    return result


def _findings(result: TableResult, code: str) -> list[Finding]:
    return [f for f in result.findings if f.code == code]


def _only_finding(result: TableResult) -> Finding:
    assert len(result.findings) == 1, [f.code for f in result.findings]
    return result.findings[0]


def _workbook(sheets: dict[str, list[list[Any]]]) -> bytes:
    """Return an xlsx with one sheet per entry, rows written from A1 down."""
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for title, rows in sheets.items():
        sheet = workbook.create_sheet(title)
        for row in rows:
            sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


# --- recognition ------------------------------------------------------------


def test_read_table_form1_recognised(campaign: Campaign) -> None:
    result = _table(form1_workbook([form1_row(2), form1_row(3)]), campaign)

    assert result.form.id == "form1"
    assert result.sheet == "附件1"
    assert result.header_row == HEADER_ROW
    assert result.findings == []
    assert result.passed


def test_read_table_form3_recognised(campaign: Campaign) -> None:
    result = _table(form3_workbook([form3_row(2), form3_row(3), form3_row(4)]), campaign)

    assert result.form.id == "form3"
    assert result.header_row == HEADER_ROW
    assert [row.number for row in result.rows] == [7, 8, 9]
    assert result.findings == []


def test_read_table_form1_wrapped_header(campaign: Campaign) -> None:
    result = _table(form1_workbook([form1_row(2)], header_line_breaks=True), campaign)

    assert result.form.id == "form1"
    assert len(result.rows) == 1
    assert result.findings == []


def test_read_table_form3_wrapped_header(campaign: Campaign) -> None:
    result = _table(form3_workbook([form3_row(2)], header_line_breaks=True), campaign)

    assert result.form.id == "form3"
    assert result.findings == []


def test_read_table_blank_rows_and_renamed_sheet(campaign: Campaign) -> None:
    data = form1_workbook([form1_row(2), form1_row(3)], blank_rows_on_top=3, sheet_title="Sheet1",
                          header_line_breaks=True)
    result = _table(data, campaign)

    assert result.form.id == "form1"
    assert result.sheet == "Sheet1"
    assert result.header_row == HEADER_ROW + 3
    assert [row.number for row in result.rows] == [FIRST_DATA_ROW + 3, FIRST_DATA_ROW + 4]


def test_read_table_form3_renamed_sheet(campaign: Campaign) -> None:
    result = _table(form3_workbook([form3_row(2)], sheet_title="佛山市检查表", blank_rows_on_top=1), campaign)

    assert result.form.id == "form3"
    assert result.sheet == "佛山市检查表"
    assert [row.number for row in result.rows] == [FIRST_DATA_ROW + 1]


def test_read_table_numbers_as_text(campaign: Campaign) -> None:
    result = _table(form1_workbook([form1_row(3)], numbers_as_text=True), campaign)

    assert result.findings == []
    assert result.rows[0].values["申领年份"] == 2018
    assert result.rows[0].values["合同金额"] == 35.5


def test_read_table_form_on_second_sheet(campaign: Campaign) -> None:
    data = _workbook({
        "说明": [["填表说明"], ["请按通知要求填写"]],
        "数据": [FORM1_HEADER, form1_row(2)],
    })
    result = _table(data, campaign)

    assert result.form.id == "form1"
    assert result.sheet == "数据"
    assert result.header_row == 1
    assert [row.number for row in result.rows] == [2]


def test_read_table_unrelated_sheet(campaign: Campaign) -> None:
    data = _workbook({"Sheet1": [["姓名", "部门", "电话"], ["张喆", "办公室", "13926471835"]]})

    assert _read(data, campaign) is None


def test_read_table_partial_header_is_not_form(campaign: Campaign) -> None:
    data = _workbook({"Sheet1": [FORM1_HEADER[:6], form1_row(2)[:6]]})

    assert _read(data, campaign) is None


def test_read_table_no_sheets(campaign: Campaign) -> None:
    assert read_table([], campaign, file=FILE) is None


def test_read_table_header_cells_with_spaces(campaign: Campaign) -> None:
    header = [" 序 号 ", "申领年份（2018/2019）", "申请编号 ", *FORM1_HEADER[3:]]
    result = _read(_workbook({"Sheet1": [header, form1_row(2)]}), campaign)

    assert result is not None
    assert result.form.id == "form1"
    assert result.findings == []


def test_read_table_reordered_columns(campaign: Campaign) -> None:
    """A sender swapped two columns; values are still read by header."""
    header = list(FORM1_HEADER)
    row = form1_row(2)
    header[3], header[4] = header[4], header[3]
    row[3], row[4] = row[4], row[3]
    result = _table(_workbook({"Sheet1": [header, row]}), campaign)

    assert result.rows[0].values["工业企业名称"] == "佛山市顺德区恒丰五金制品有限公司"
    assert result.findings == []


# --- rows that are not data -------------------------------------------------


def test_read_table_example_rows_skipped(campaign: Campaign) -> None:
    result = _table(form1_workbook([form1_row(2)]), campaign)

    assert [row.number for row in result.rows] == [FIRST_DATA_ROW]
    assert all(row.values["申请编号"] != "SQ1811230118" for row in result.rows)


def test_read_table_example_row_without_marker(campaign: Campaign) -> None:
    """The 示例 line is deleted but the example row kept; it is still not data."""
    data = _workbook({"附件1": [FORM1_HEADER, FORM1_EXAMPLE_ROW, form1_row(2)]})
    result = _table(data, campaign)

    assert [row.number for row in result.rows] == [3]


def test_read_table_example_id_lowercase_skipped(campaign: Campaign) -> None:
    example = list(FORM1_EXAMPLE_ROW)
    example[2] = "sq1811230118"
    result = _table(_workbook({"附件1": [FORM1_HEADER, example, form1_row(2)]}), campaign)

    assert [row.number for row in result.rows] == [3]


def test_read_table_form3_example_skipped(campaign: Campaign) -> None:
    result = _table(form3_workbook([form3_row(2)]), campaign)

    assert [row.number for row in result.rows] == [FIRST_DATA_ROW]


def test_read_table_empty_numbered_rows_skipped(campaign: Campaign) -> None:
    result = _table(form1_workbook([form1_row(2), form1_row(3)], pad_to=10), campaign)

    assert [row.number for row in result.rows] == [7, 8]
    assert _findings(result, "missing-cell") == []


def test_read_table_footer_skipped(campaign: Campaign) -> None:
    result = _table(form1_workbook([form1_row(2)], footer=True), campaign)

    assert [row.number for row in result.rows] == [FIRST_DATA_ROW]
    assert result.findings == []


def test_read_table_footer_skipped_without_number_column(campaign: Campaign) -> None:
    """The sender deleted the 序号 column, which the header match allows; the footer is still no row."""
    rows: list[list[Any]] = [FORM1_HEADER[1:], form1_row(2)[1:], [FORM1_FOOTER]]
    result = _table(_workbook({"附件1": rows}), campaign)

    assert [row.number for row in result.rows] == [2]
    assert result.findings == []


def test_read_table_without_example(campaign: Campaign) -> None:
    result = _table(form1_workbook([form1_row(1), form1_row(2)], keep_example=False), campaign)

    assert [row.number for row in result.rows] == [5, 6]
    assert result.findings == []


def test_read_table_no_data_rows(campaign: Campaign) -> None:
    result = _table(form1_workbook([]), campaign)
    finding = _only_finding(result)

    assert result.rows == []
    assert finding.code == "no-data-rows"
    assert finding.file == FILE
    assert finding.sheet == "附件1"
    assert not result.passed


def test_read_table_no_data_rows_form3(campaign: Campaign) -> None:
    result = _table(form3_workbook([], keep_example=False), campaign)

    assert [f.code for f in result.findings] == ["no-data-rows"]


def test_read_table_no_data_rows_message(campaign: Campaign) -> None:
    finding = _only_finding(_table(form1_workbook([]), campaign))

    assert "没有填写任何数据行" in finding.message()


# --- cell findings ----------------------------------------------------------


def test_read_table_missing_cell(campaign: Campaign) -> None:
    result = _table(form1_workbook([form1_row(2, 工业企业名称=None)]), campaign)
    finding = _only_finding(result)

    assert finding.code == "missing-cell"
    assert finding.row == FIRST_DATA_ROW
    assert finding.column == "工业企业名称"
    assert finding.column_letter == "D"
    assert not result.passed


def test_read_table_missing_cell_blank_text(campaign: Campaign) -> None:
    finding = _only_finding(_table(form1_workbook([form1_row(2, 工业企业联系方式="   ")]), campaign))

    assert finding.code == "missing-cell"
    assert finding.column_letter == "F"


def test_read_table_optional_cell_may_be_empty(campaign: Campaign) -> None:
    result = _table(form1_workbook([form1_row(2, 实施不成功的原因=None)]), campaign)

    assert result.findings == []


def test_read_table_form3_optional_remark(campaign: Campaign) -> None:
    result = _table(form3_workbook([form3_row(2, 备注=None)]), campaign)

    assert result.findings == []


def test_read_table_invalid_year(campaign: Campaign) -> None:
    finding = _only_finding(_table(form1_workbook([form1_row(2, 申领年份=2017)]), campaign))

    assert finding.code == "invalid-year"
    assert finding.row == FIRST_DATA_ROW
    assert finding.column == "申领年份"
    assert finding.column_letter == "B"
    assert finding.value == "2017"


@pytest.mark.parametrize("value", ["2020", "二〇一九", "19年", "2019.5", "2018/2019"])
def test_read_table_invalid_year_values(value: str, campaign: Campaign) -> None:
    finding = _only_finding(_table(form1_workbook([form1_row(2, 申领年份=value)]), campaign))

    assert finding.code == "invalid-year"
    assert finding.value == value


@pytest.mark.parametrize("value", ["2019年", "2019", " 2019 ", "２０１９", "2019 年", 2019.0])
def test_read_table_year_forms_accepted(value: Any, campaign: Campaign) -> None:
    result = _table(form1_workbook([form1_row(2, 申领年份=value)]), campaign)

    assert result.findings == []
    assert result.rows[0].values["申领年份"] == 2019


def test_read_table_invalid_pattern(campaign: Campaign) -> None:
    finding = _only_finding(_table(form1_workbook([form1_row(2, 申请编号="SQ19052301")]), campaign))

    assert finding.code == "invalid-pattern"
    assert finding.column == "申请编号"
    assert finding.column_letter == "C"
    assert finding.value == "SQ19052301"


@pytest.mark.parametrize("value", ["SO1904163275", "1904163275", "SQ19041632755", "SQ-1904163275"])
def test_read_table_invalid_pattern_values(value: str, campaign: Campaign) -> None:
    finding = _only_finding(_table(form3_workbook([form3_row(2, 申请编号=value)]), campaign))

    assert finding.code == "invalid-pattern"


@pytest.mark.parametrize("value", ["sq1904163275", " SQ 1904163275 ", "ＳＱ１９０４１６３２７５"])
def test_read_table_pattern_normalised(value: str, campaign: Campaign) -> None:
    result = _table(form1_workbook([form1_row(2, 申请编号=value)]), campaign)

    assert result.findings == []
    assert result.rows[0].values["申请编号"] == "SQ1904163275"


def test_read_table_invalid_choice(campaign: Campaign) -> None:
    finding = _only_finding(_table(form1_workbook([form1_row(2, 使用情况="良好")]), campaign))

    assert finding.code == "invalid-choice"
    assert finding.column == "使用情况"
    assert finding.column_letter == "L"
    assert finding.value == "良好"
    assert finding.params["choices"] == "正常、部分使用、停止"


def test_read_table_form3_invalid_choice(campaign: Campaign) -> None:
    finding = _only_finding(_table(form3_workbook([form3_row(2, 检查结果="合格")]), campaign))

    assert finding.code == "invalid-choice"
    assert finding.column == "检查结果"
    assert finding.column_letter == "G"


@pytest.mark.parametrize("value", ["正常", "部分使用", "停止", " 停止 "])
def test_read_table_choices_accepted(value: str, campaign: Campaign) -> None:
    assert _table(form1_workbook([form1_row(2, 使用情况=value)]), campaign).findings == []


def test_read_table_invalid_number(campaign: Campaign) -> None:
    finding = _only_finding(_table(form1_workbook([form1_row(2, 合同金额="二十")]), campaign))

    assert finding.code == "invalid-number"
    assert finding.column == "合同金额"
    assert finding.column_letter == "J"
    assert finding.value == "二十"


@pytest.mark.parametrize("value", ["约20", "20元以内", "待定", "/"])
def test_read_table_invalid_number_values(value: str, campaign: Campaign) -> None:
    finding = _only_finding(_table(form1_workbook([form1_row(2, 合同金额=value)]), campaign))

    assert finding.code == "invalid-number"


@pytest.mark.parametrize(("value", "expected"), [
    ("20万元", 20.0), ("20 万元", 20.0), ("20万", 20.0), ("¥20", 20.0), ("1,200.5", 1200.5),
    ("２０万元", 20.0), (20, 20.0), (35.5, 35.5), ("35.5", 35.5),
])
def test_read_table_amount_forms_accepted(value: Any, expected: float, campaign: Campaign) -> None:
    result = _table(form1_workbook([form1_row(2, 合同金额=value, 服务券金额=15)]), campaign)

    assert result.findings == []
    assert result.rows[0].values["合同金额"] == expected


def test_read_table_amount_exceeds(campaign: Campaign) -> None:
    finding = _only_finding(_table(form1_workbook([form1_row(2, 合同金额=12, 服务券金额=50)]), campaign))

    assert finding.code == "amount-exceeds"
    assert finding.row == FIRST_DATA_ROW
    assert finding.column == "服务券金额"
    assert finding.column_letter == "K"
    assert finding.value == "50"
    assert finding.params["other_column"] == "合同金额"
    assert finding.params["other_value"] == "12"


def test_read_table_amount_exceeds_with_units(campaign: Campaign) -> None:
    finding = _only_finding(_table(form1_workbook([form1_row(2, 合同金额="20万元", 服务券金额="25万")]), campaign))

    assert finding.code == "amount-exceeds"
    assert finding.value == "25万"


def test_read_table_amount_equal_allowed(campaign: Campaign) -> None:
    result = _table(form1_workbook([form1_row(2, 合同金额="20万元", 服务券金额=20)]), campaign)

    assert result.findings == []


def test_read_table_amount_exceeds_skipped_when_invalid(campaign: Campaign) -> None:
    result = _table(form1_workbook([form1_row(2, 合同金额="待定", 服务券金额=50)]), campaign)

    assert [f.code for f in result.findings] == ["invalid-number"]


def test_read_table_several_findings_one_row(campaign: Campaign) -> None:
    row = form1_row(3, 申领年份=2017, 申请编号="SQ19052301", 工业企业名称=None, 使用情况="良好")
    result = _table(form1_workbook([form1_row(2), row]), campaign)

    assert [(f.code, f.row, f.column_letter) for f in result.findings] == [
        ("invalid-year", 8, "B"),
        ("invalid-pattern", 8, "C"),
        ("missing-cell", 8, "D"),
        ("invalid-choice", 8, "L"),
    ]


def test_read_table_findings_carry_file_and_sheet(campaign: Campaign) -> None:
    data = form1_workbook([form1_row(2, 申领年份=2017)], sheet_title="汇总")
    finding = _only_finding(_read(data, campaign, file="星河数联.xlsx"))

    assert finding.file == "星河数联.xlsx"
    assert finding.sheet == "汇总"


def test_read_table_row_numbers_after_blank_rows(campaign: Campaign) -> None:
    data = form1_workbook([form1_row(2), form1_row(3, 使用情况="良好")], blank_rows_on_top=2)
    finding = _only_finding(_table(data, campaign))

    assert finding.row == FIRST_DATA_ROW + 3


def test_read_table_row_numbers_with_gap(campaign: Campaign) -> None:
    """An empty row between data rows keeps the numbers of the rows below it."""
    rows: list[list[Any]] = [FORM1_HEADER, form1_row(2), [None] * 13, form1_row(3, 使用情况="良好")]
    finding = _only_finding(_table(_workbook({"附件1": rows}), campaign))

    assert finding.row == 4


def test_read_table_original_values_kept(campaign: Campaign) -> None:
    result = _table(form1_workbook([form1_row(2, 合同金额="20万元", 申领年份="2019年")]), campaign)

    assert result.rows[0].original["合同金额"] == "20万元"
    assert result.rows[0].original["申领年份"] == "2019年"


def test_read_table_sheet_rows_directly(campaign: Campaign) -> None:
    """read_table works on Sheet objects whatever reader made them."""
    sheet = Sheet(name="附件3", rows=(
        SheetRow(number=10, values=("序号", "申领年份(2018/2019)", "申请编号", "工业企业名称",
                                    "供应商（或平台商）名称", "代理商（或合作方）名称",
                                    "检查结果（未检查/通过/不通过）", "备注")),
        SheetRow(number=12, values=(2, 2019, "SQ1904163275", "佛山市顺德区恒丰五金制品有限公司",
                                    "广东星河数联科技有限公司", "无", "待定")),
    ))
    result = read_table([sheet], campaign, file="x.xlsx")

    assert result is not None
    assert result.header_row == 10
    assert [(f.code, f.row, f.column_letter) for f in result.findings] == [("invalid-choice", 12, "G")]


# --- messages ---------------------------------------------------------------


def test_finding_message_invalid_year(campaign: Campaign) -> None:
    message = _only_finding(_table(form1_workbook([form1_row(2, 申领年份=2017)]), campaign)).message()

    assert "第 7 行" in message
    assert "B 列" in message
    assert "申领年份" in message
    assert "2017" in message


def test_finding_message_invalid_pattern_hint(campaign: Campaign) -> None:
    message = _only_finding(_table(form1_workbook([form1_row(2, 申请编号="SQ123")]), campaign)).message()

    assert message.startswith("工作表“附件1”第 7 行 C 列“申请编号”")
    assert "“SQ123”" in message
    assert "“SQ”加 10 位数字" in message


def test_finding_message_invalid_choice(campaign: Campaign) -> None:
    message = _only_finding(_table(form1_workbook([form1_row(2, 使用情况="良好")]), campaign)).message()

    assert "第 7 行 L 列" in message
    assert "“良好”" in message
    assert "正常、部分使用、停止" in message


def test_finding_message_missing_cell(campaign: Campaign) -> None:
    message = _only_finding(_table(form1_workbook([form1_row(2, 工业企业地址=None)]), campaign)).message()

    assert message == "工作表“附件1”第 7 行 E 列“工业企业地址”为空，请填写。"


def test_finding_message_invalid_number(campaign: Campaign) -> None:
    message = _only_finding(_table(form1_workbook([form1_row(2, 服务券金额="十五")]), campaign)).message()

    assert "第 7 行 K 列" in message
    assert "服务券金额" in message
    assert "“十五”" in message


def test_finding_message_amount_exceeds(campaign: Campaign) -> None:
    finding = _only_finding(_table(form1_workbook([form1_row(2, 合同金额=12, 服务券金额=50)]), campaign))
    message = finding.message()

    assert "第 7 行 K 列" in message
    assert "“服务券金额”为 50 万元" in message
    assert "“合同金额”12 万元" in message


def test_finding_message_no_placeholder_left(campaign: Campaign) -> None:
    row = form1_row(2, 申领年份=2017, 申请编号="SQ1", 工业企业名称=None, 合同金额="x", 使用情况="良好")
    result = _table(form1_workbook([row, form1_row(3, 合同金额=1, 服务券金额=2)]), campaign)

    for finding in result.findings:
        assert "{" not in finding.message(), finding.code
        assert finding.code not in finding.message()

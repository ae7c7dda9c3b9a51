"""Workbooks as real senders save them: formulas, two-row headers, hidden columns, xlsm."""

from __future__ import annotations

import io
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook, load_workbook

from parsers.convert import libreoffice_binary
from parsers.problems import FileProblem
from parsers.sniff import FileKind, sniff
from parsers.spreadsheet import read_workbook
from rules.campaign import Campaign, load_campaign
from rules.tables import TableResult, read_table
from tests import builders
from tests.support import REPO, rewrite_part

CAMPAIGN: Campaign = load_campaign(REPO / "rules" / "notice_2020_858.toml")


def _table(data: bytes) -> TableResult:
    result = read_table(read_workbook(data, sniff(data)), CAMPAIGN, file="表.xlsx")
    assert result is not None
    return result


def _save(workbook: Workbook) -> bytes:
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _codes(result: TableResult) -> list[tuple[str, int, str]]:
    return [(f.code, f.row, f.column) for f in result.findings]


def test_formula_without_cached_value_is_finding() -> None:
    data = builders.form1_workbook([builders.form1_row(2, 合同金额="=20+8")])

    result = _table(data)

    assert _codes(result) == [("formula-without-value", 7, "合同金额")]
    message = result.findings[0].message()
    assert "公式" in message
    assert "重新保存" in message


def test_formula_only_row_is_not_skipped() -> None:
    """A row whose only cell is an uncached formula still reaches the checks."""
    sheet_rows: list[list[Any]] = [builders.FORM1_HEADER, builders.form1_row(2), [None, None, "=A2"]]
    workbook = Workbook()
    for values in sheet_rows:
        workbook.active.append(values)

    result = _table(_save(workbook))

    assert ("formula-without-value", 3, "申请编号") in _codes(result)


def test_formula_with_cached_value_reads_value() -> None:
    data = builders.form1_workbook([builders.form1_row(2, 合同金额=28)])
    patched = _with_cached_formula(data, cell="J7", formula="20+8", value="28")

    result = _table(patched)

    assert result.findings == []
    assert result.rows[0].values["合同金额"] == 28


def _with_cached_formula(data: bytes, *, cell: str, formula: str, value: str) -> bytes:
    """Rewrite one numeric cell into a formula with a cached result, as Excel saves it."""
    old = f'<c r="{cell}" t="n"><v>{value}</v></c>'.encode()
    new = f'<c r="{cell}"><f>{formula}</f><v>{value}</v></c>'.encode()
    assert old in zipfile.ZipFile(io.BytesIO(data)).read("xl/worksheets/sheet1.xml")
    return rewrite_part(data, "xl/worksheets/sheet1.xml", lambda content: content.replace(old, new))


def test_two_row_header_with_group_label() -> None:
    """合同金额 and 服务券金额 sit under a merged "金额（万元）" group label."""
    upper = list(builders.FORM1_HEADER)
    upper[9], upper[10] = "金额（万元）", None
    lower: list[Any] = [None] * 13
    lower[9], lower[10] = "合同金额", "服务券金额"
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["附件1"])
    sheet.append(upper)
    sheet.append(lower)
    sheet.merge_cells("J2:K2")
    sheet.append(builders.form1_row(2))

    result = _table(_save(workbook))

    assert result.header_row == 3
    assert [row.number for row in result.rows] == [4]
    assert result.findings == []
    assert result.rows[0].values["服务券金额"] == builders.form1_row(2)[10]


def test_two_row_header_name_split_over_rows() -> None:
    upper = list(builders.FORM1_HEADER)
    upper[1] = "申领年份"
    lower: list[Any] = [None] * 13
    lower[1] = "（2018/2019）"
    workbook = Workbook()
    workbook.active.append(upper)
    workbook.active.append(lower)
    workbook.active.append(builders.form1_row(2))

    result = _table(_save(workbook))

    assert [row.number for row in result.rows] == [3]
    assert result.findings == []


def test_hidden_empty_column_ignored() -> None:
    header = list(builders.FORM1_HEADER)
    header.insert(3, None)
    row = list(builders.form1_row(2))
    row.insert(3, None)
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(header)
    sheet.append(row)
    sheet.column_dimensions["D"].hidden = True

    result = _table(_save(workbook))

    assert result.findings == []
    assert result.rows[0].values["工业企业名称"] == builders.form1_row(2)[3]


def test_xlsm_read_without_running_macros() -> None:
    data = builders.form1_workbook([builders.form1_row(2)])
    macro = _with_vba_part(data)

    result = _table(macro)

    assert sniff(macro) == FileKind.XLSX
    assert result.findings == []
    assert len(result.rows) == 1


def _with_vba_part(data: bytes) -> bytes:
    """Add a vbaProject.bin part and the macro-enabled content type, as Excel saves .xlsm."""
    return rewrite_part(
        data, "[Content_Types].xml",
        lambda content: content.replace(b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
                                        b"application/vnd.ms-excel.sheet.macroEnabled.main+xml"),
        extra={"xl/vbaProject.bin": b"\xd0\xcf\x11\xe0 not a real macro project"})


def test_numbers_as_text_and_units_normalised() -> None:
    data = builders.form1_workbook([builders.form1_row(2, 申领年份="2019年", 合同金额="20万元", 服务券金额="10")],
                                   numbers_as_text=True)

    result = _table(data)

    assert result.findings == []
    assert result.rows[0].values["申领年份"] == 2019
    assert result.rows[0].values["合同金额"] == 20
    assert result.rows[0].original["合同金额"] == "20万元"


def test_value_merged_down_column_fills_rows() -> None:
    rows = [builders.form1_row(2), builders.form1_row(3, 供应商名称=None), builders.form1_row(4, 供应商名称=None)]
    workbook = load_workbook(io.BytesIO(builders.form1_workbook(rows)))
    workbook.active.merge_cells("G7:G9")

    result = _table(_save(workbook))

    assert result.findings == []
    suppliers = {row.values["供应商（或平台商）名称"] for row in result.rows}
    assert suppliers == {builders.form1_row(2)[6]}


def test_merged_footer_stays_out_of_data() -> None:
    """The footer is merged across the row (A16:M16); it must not become a row of findings."""
    result = _table(builders.form1_workbook([builders.form1_row(2)], footer=True))

    assert [row.number for row in result.rows] == [7]
    assert result.findings == []


LAUGHS = ('<!DOCTYPE lolz [<!ENTITY lol "lol">'
          + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 2 else "") + ";") * 10}">' for i in range(2, 10))
          + "]>")


def test_entity_expansion_off_in_workbook() -> None:
    """A billion-laughs DOCTYPE in the shared strings is never expanded."""
    def add_laughs(content: bytes) -> bytes:
        head, body = content.decode().split("?>", 1)
        return (head + "?>" + LAUGHS + body.replace("附件1", "&lol9;", 1)).encode()

    data = rewrite_part(builders.form1_workbook([builders.form1_row(2)]), "xl/sharedStrings.xml", add_laughs)

    try:
        sheets = read_workbook(data, FileKind.XLSX)
    except FileProblem as problem:
        assert problem.code == "unreadable-file"
        return
    texts = [str(v) for sheet in sheets for row in sheet.rows for v in row.values]
    assert not any("lollol" in text for text in texts)


def test_wrong_dimension_record_read_whole_sheet() -> None:
    """WPS writes <dimension ref="A1"/> whatever the sheet holds; every row must still be read."""
    def claim_a1(content: bytes) -> bytes:
        start = content.index(b"<dimension ")
        end = content.index(b"/>", start) + 2
        return content[:start] + b'<dimension ref="A1"/>' + content[end:]

    data = rewrite_part(builders.form1_workbook([builders.form1_row(2), builders.form1_row(3)]),
                        "xl/worksheets/sheet1.xml", claim_a1)

    result = _table(data)

    assert [row.number for row in result.rows] == [7, 8]
    assert result.findings == []


def test_deleted_required_column_is_finding() -> None:
    header = [h for h in builders.FORM1_HEADER if not h.startswith("代理商")]
    row = [v for i, v in enumerate(builders.form1_row(2)) if not builders.FORM1_HEADER[i].startswith("代理商")]
    workbook = Workbook()
    workbook.active.append(header)
    workbook.active.append(row)

    result = _table(_save(workbook))

    assert _codes(result) == [("missing-column", 1, "代理商（或合作方）名称")]
    assert "找不到“代理商（或合作方）名称”列" in result.findings[0].message()


def test_header_merged_across_columns_over_second_row() -> None:
    """"工业企业" spans D:F above 名称, 地址, 联系方式; every one of them must be matched."""
    upper = list(builders.FORM1_HEADER)
    upper[3], upper[4], upper[5] = "工业企业", None, None
    lower: list[Any] = [None] * 13
    lower[3], lower[4], lower[5] = "名称", "地址", "联系方式"
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(upper)
    sheet.append(lower)
    sheet.merge_cells("D1:F1")
    sheet.append(builders.form1_row(2))

    result = _table(_save(workbook))

    assert result.findings == []
    assert result.rows[0].values["工业企业地址"] == builders.form1_row(2)[4]
    assert result.rows[0].values["工业企业联系方式"] == builders.form1_row(2)[5]


def test_totals_row_not_data() -> None:
    totals: list[Any] = ["合计"] + [None] * 8 + [100, 40, None, None]
    rows = [builders.form1_row(2), builders.form1_row(3), totals]
    result = _table(builders.form1_workbook(rows))

    assert [row.number for row in result.rows] == [7, 8]
    assert result.findings == []


def test_duplicate_application_id_is_finding() -> None:
    rows = [builders.form1_row(2), builders.form1_row(3, 申请编号=builders.form1_row(2)[2])]

    result = _table(builders.form1_workbook(rows))

    assert _codes(result) == [("duplicate-id", 8, "申请编号")]
    assert "与第 7 行重复" in result.findings[0].message()


def test_xls_value_merged_down_column(tmp_path: Path) -> None:
    """The same merge in an .xls (made by LibreOffice) is filled down too."""
    if libreoffice_binary() is None:
        pytest.skip("LibreOffice is not installed (apt-get install libreoffice-calc-nogui)")
    rows = [builders.form1_row(2), builders.form1_row(3, 供应商名称=None), builders.form1_row(4, 供应商名称=None)]
    workbook = load_workbook(io.BytesIO(builders.form1_workbook(rows)))
    workbook.active.merge_cells("G7:G9")
    (tmp_path / "form.xlsx").write_bytes(_save(workbook))
    subprocess.run([libreoffice_binary() or "soffice", f"-env:UserInstallation=file://{tmp_path}/profile", "--headless",
                    "--convert-to", "xls", "--outdir", str(tmp_path), str(tmp_path / "form.xlsx")],
                   check=True, capture_output=True, timeout=120)
    data = (tmp_path / "form.xls").read_bytes()

    result = _table(data)

    assert sniff(data) == FileKind.XLS
    assert result.findings == []
    assert len(result.rows) == 3

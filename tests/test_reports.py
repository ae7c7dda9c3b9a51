"""Tests for rules.reports.read_report on Form 2 Word reports of notice 858."""

from __future__ import annotations

import io
from pathlib import Path

import docx
import pytest

from parsers.document import Paragraph, read_docx
from rules.campaign import Campaign, load_campaign
from rules.findings import Finding
from rules.reports import ReportResult, read_report
from tests.builders import FORM2_SECTIONS, form2_report

CAMPAIGN_FILE = Path(__file__).resolve().parent.parent / "rules" / "notice_2020_858.toml"
COMPANY = "佛山市顺德区恒丰五金制品有限公司"
FILE = "附件2.zip/佛山市顺德区恒丰五金制品有限公司.docx"


@pytest.fixture(scope="module")
def campaign() -> Campaign:
    return load_campaign(CAMPAIGN_FILE)


def _document(paragraphs: list[str | tuple[str, str]]) -> bytes:
    """Return a docx with one paragraph per entry. A (text, style) pair sets the style."""
    document = docx.Document()
    for entry in paragraphs:
        text, style = (entry, None) if isinstance(entry, str) else entry
        document.add_paragraph(text, style=style)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _read(data: bytes, campaign: Campaign) -> ReportResult | None:
    return read_report(read_docx(data), campaign, file=FILE)


def _report(data: bytes, campaign: Campaign) -> ReportResult:
    result = _read(data, campaign)
    assert result is not None, "no report recognised"
    return result


def _only_finding(result: ReportResult) -> Finding:
    assert len(result.findings) == 1, [f.code for f in result.findings]
    return result.findings[0]


def _outline(**texts: list[str]) -> list[str | tuple[str, str]]:
    """Return a report's paragraphs: title, unit line, then each section with `texts` or a default line.

    Keywords are the bare section names (项目基本情况 ...).
    """
    paragraphs: list[str | tuple[str, str]] = [f"{COMPANY}工业互联网标杆示范项目建设情况报告",
                                               f"（项目牵头单位：{COMPANY}）"]
    for heading in FORM2_SECTIONS:
        bare = heading.split("、", 1)[1]
        paragraphs.append(heading)
        paragraphs.extend(texts.get(bare, [f"{bare}的实际内容。"]))
    return paragraphs


# --- recognition ------------------------------------------------------------


def test_read_report_complete(campaign: Campaign) -> None:
    result = _report(form2_report(COMPANY), campaign)

    assert result.form.id == "form2"
    assert list(result.sections) == FORM2_SECTIONS
    assert result.findings == []
    assert result.passed


def test_read_report_section_text(campaign: Campaign) -> None:
    result = _report(form2_report(COMPANY), campaign)

    assert result.sections["三、存在问题"] == "受新冠肺炎疫情影响，部分设备到货延迟，项目进度较原计划滞后约一个月。"
    assert result.sections["一、项目基本情况"].startswith(f"{COMPANY}成立于2006年")
    assert "二是整理项目档案和财务凭证" in result.sections["四、工作计划"]


def test_read_report_headings_without_prefix(campaign: Campaign) -> None:
    result = _report(form2_report(COMPANY, numbered_prefix=False), campaign)

    assert list(result.sections) == FORM2_SECTIONS
    assert result.findings == []


@pytest.mark.parametrize("style", ["Heading 1", "Heading 2", "Title"])
def test_read_report_heading_styles(style: str, campaign: Campaign) -> None:
    result = _report(form2_report(COMPANY, heading_style=style), campaign)

    assert list(result.sections) == FORM2_SECTIONS
    assert result.findings == []


def test_read_report_heading_style_without_prefix(campaign: Campaign) -> None:
    result = _report(form2_report(COMPANY, heading_style="Heading 1", numbered_prefix=False), campaign)

    assert list(result.sections) == FORM2_SECTIONS
    assert result.findings == []


@pytest.mark.parametrize("heading", ["（三）存在问题", "3.存在问题", "三、存在问题：", "三．存在问题", "三、 存在 问题"])
def test_read_report_heading_variants(heading: str, campaign: Campaign) -> None:
    paragraphs = _outline()
    paragraphs[paragraphs.index("三、存在问题")] = heading
    result = _report(_document(paragraphs), campaign)

    assert "三、存在问题" in result.sections
    assert _missing_sections(result) == []


def _missing_sections(result: ReportResult) -> list[str]:
    return [f.params["section"] for f in result.findings if f.code == "missing-section"]


def test_read_report_full_width_heading(campaign: Campaign) -> None:
    paragraphs = _outline()
    paragraphs[paragraphs.index("四、工作计划")] = "四、工作计划（２０２０年）"
    result = _report(_document(paragraphs), campaign)

    assert "四、工作计划" in result.sections


def test_read_report_text_after_heading_colon(campaign: Campaign) -> None:
    """The heading and its text share one paragraph: "三、存在问题：受疫情影响……"."""
    paragraphs = _outline()
    start = paragraphs.index("三、存在问题")
    paragraphs[start:start + 2] = ["三、存在问题：受新冠肺炎疫情影响，部分设备到货延迟，项目进度滞后约一个月。"]
    result = _report(_document(paragraphs), campaign)

    assert _missing_sections(result) == []
    assert "部分设备到货延迟" in result.sections.get("三、存在问题", "")
    assert "部分设备到货延迟" not in result.sections["二、项目建设情况"]


def test_read_report_short_answer_after_heading_colon(campaign: Campaign) -> None:
    """A short statement on the heading line ("三、存在问题：暂无。") fills the section."""
    paragraphs = _outline()
    start = paragraphs.index("三、存在问题")
    paragraphs[start:start + 2] = ["三、存在问题：暂无。"]
    result = _report(_document(paragraphs), campaign)

    assert result.findings == []
    assert "暂无" in result.sections["三、存在问题"]


def test_read_report_sections_in_table(campaign: Campaign) -> None:
    """Some templates put the whole outline inside a one-cell table."""
    document = docx.Document()
    document.add_paragraph(f"{COMPANY}工业互联网标杆示范项目建设情况报告")
    cell = document.add_table(rows=1, cols=1).cell(0, 0)
    for heading in FORM2_SECTIONS:
        cell.add_paragraph(heading)
        cell.add_paragraph(f"{heading[2:]}的实际内容。")
    buffer = io.BytesIO()
    document.save(buffer)
    result = _report(buffer.getvalue(), campaign)

    assert list(result.sections) == FORM2_SECTIONS
    assert result.findings == []


def test_read_report_from_paragraphs_directly(campaign: Campaign) -> None:
    paragraphs = [
        Paragraph(text="项目基本情况", style="List Paragraph", numbered=True),
        Paragraph(text="基本情况的内容。", style="", numbered=False),
        Paragraph(text="项目建设情况", style="List Paragraph", numbered=True),
        Paragraph(text="建设情况的内容。", style="", numbered=False),
        Paragraph(text="存在问题", style="List Paragraph", numbered=True),
        Paragraph(text="问题的内容。", style="", numbered=False),
        Paragraph(text="工作计划", style="List Paragraph", numbered=True),
        Paragraph(text="计划的内容。", style="", numbered=False),
    ]
    result = read_report(paragraphs, campaign, file=FILE)

    assert result is not None
    assert result.sections["三、存在问题"] == "问题的内容。"
    assert result.findings == []


# --- missing, empty and unfilled sections -----------------------------------


def test_read_report_missing_section(campaign: Campaign) -> None:
    result = _report(form2_report(COMPANY, omit=["三、存在问题"]), campaign)
    finding = _only_finding(result)

    assert finding.code == "missing-section"
    assert finding.params["section"] == "三、存在问题"
    assert finding.file == FILE
    assert not result.passed


def test_read_report_missing_section_message(campaign: Campaign) -> None:
    finding = _only_finding(_report(form2_report(COMPANY, omit=["存在问题"]), campaign))

    assert "三、存在问题" in finding.message()


def test_read_report_missing_section_keeps_neighbours(campaign: Campaign) -> None:
    result = _report(form2_report(COMPANY, omit=["三、存在问题"]), campaign)

    assert list(result.sections) == ["一、项目基本情况", "二、项目建设情况", "四、工作计划"]
    assert "受新冠肺炎疫情影响" not in result.sections["二、项目建设情况"]


def test_read_report_two_missing_sections(campaign: Campaign) -> None:
    result = _report(form2_report(COMPANY, omit=["一、项目基本情况", "四、工作计划"]), campaign)

    assert _missing_sections(result) == ["一、项目基本情况", "四、工作计划"]


def test_read_report_empty_section(campaign: Campaign) -> None:
    result = _report(form2_report(COMPANY, empty=["三、存在问题"]), campaign)
    finding = _only_finding(result)

    assert finding.code == "empty-section"
    assert finding.params["section"] == "三、存在问题"
    assert not result.passed


def test_read_report_empty_last_section(campaign: Campaign) -> None:
    finding = _only_finding(_report(form2_report(COMPANY, empty=["四、工作计划"]), campaign))

    assert finding.code == "empty-section"
    assert finding.params["section"] == "四、工作计划"


def test_read_report_empty_section_message(campaign: Campaign) -> None:
    finding = _only_finding(_report(form2_report(COMPANY, empty=["存在问题"]), campaign))

    assert "三、存在问题" in finding.message()
    assert "没有填写内容" in finding.message()


def test_read_report_guidance_only_section(campaign: Campaign) -> None:
    paragraphs = _outline(存在问题=["包括项目建设过程中存在的问题、困难及原因分析等。"])
    result = _report(_document(paragraphs), campaign)
    finding = _only_finding(result)

    assert finding.code == "unfilled-section"
    assert finding.params["section"] == "三、存在问题"
    assert not result.passed


def test_read_report_guidance_only_message(campaign: Campaign) -> None:
    paragraphs = _outline(项目基本情况=["包括但不限于项目牵头单位基本情况、项目总投入、主要建设内容等。"])
    message = _only_finding(_report(_document(paragraphs), campaign)).message()

    assert "一、项目基本情况" in message
    assert "包括但不限于" in message


def test_read_report_guidance_then_real_text(campaign: Campaign) -> None:
    paragraphs = _outline(存在问题=["包括项目建设过程中存在的问题：", "部分设备到货延迟，进度滞后约一个月。"])
    result = _report(_document(paragraphs), campaign)

    assert result.findings == []


def test_read_report_several_guidance_lines(campaign: Campaign) -> None:
    paragraphs = _outline(工作计划=["包括已开展的整改工作；", "包括但不限于下一步工作安排。"])
    finding = _only_finding(_report(_document(paragraphs), campaign))

    assert finding.code == "unfilled-section"
    assert finding.params["section"] == "四、工作计划"


# --- not a report -----------------------------------------------------------


def test_read_report_unrelated_document(campaign: Campaign) -> None:
    data = _document(["关于召开工业互联网工作会议的通知", "一、会议时间", "2020年9月25日上午9时。",
                      "二、会议地点", "省工业和信息化厅三楼会议室。"])

    assert _read(data, campaign) is None


def test_read_report_one_heading_only(campaign: Campaign) -> None:
    data = _document(["工作总结", "一、项目基本情况", "略。", "二、下一步打算", "略。"])

    assert _read(data, campaign) is None


def test_read_report_heading_words_in_long_sentence(campaign: Campaign) -> None:
    """Headings quoted inside a long paragraph are not headings."""
    data = _document(["请按项目基本情况、项目建设情况、存在问题和工作计划四个部分撰写报告，于9月21日前报送。",
                      "项目建设情况总体良好，各地市按要求推进并及时汇总材料上报省厅。"])

    assert _read(data, campaign) is None


def test_read_report_empty_document(campaign: Campaign) -> None:
    assert _read(_document([]), campaign) is None


# --- unit and title ---------------------------------------------------------


def test_read_report_unit_extracted(campaign: Campaign) -> None:
    result = _report(form2_report(COMPANY), campaign)

    assert result.unit == COMPANY


def test_read_report_title(campaign: Campaign) -> None:
    result = _report(form2_report(COMPANY, project="设备上云"), campaign)

    assert result.title == f"{COMPANY}设备上云标杆示范项目建设情况报告"


@pytest.mark.parametrize("line", [
    "（项目牵头单位：中山市宏达灯饰有限公司）",
    "(项目牵头单位:中山市宏达灯饰有限公司)",
    "项目牵头单位：中山市宏达灯饰有限公司",
    "项目牵头单位： 中山市宏达灯饰有限公司",
])
def test_read_report_unit_line_forms(line: str, campaign: Campaign) -> None:
    paragraphs = _outline()
    paragraphs[1] = line
    result = _report(_document(paragraphs), campaign)

    assert result.unit == "中山市宏达灯饰有限公司"


def test_read_report_unit_falls_back_to_title(campaign: Campaign) -> None:
    paragraphs = _outline()
    del paragraphs[1]
    result = _report(_document(paragraphs), campaign)

    assert result.unit == f"{COMPANY}工业互联网标杆示范项目建设情况报告"


def test_read_report_unit_line_not_in_sections(campaign: Campaign) -> None:
    result = _report(form2_report(COMPANY), campaign)

    assert all("项目牵头单位：" not in text for text in result.sections.values())

"""Form 2 reports as Word and WPS save them: broken links, text boxes, tables, numbering."""

from __future__ import annotations

import io
import zipfile
from datetime import datetime, timezone

import docx
import pytest

from parsers.document import read_docx
from parsers.mime import parse_message
from parsers.problems import FileProblem
from rules.campaign import load_campaign
from rules.evaluate import evaluate
from rules.reports import ReportResult, read_report
from tests import builders
from tests.support import REPO, rewrite_part

CAMPAIGN = load_campaign(REPO / "rules" / "notice_2020_858.toml")
SECTIONS = ["项目基本情况", "项目建设情况", "存在问题", "工作计划"]
W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def _rewrite(data: bytes, part: str, old: bytes, new: bytes) -> bytes:
    assert old in zipfile.ZipFile(io.BytesIO(data)).read(part)
    return rewrite_part(data, part, lambda content: content.replace(old, new, 1))


def _report(data: bytes) -> ReportResult:
    result = read_report(read_docx(data), CAMPAIGN, file="报告.docx")
    assert result is not None
    return result


def test_broken_internal_link_still_read() -> None:
    """WPS writes bookmark links as internal relationships to a part that does not exist."""
    data = builders.form2_report("广东甲公司")
    data = _rewrite(data, "word/_rels/document.xml.rels", b"</Relationships>",
                    b'<Relationship Id="rId99" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
                    b'relationships/hyperlink" Target="#_Toc1"/></Relationships>')
    data = _rewrite(data, "word/document.xml", b"<w:body>",
                    '<w:body><w:p><w:hyperlink r:id="rId99"><w:r><w:t>目录</w:t></w:r></w:hyperlink></w:p>'.encode())
    with pytest.raises(KeyError):
        docx.Document(io.BytesIO(data))

    result = _report(data)

    assert result.findings == []
    assert result.unit == "广东甲公司"


def test_sections_inside_table_cells() -> None:
    document = docx.Document()
    document.add_paragraph("广东乙公司标杆示范项目建设情况报告")
    table = document.add_table(rows=4, cols=2)
    for row, heading in zip(table.rows, ["一、项目基本情况", "二、项目建设情况", "三、存在问题", "四、工作计划"]):
        row.cells[0].text = heading
        row.cells[1].text = f"{heading[2:]}的具体内容。"
    buffer = io.BytesIO()
    document.save(buffer)

    result = _report(buffer.getvalue())

    assert result.findings == []
    assert result.sections["三、存在问题"] == "存在问题的具体内容。"


def test_sections_inside_text_box() -> None:
    data = builders.form2_report("广东丙公司", omit=("四、工作计划",))
    text_box = (
        f'<w:p><w:r><w:pict><v:shape xmlns:v="urn:schemas-microsoft-com:vml"><v:textbox>'
        f'<w:txbxContent><w:p><w:r><w:t>四、工作计划</w:t></w:r></w:p>'
        f'<w:p><w:r><w:t>年底前完成验收。</w:t></w:r></w:p></w:txbxContent>'
        f'</v:textbox></v:shape></w:pict></w:r></w:p>'
    ).encode()
    data = _rewrite(data, "word/document.xml", b"<w:sectPr", text_box + b"<w:sectPr")

    result = _report(data)

    assert result.findings == []
    assert result.sections["四、工作计划"] == "年底前完成验收。"


def test_headings_with_automatic_numbering() -> None:
    """Word's list numbering keeps "一、" out of the text: the headings read 项目基本情况 ..."""
    data = builders.form2_report("广东丁公司", numbered_prefix=False, heading_style="Heading 1")

    paragraphs = read_docx(data)
    result = _report(data)

    assert [p.text for p in paragraphs if p.style == "Heading 1"] == SECTIONS
    assert result.findings == []


def test_guidance_only_section_unfilled() -> None:
    document = docx.Document()
    for heading in ["一、项目基本情况", "二、项目建设情况", "三、存在问题", "四、工作计划"]:
        document.add_paragraph(heading)
        document.add_paragraph("实际内容。" if heading != "三、存在问题" else
                               "包括项目建设过程中存在的问题、项目中期检查或绩效评价、资金审计等各类检查中的发现问题。")
    buffer = io.BytesIO()
    document.save(buffer)

    result = _report(buffer.getvalue())

    assert [(f.code, f.params["section"]) for f in result.findings] == [("unfilled-section", "三、存在问题")]
    assert "提纲的说明文字" in result.findings[0].message()


def test_docx_without_document_part_unreadable() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/styles.xml", f'<w:styles xmlns:w="{W}"/>')

    with pytest.raises(FileProblem) as caught:
        read_docx(buffer.getvalue())

    assert caught.value.code == "unreadable-file"


def test_entity_expansion_off_in_document() -> None:
    laughs = ('<!DOCTYPE lolz [<!ENTITY lol "lol">'
              + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 2 else "") + ";") * 10}">' for i in range(2, 10))
              + "]>")
    data = builders.form2_report("广东甲公司")
    source = zipfile.ZipFile(io.BytesIO(data))
    head, body = source.read("word/document.xml").decode().split("?>", 1)
    data = _rewrite(data, "word/document.xml", source.read("word/document.xml"),
                    (head + "?>" + laughs + body.replace("一、项目基本情况", "&lol9;", 1)).encode())

    try:
        paragraphs = read_docx(data)
    except FileProblem as problem:
        assert problem.code == "unreadable-file"
        return
    assert not any("lollol" in p.text for p in paragraphs)


def _document(paragraphs: list[str]) -> bytes:
    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def test_guidance_in_brackets_is_unfilled() -> None:
    data = _document(["一、项目基本情况", "内容。", "二、项目建设情况", "内容。", "三、存在问题",
                      "（包括项目建设过程中存在的问题、项目中期检查或绩效评价中的发现问题。）", "四、工作计划", "内容。"])

    result = _report(data)

    assert [(f.code, f.params["section"]) for f in result.findings] == [("unfilled-section", "三、存在问题")]
    assert result.findings[0].params["guidance"] == "包括项目建设过程中存在的问题"


def test_heading_carrying_its_guidance() -> None:
    data = _document(["一、项目基本情况（包括但不限于项目承担单位基本情况）", "内容一。",
                      "二、项目建设情况（包括但不限于项目当前建设进展）", "内容二。",
                      "三、存在问题（包括项目建设过程中存在的问题）", "内容三。",
                      "四、工作计划（包括已开展的整改工作）", "内容四。"])

    result = _report(data)

    assert result.findings == []
    assert result.sections["三、存在问题"] == "内容三。"


def test_heading_variants_accepted() -> None:
    data = _document(["一、项目基本情况", "内容一。", "二、项目建设情况", "内容二。",
                      "三、项目存在的问题", "内容三。", "四、下一步工作计划", "内容四。"])

    result = _report(data)

    assert result.findings == []
    assert result.sections["四、工作计划"] == "内容四。"


def test_document_without_outline_not_a_report() -> None:
    raw = builders.mail(sender="江门市工业和信息化局 <gxj@jiangmen.example.org>", subject="报告",
                        message_id="<note@jiangmen.example.org>",
                        attachments=[("通知.docx", _document(["关于报送材料的说明", "请按时报送。"]), builders.DOCX_TYPE)])

    evaluation = evaluate(parse_message(raw), CAMPAIGN, received=datetime(2020, 9, 15, tzinfo=timezone.utc),
                          own_addresses=frozenset())

    findings = evaluation.returned()[0].findings
    assert [f.code for f in findings] == ["not-a-report"]
    assert "附件2提纲的四个部分" in findings[0].message()

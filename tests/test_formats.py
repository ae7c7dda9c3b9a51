"""7z archives and large-attachment download links, from the parsers up to the decision."""

from __future__ import annotations

import io
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import py7zr
import pytest

from parsers.archive import ArchiveLimits, expand_7z
from parsers.convert import libreoffice_binary
from parsers.links import find_download_links
from parsers.mime import parse_message
from parsers.problems import FileProblem
from rules.campaign import load_campaign
from rules.evaluate import evaluate
from tests import builders
from tests.support import REPO

CAMPAIGN = load_campaign(REPO / "rules" / "notice_2020_858.toml")
RECEIVED = datetime(2020, 9, 15, 10, tzinfo=timezone(timedelta(hours=8)))


def seven_zip(members: dict[str, bytes], password: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with py7zr.SevenZipFile(buffer, "w", password=password) as archive:
        for name, data in members.items():
            archive.writestr(data, name)
    return buffer.getvalue()


def test_expand_7z_reads_members() -> None:
    data = seven_zip({"报告/附件2-甲.docx": builders.form2_report("广东甲公司"), "说明.txt": "你好".encode()})

    expansion = expand_7z(data)

    assert sorted(m.name for m in expansion.members) == ["报告/附件2-甲.docx", "说明.txt"]
    assert expansion.problems == []


def test_expand_7z_member_over_limit() -> None:
    data = seven_zip({"big.docx": b"\0" * 2_000_000})

    expansion = expand_7z(data, ArchiveLimits(max_member_bytes=1_000_000, max_ratio=1e9))

    assert expansion.members == []
    assert [p.code for _, p in expansion.problems] == ["member-too-large"]


def test_expand_7z_encrypted() -> None:
    with pytest.raises(FileProblem) as caught:
        expand_7z(seven_zip({"a.docx": b"abc"}, password="123456"))

    assert caught.value.code == "encrypted-archive"


def test_expand_7z_broken() -> None:
    with pytest.raises(FileProblem) as caught:
        expand_7z(b"7z\xbc\xaf\x27\x1c" + b"\0" * 40)

    assert caught.value.code == "unreadable-archive"


def test_evaluate_7z_of_reports_counts_each_report() -> None:
    archive = seven_zip({"附件2-甲.docx": builders.form2_report("广东甲公司"),
                         "附件2-乙.docx": builders.form2_report("广东乙公司", omit=("三、存在问题",))})
    raw = builders.mail(sender="江门市工业和信息化局 <gxj@jiangmen.example.org>", subject="报告",
                        message_id="<7z@jiangmen.example.org>",
                        attachments=[("报告.7z", archive, "application/x-7z-compressed")])

    evaluation = evaluate(parse_message(raw), CAMPAIGN, received=RECEIVED, own_addresses=frozenset())

    assert evaluation.decision == "partial"
    assert evaluation.reports("form2") == 1
    assert [f.name for f in evaluation.returned()] == ["报告.7z/附件2-乙.docx"]


QQ_BODY = """您好，附件为我司汇总表，请查收。

从QQ邮箱发来的超大附件

汇总表（中拓数字）.xlsx (1.2M, 2020年10月16日 17:27 到期)进入下载页面：https://mail.qq.example.com/cgi-bin/ftnExs_download?k=07ca&t=exs_ftn_download&code=7c3a
"""


def test_find_download_links_qq_mail() -> None:
    link = find_download_links(QQ_BODY, "")

    assert link is not None
    assert "ftnExs_download" in link.url
    assert link.names == ("汇总表（中拓数字）.xlsx",)


def test_find_download_links_banner_only() -> None:
    link = find_download_links("", '<b>来自网易邮箱的超大附件</b><a href="https://dl.example.net/f?id=1">报告.zip</a>')

    assert link is not None
    assert link.url == "https://dl.example.net/f?id=1"


def test_find_download_links_ordinary_link_ignored() -> None:
    assert find_download_links("详见 https://www.gdei.example.gov.cn/notice", "") is None


def test_evaluate_download_link_asks_for_attachment() -> None:
    raw = builders.mail(sender="邓锦荣 <2847106352@qq.example.com>", subject="汇总表",
                        message_id="<qq@qq.example.com>", body=QQ_BODY)

    evaluation = evaluate(parse_message(raw), CAMPAIGN, received=RECEIVED, own_addresses=frozenset())

    assert evaluation.decision == "rejected"
    assert [f.code for f in evaluation.findings] == ["download-link"]
    message = evaluation.findings[0].message()
    assert "汇总表（中拓数字）.xlsx" in message
    assert "作为附件" in message


def _doc_mail(doc: bytes) -> bytes:
    return builders.mail(sender="江门市工业和信息化局 <gxj@jiangmen.example.org>", subject="报告",
                         message_id="<doc@jiangmen.example.org>",
                         attachments=[("附件2-甲.doc", doc, "application/msword")])


@pytest.fixture(scope="module")
def word97_report(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A Word 97-2003 report, made by LibreOffice from a .docx fixture."""
    if libreoffice_binary() is None:
        pytest.skip("LibreOffice is not installed (apt-get install libreoffice-writer-nogui)")
    folder = tmp_path_factory.mktemp("doc")
    (folder / "report.docx").write_bytes(builders.form2_report("广东甲公司"))
    subprocess.run([libreoffice_binary() or "soffice", f"-env:UserInstallation=file://{folder}/profile", "--headless",
                    "--convert-to", "doc", "--outdir", str(folder), str(folder / "report.docx")],
                   check=True, capture_output=True, timeout=120)
    return (folder / "report.doc").read_bytes()


def test_evaluate_doc_report_converted(word97_report: bytes) -> None:
    evaluation = evaluate(parse_message(_doc_mail(word97_report)), CAMPAIGN, received=RECEIVED,
                          own_addresses=frozenset())

    assert evaluation.decision == "accepted"
    assert evaluation.reports("form2") == 1


def test_evaluate_doc_without_libreoffice_returned(word97_report: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")

    evaluation = evaluate(parse_message(_doc_mail(word97_report)), CAMPAIGN, received=RECEIVED,
                          own_addresses=frozenset())

    assert evaluation.decision == "rejected"
    finding = evaluation.returned()[0].findings[0]
    assert finding.code == "conversion-unavailable"
    assert "另存为" in finding.message()
    assert ".docx" in finding.message()

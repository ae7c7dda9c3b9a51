"""The archive-process-send cycle on a Maildir, against SQLite and PostgreSQL."""

from __future__ import annotations

import email
import email.policy
import mailbox
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import create_engine, func, select, text

from daemon.config import load_settings
from daemon.digest import render_digest
from daemon.export import export_workbook
from daemon.pipeline import process_message
from rules.evaluate import evaluate as evaluate_message
from daemon.service import Service
from daemon.errors import StoreError
from daemon.store import Database, Decision, OutboxItem, RowRecord, StoredMessage, Submission
from tests import builders
from tests.support import store_url, write_config  # noqa: F401  (fixture)

PROVIDER = "周文涛 <zhouwt@xinghe-sl.example.com>"


def _maildir(folder: Path) -> Path:
    box = mailbox.Maildir(folder / "maildir", create=True)
    return Path(box._path)


def _deliver(box: Path, raw: bytes) -> str:
    """Write `raw` byte for byte into new/ (mailbox.Maildir.add would rewrite line ends)."""
    key = f"{1600000000 + len(list((box / 'new').iterdir()))}.M1P1.test"
    (box / "new" / key).write_bytes(raw)
    return key


def _service(tmp_path: Path, store_url: str) -> Service:
    config = write_config(tmp_path, mailbox=f'kind = "maildir"\npath = "maildir"\naddress = "gyhlw@gdei.gov.cn"',
                          store_url=store_url)
    return Service(load_settings(config))


def _form1_mail(message_id: str, rows: list[list[object]], *, received: str = "Thu, 10 Sep 2020 10:00:00 +0800",
                sender: str = PROVIDER, name: str = "附件1-汇总表.xlsx") -> bytes:
    return builders.mail(sender=sender, subject="上云上平台实施项目情况汇总表", message_id=message_id,
                         received=received, date=received,
                         attachments=[(name, builders.form1_workbook(rows), builders.XLSX_TYPE)])


def test_cycle_accepts_form_and_writes_reply(tmp_path: Path, store_url: str) -> None:
    box = _maildir(tmp_path)
    _deliver(box, _form1_mail("<a1@xinghe-sl.example.com>", [builders.form1_row(2), builders.form1_row(3)]))
    service = _service(tmp_path, store_url)

    report = service.cycle()

    assert report.archived == 1
    assert [p.decision for p in report.processed] == ["accepted"]
    assert report.processed[0].counts["form1"] == 2
    assert report.sent == 1
    replies = list((tmp_path / "outbox").glob("*.eml"))
    assert len(replies) == 1
    reply = email.message_from_bytes(replies[0].read_bytes(), policy=email.policy.default)
    assert reply["X-Intake-Decision"] == "accepted"
    assert reply["In-Reply-To"] == "<a1@xinghe-sl.example.com>"
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["To"] == "zhouwt@xinghe-sl.example.com"
    assert "登记 2 行数据" in reply.get_body(("plain",)).get_content()
    service.close()


def test_cycle_second_run_processes_nothing(tmp_path: Path, store_url: str) -> None:
    box = _maildir(tmp_path)
    _deliver(box, _form1_mail("<a2@xinghe-sl.example.com>", [builders.form1_row(2)]))
    service = _service(tmp_path, store_url)
    service.cycle()

    again = service.cycle()

    assert again.archived == 0
    assert again.processed == []
    assert again.sent == 0
    service.close()


def test_cycle_same_message_twice_processed_once(tmp_path: Path, store_url: str) -> None:
    box = _maildir(tmp_path)
    raw = _form1_mail("<dup@xinghe-sl.example.com>", [builders.form1_row(2)])
    _deliver(box, raw)
    _deliver(box, raw)
    service = _service(tmp_path, store_url)

    report = service.cycle()

    assert report.archived == 2
    assert len(report.processed) == 1
    with service.database.session() as session:
        statuses = sorted(session.execute(select(StoredMessage.status)).scalars())
    assert statuses == ["duplicate", "processed"]
    service.close()


def test_cycle_keeps_raw_when_processing_fails(tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    box = _maildir(tmp_path)
    raw = _form1_mail("<boom@xinghe-sl.example.com>", [builders.form1_row(2)])
    _deliver(box, raw)
    service = _service(tmp_path, store_url)

    def explode(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("parser crashed")

    monkeypatch.setattr("daemon.pipeline.evaluate", explode)
    report = service.cycle()

    assert report.processed == []
    with service.database.session() as session:
        stored = session.execute(select(StoredMessage)).scalar_one()
        assert stored.status == "failed"
        assert "parser crashed" in (stored.error or "")
        assert stored.raw == raw
    assert "parser crashed" in render_digest(service)
    service.close()


def test_reparse_replaces_current_version_without_reply(tmp_path: Path, store_url: str) -> None:
    box = _maildir(tmp_path)
    _deliver(box, _form1_mail("<re@xinghe-sl.example.com>", [builders.form1_row(2)]))
    service = _service(tmp_path, store_url)
    service.cycle()

    with service.database.session() as session:
        pk = session.execute(select(StoredMessage.id)).scalar_one()
        result = process_message(session, pk, service.settings, service.campaign, service.renderer, reply=False)

    assert result.decision == "accepted"
    with service.database.session() as session:
        versions = session.execute(select(Submission.version, Submission.current).order_by(Submission.version)).all()
        outbox = session.execute(select(func.count(OutboxItem.id))).scalar_one()
        decisions = session.execute(select(func.count(Decision.id))).scalar_one()
    assert versions == [(1, False), (2, True)]
    assert outbox == 1
    assert decisions == 2
    service.close()


def test_export_keeps_only_newest_version_of_sender(tmp_path: Path, store_url: str) -> None:
    box = _maildir(tmp_path)
    first = [builders.form1_row(2), builders.form1_row(3, 合同金额=150, 服务券金额=15)]
    second = [builders.form1_row(2), builders.form1_row(3, 合同金额=15, 服务券金额=15), builders.form1_row(4)]
    _deliver(box, _form1_mail("<v1@xinghe-sl.example.com>", first, received="Mon, 14 Sep 2020 10:00:00 +0800"))
    _deliver(box, _form1_mail("<v2@xinghe-sl.example.com>", second, received="Wed, 16 Sep 2020 10:00:00 +0800"))
    other = "罗志强 <luozq@kaiyuan-yun.example.net>"
    _deliver(box, _form1_mail("<o1@kaiyuan-yun.example.net>", [builders.form1_row(5)], sender=other))
    service = _service(tmp_path, store_url)
    service.cycle()

    written = export_workbook(service, tmp_path / "export.xlsx")

    assert written["form1"] == 4
    sheet = load_workbook(tmp_path / "export.xlsx")["附件1"]
    header = [c.value for c in sheet[1]]
    assert "Message-ID" in header
    ids = [row[header.index("Message-ID")] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert ids.count("<v2@xinghe-sl.example.com>") == 3
    assert "<v1@xinghe-sl.example.com>" not in ids
    amounts = [row[header.index("合同金额")] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert 150 not in amounts
    with service.database.session() as session:
        assert session.execute(select(func.count(RowRecord.id))).scalar_one() == 6
    service.close()


def test_export_keeps_formula_text_as_text(tmp_path: Path, store_url: str) -> None:
    box = _maildir(tmp_path)
    _deliver(box, _form1_mail("<f1@xinghe-sl.example.com>", [builders.form1_row(2)]))
    service = _service(tmp_path, store_url)
    service.cycle()
    # A text cell that starts with "=" arrives as text; plant one in the stored row.
    with service.database.session() as session:
        row = session.execute(select(RowRecord)).scalar_one()
        row.values = {**row.values, "应用服务目录": "=HYPERLINK(\"x\")"}

    export_workbook(service, tmp_path / "export.xlsx")

    sheet = load_workbook(tmp_path / "export.xlsx")["附件1"]
    header = [c.value for c in sheet[1]]
    cell = sheet.cell(row=2, column=header.index("应用服务目录") + 1)
    assert cell.data_type == "s"
    assert cell.value == "=HYPERLINK(\"x\")"
    service.close()


def test_digest_lists_senders_late_missing_and_returned(tmp_path: Path, store_url: str) -> None:
    box = _maildir(tmp_path)
    _deliver(box, _form1_mail("<late@xinghe-sl.example.com>", [builders.form1_row(2)],
                              received="Sat, 19 Sep 2020 10:00:00 +0800"))
    bad = [builders.form1_row(2, 申领年份=2017)]
    _deliver(box, _form1_mail("<bad@ruituo.example.com>", bad, sender="许嘉欣 <xujx@ruituo.example.com>"))
    city = builders.mail(
        sender="佛山市工业和信息化局 <gxj@foshan.example.org>", subject="佛山市报送检查表",
        message_id="<city@foshan.example.org>", received="Thu, 17 Sep 2020 15:20:14 +0800",
        attachments=[("附件3（佛山市）.xlsx", builders.form3_workbook([builders.form3_row(2)]), builders.XLSX_TYPE)])
    _deliver(box, city)
    service = _service(tmp_path, store_url)
    service.cycle()

    text = render_digest(service)

    assert "周文涛" in text
    assert "（逾期）" in text
    assert "佛山市工业和信息化局 <gxj@foshan.example.org>" in text
    assert "尚未报送 20 家" in text
    assert "广州市工业和信息化局" in text
    assert "许嘉欣" in text
    assert "“申领年份”填写为“2017”" in text
    service.close()


def test_digest_drops_return_corrected_later(tmp_path: Path, store_url: str) -> None:
    box = _maildir(tmp_path)
    _deliver(box, _form1_mail("<wrong@xinghe-sl.example.com>", [builders.form1_row(2, 申领年份=2017)],
                              received="Mon, 14 Sep 2020 10:00:00 +0800"))
    _deliver(box, _form1_mail("<fixed@xinghe-sl.example.com>", [builders.form1_row(2)],
                              received="Tue, 15 Sep 2020 10:00:00 +0800"))
    service = _service(tmp_path, store_url)
    service.cycle()

    text = render_digest(service)

    assert "已退回的材料（0）" in text
    assert "周文涛" in text
    service.close()


def test_oversized_message_rejected_and_kept(tmp_path: Path, store_url: str) -> None:
    box = _maildir(tmp_path)
    raw = _form1_mail("<big@xinghe-sl.example.com>", [builders.form1_row(2)])
    _deliver(box, raw)
    config = write_config(tmp_path, mailbox='kind = "maildir"\npath = "maildir"\naddress = "gyhlw@gdei.gov.cn"',
                          store_url=store_url, extra="[limits]\nmessage_bytes = 2048")
    service = Service(load_settings(config))

    report = service.cycle()

    assert [p.decision for p in report.processed] == ["rejected"]
    reply = email.message_from_bytes(next((tmp_path / "outbox").glob("*.eml")).read_bytes(), policy=email.policy.default)
    assert "超过 2 KB 的上限" in reply.get_body(("plain",)).get_content()
    with service.database.session() as session:
        assert session.execute(select(StoredMessage.raw)).scalar_one() == raw
    service.close()


def test_thanks_for_our_reply_gets_no_reply(tmp_path: Path, store_url: str) -> None:
    box = _maildir(tmp_path)
    _deliver(box, _form1_mail("<sent@xinghe-sl.example.com>", [builders.form1_row(2)]))
    service = _service(tmp_path, store_url)
    service.cycle()
    with service.database.session() as session:
        our_id = session.execute(select(OutboxItem.message_id)).scalar_one()
    _deliver(box, builders.mail(sender=PROVIDER, subject="回复：已受理", message_id="<thanks@xinghe-sl.example.com>",
                                body="收到，谢谢！", headers={"In-Reply-To": our_id, "References": our_id}))
    _deliver(box, builders.mail(sender=PROVIDER, subject="补充", message_id="<other@xinghe-sl.example.com>",
                                body="请查收"))

    report = service.cycle()

    decisions = {p.message_id: p.decision for p in report.processed}
    assert decisions["<thanks@xinghe-sl.example.com>"] == "ignored"
    assert decisions["<other@xinghe-sl.example.com>"] == "rejected"
    assert report.sent == 1
    service.close()


def test_failed_message_retried_until_limit(tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    box = _maildir(tmp_path)
    _deliver(box, _form1_mail("<flaky@xinghe-sl.example.com>", [builders.form1_row(2)]))
    _deliver(box, _form1_mail("<broken@kaiyuan-yun.example.net>", [builders.form1_row(2)],
                              sender="罗志强 <luozq@kaiyuan-yun.example.net>"))
    service = _service(tmp_path, store_url)
    real_evaluate = evaluate_message
    calls = {"flaky": 0}

    def sometimes(message, *args, **kwargs):  # type: ignore[no-untyped-def]
        if message.message_id == "<broken@kaiyuan-yun.example.net>":
            raise OSError("disk full")
        calls["flaky"] += 1
        if calls["flaky"] == 1:
            raise OSError("database busy")
        return real_evaluate(message, *args, **kwargs)

    monkeypatch.setattr("daemon.pipeline.evaluate", sometimes)
    reports = [service.cycle() for _ in range(4)]

    assert reports[0].failed == ["<flaky@xinghe-sl.example.com>", "<broken@kaiyuan-yun.example.net>"]
    assert [p.message_id for p in reports[1].processed] == ["<flaky@xinghe-sl.example.com>"]
    assert reports[1].failed == ["<broken@kaiyuan-yun.example.net>"]
    assert reports[2].failed == ["<broken@kaiyuan-yun.example.net>"]
    assert reports[3].failed == []
    with service.database.session() as session:
        broken = session.execute(select(StoredMessage).where(
            StoredMessage.message_id == "<broken@kaiyuan-yun.example.net>")).scalar_one()
    assert broken.status == "failed"
    assert broken.attempts == 3
    service.close()


def test_store_from_older_version_named(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE messages (id INTEGER PRIMARY KEY, mailbox VARCHAR(500))"))
    engine.dispose()

    with pytest.raises(StoreError) as caught:
        Database(url).create_schema()

    assert "表 messages 缺少列" in str(caught.value)
    assert "attempts" in str(caught.value)

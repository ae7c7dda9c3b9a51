"""`intake run --once` against a real Dovecot and a real SMTP server on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from daemon.cli import cli
from daemon.config import load_settings
from daemon.service import Service
from daemon.store import OutboxItem
from tests import builders
from tests.mailstack import ImapAccount, SmtpSink
from tests.support import PASSWORD_ENV, imap_config

SHANGHAI = timezone(timedelta(hours=8))


def run_once(config: Path, account: ImapAccount, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(PASSWORD_ENV, account.password)
    result = CliRunner().invoke(cli, ["--config", str(config), "run", "--once"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def form1_mail(message_id: str, sender: str = "周文涛 <zhouwt@xinghe-sl.example.com>") -> bytes:
    workbook = builders.form1_workbook([builders.form1_row(2), builders.form1_row(3)])
    return builders.mail(sender=sender, subject="上云上平台实施项目情况汇总表", message_id=message_id,
                         attachments=[("附件1.xlsx", workbook, builders.XLSX_TYPE)])


def parse(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def test_run_once_replies_by_smtp(tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    imap_account.append(form1_mail("<ok@xinghe-sl.example.com>"), internaldate=datetime(2020, 9, 10, 10, tzinfo=SHANGHAI))
    imap_account.append(builders.mail(sender="罗志强 <luozq@kaiyuan-yun.example.net>", subject="汇总表",
                                      message_id="<none@kaiyuan-yun.example.net>", body="请查收"),
                        internaldate=datetime(2020, 9, 11, 10, tzinfo=SHANGHAI))
    imap_account.append(builders.auto_reply(sender="周美玲 <zhouml@yuntu.example.com>",
                                            message_id="<auto@yuntu.example.com>"))
    config = imap_config(tmp_path, imap_account, smtp_sink)

    output = run_once(config, imap_account, monkeypatch)

    assert "本轮收取新邮件 3 封" in output
    received = smtp_sink.wait_for(2)
    assert len(received) == 2
    by_recipient = {tuple(m.rcpt_tos): parse(m.data) for m in received}
    accepted = by_recipient[("zhouwt@xinghe-sl.example.com",)]
    assert accepted["X-Intake-Decision"] == "accepted"
    assert accepted["In-Reply-To"] == "<ok@xinghe-sl.example.com>"
    assert accepted["References"] == "<ok@xinghe-sl.example.com>"
    assert accepted["Auto-Submitted"] == "auto-replied"
    assert accepted["X-Intake-Late"] is None
    rejected = by_recipient[("luozq@kaiyuan-yun.example.net",)]
    assert rejected["X-Intake-Decision"] == "rejected"
    assert "附件" in rejected.get_body(("plain",)).get_content()
    assert rejected.get_body(("html",)) is not None


def test_run_once_leaves_unread_marks(tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    uid = imap_account.append(form1_mail("<peek@xinghe-sl.example.com>"))
    config = imap_config(tmp_path, imap_account, smtp_sink)

    run_once(config, imap_account, monkeypatch)

    assert b"\\Seen" not in imap_account.flags()[uid]


def test_run_once_twice_fetches_only_new(tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    imap_account.append(form1_mail("<first@xinghe-sl.example.com>"))
    config = imap_config(tmp_path, imap_account, smtp_sink)
    run_once(config, imap_account, monkeypatch)
    imap_account.append(form1_mail("<second@kaiyuan-yun.example.net>", sender="罗志强 <luozq@kaiyuan-yun.example.net>"))

    output = run_once(config, imap_account, monkeypatch)

    assert "本轮收取新邮件 1 封" in output
    assert "<second@kaiyuan-yun.example.net>" in output
    assert len(smtp_sink.wait_for(2)) == 2


def test_uidvalidity_change_reprocesses_nothing_old(tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    imap_account.append(form1_mail("<kept@xinghe-sl.example.com>"))
    config = imap_config(tmp_path, imap_account, smtp_sink)
    run_once(config, imap_account, monkeypatch)
    before = imap_account.uidvalidity()
    imap_account.reset_uidvalidity()
    assert imap_account.uidvalidity() != before
    imap_account.append(form1_mail("<after@kaiyuan-yun.example.net>", sender="罗志强 <luozq@kaiyuan-yun.example.net>"))

    output = run_once(config, imap_account, monkeypatch)

    assert "处理 1 封" in output
    assert "<after@kaiyuan-yun.example.net>" in output
    assert len(smtp_sink.wait_for(2)) == 2


def test_same_bytes_appended_twice_get_one_reply(tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    raw = form1_mail("<twice@xinghe-sl.example.com>")
    imap_account.append(raw)
    imap_account.append(raw)
    config = imap_config(tmp_path, imap_account, smtp_sink)

    output = run_once(config, imap_account, monkeypatch)

    assert "收取新邮件 2 封，处理 1 封" in output
    assert len(smtp_sink.wait_for(1)) == 1


def test_smtp_refusal_is_retried_next_cycle(tmp_path: Path, imap_account: ImapAccount,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    sink = SmtpSink(fail_next=1)
    sink.start()
    try:
        imap_account.append(form1_mail("<retry@xinghe-sl.example.com>"))
        config = imap_config(tmp_path, imap_account, sink)

        first = run_once(config, imap_account, monkeypatch)
        assert "发送失败 1 封" in first
        assert sink.messages == []
        second = run_once(config, imap_account, monkeypatch)

        assert "发送回复 1 封" in second
        assert len(sink.wait_for(1)) == 1
        service = Service(load_settings(config))
        with service.database.session() as session:
            item = session.execute(select(OutboxItem)).scalar_one()
        service.close()
        assert item.status == "sent"
        assert item.attempts == 2
    finally:
        sink.stop()


def test_wrong_password_gives_chinese_error(tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    config = imap_config(tmp_path, imap_account, smtp_sink)
    monkeypatch.setenv(PASSWORD_ENV, "not-the-password")

    result = CliRunner().invoke(cli, ["--config", str(config), "run", "--once"], standalone_mode=False)

    assert result.exit_code != 0
    assert "IMAP 登录失败" in str(result.exception)
    assert imap_account.username in str(result.exception)


def test_password_never_logged(tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink,
                               monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    imap_account.append(form1_mail("<log@xinghe-sl.example.com>"))
    config = imap_config(tmp_path, imap_account, smtp_sink)
    caplog.set_level(logging.DEBUG)

    run_once(config, imap_account, monkeypatch)

    assert caplog.records
    assert imap_account.password not in caplog.text


def test_fetch_in_small_batches_gets_all(tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    for index in range(5):
        imap_account.append(form1_mail(f"<batch{index}@xinghe-sl.example.com>",
                                       sender=f"服务商{index} <p{index}@xinghe-sl.example.com>"))
    config = imap_config(tmp_path, imap_account, smtp_sink)
    config.write_text(config.read_text(encoding="utf-8").replace("[mailbox]\n", "[mailbox]\nbatch_size = 2\n", 1),
                      encoding="utf-8")

    output = run_once(config, imap_account, monkeypatch)

    assert "本轮收取新邮件 5 封，处理 5 封" in output
    assert len(smtp_sink.wait_for(5)) == 5

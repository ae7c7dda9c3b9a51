"""Tests of the test mail stack itself, against the real Dovecot and aiosmtpd servers."""

from __future__ import annotations

import secrets
import smtplib
import socket
import time
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from pathlib import Path

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from tests import mailstack
from tests.mailstack import Dovecot, ImapAccount, SmtpSink


def _raw_message(subject: str) -> bytes:
    message = EmailMessage()
    message["From"] = "sender@example.org"
    message["To"] = "intake@example.org"
    message["Subject"] = subject
    message["Message-ID"] = f"<{subject.replace(' ', '-')}@example.org>"
    message.set_content(f"Body of {subject}.\n")
    return bytes(message)


def _send(sink: SmtpSink, raw: bytes, recipients: list[str]) -> None:
    with smtplib.SMTP(sink.host, sink.port, timeout=10) as client:
        client.sendmail("intake@example.org", recipients, raw)


# Dovecot and IMAP accounts.


def test_append_then_fetch_with_imapclient(imap_account: ImapAccount) -> None:
    raw = _raw_message("first submission")
    received_at = datetime(2024, 3, 5, 9, 30, 15, tzinfo=timezone(timedelta(hours=8)))

    uid = imap_account.append(raw, internaldate=received_at)

    with IMAPClient(imap_account.host, port=imap_account.port, ssl=False, timeout=10) as client:
        client.normalise_times = False
        client.login(imap_account.username, imap_account.password)
        client.select_folder("INBOX", readonly=True)
        fetched = client.fetch([uid], ["BODY.PEEK[]", "INTERNALDATE", "FLAGS"])

    assert list(fetched) == [uid]
    assert fetched[uid][b"BODY[]"] == raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    assert fetched[uid][b"INTERNALDATE"] == received_at
    assert b"\\Seen" not in fetched[uid][b"FLAGS"]


def test_append_same_bytes_twice(imap_account: ImapAccount) -> None:
    raw = _raw_message("duplicate")

    first = imap_account.append(raw)
    second = imap_account.append(raw)

    assert second > first
    assert set(imap_account.flags()) == {first, second}


def test_append_flags_and_new_folder(imap_account: ImapAccount) -> None:
    uid = imap_account.append(_raw_message("archived"), folder="Archive",
                              flags=(b"\\Seen", b"\\Flagged"))

    assert imap_account.flags("Archive") == {uid: (b"\\Flagged", b"\\Seen")}
    assert imap_account.flags() == {}


def test_flags_show_seen_after_fetch(imap_account: ImapAccount) -> None:
    uid = imap_account.append(_raw_message("to be read"))
    assert imap_account.flags() == {uid: ()}

    # BODY[] without PEEK sets \Seen, as a careless client would.
    with imap_account.connect() as client:
        client.select_folder("INBOX")
        client.fetch([uid], ["BODY[]"])

    assert imap_account.flags() == {uid: (b"\\Seen",)}


def test_flags_call_sets_no_flag(imap_account: ImapAccount) -> None:
    uid = imap_account.append(_raw_message("untouched"))

    imap_account.flags()
    imap_account.flags()

    assert imap_account.flags() == {uid: ()}


def test_reset_uidvalidity_keeps_messages(imap_account: ImapAccount) -> None:
    first = imap_account.append(_raw_message("before reset one"))
    second = imap_account.append(_raw_message("before reset two"), flags=(b"\\Answered",))
    before = imap_account.uidvalidity()

    imap_account.reset_uidvalidity()

    after = imap_account.uidvalidity()
    assert after != before
    assert imap_account.flags() == {first: (), second: (b"\\Answered",)}

    third = imap_account.append(_raw_message("after reset"))
    assert third > second
    assert imap_account.uidvalidity() == after


def test_reset_uidvalidity_ends_selected_session(imap_account: ImapAccount) -> None:
    imap_account.append(_raw_message("watched"))

    with imap_account.connect() as watcher:
        old_value = watcher.select_folder("INBOX")[b"UIDVALIDITY"]
        imap_account.reset_uidvalidity()

        with pytest.raises((IMAPClient.AbortError, OSError)):
            watcher.noop()
            watcher.search("ALL")

    assert imap_account.uidvalidity() != old_value


def test_accounts_are_isolated(dovecot: Dovecot, imap_account: ImapAccount) -> None:
    other_username = f"other-{secrets.token_hex(6)}"
    dovecot.add_user(other_username, "other-password")
    imap_account.append(_raw_message("only for the first user"))

    assert dovecot.flags(other_username, "other-password") == {}
    assert len(imap_account.flags()) == 1


def test_wrong_password_rejected_quickly(imap_account: ImapAccount) -> None:
    # With Dovecot 2.3.19 defaults, these two failures took about 2 s and 6 s (measured).
    started = time.monotonic()
    for _ in range(2):
        with pytest.raises(LoginError):
            imap_account.server.connect(imap_account.username, "wrong-password")

    assert time.monotonic() - started < 3.0
    assert imap_account.flags() == {}


def test_server_offers_id_and_uidplus(imap_account: ImapAccount) -> None:
    with imap_account.connect() as client:
        capabilities = client.capabilities()
        server_id = client.id_({"name": "intake-test"})

    assert b"ID" in capabilities
    assert b"UIDPLUS" in capabilities
    assert server_id is not None


def test_add_user_rejects_invalid_input(dovecot: Dovecot, imap_account: ImapAccount) -> None:
    with pytest.raises(ValueError, match="already exists"):
        dovecot.add_user(imap_account.username, "another-password")
    with pytest.raises(ValueError, match="invalid username"):
        dovecot.add_user("../escape", "password")
    with pytest.raises(ValueError, match="invalid username"):
        dovecot.add_user("", "password")
    with pytest.raises(ValueError, match="cannot store"):
        dovecot.add_user("colon-password", "pass:word")
    with pytest.raises(ValueError, match="cannot store"):
        dovecot.add_user("newline-password", "pass\nevil:{PLAIN}x")
    with pytest.raises(ValueError, match="must not be empty"):
        dovecot.add_user("empty-password", "")


def test_dovecot_start_stop_own_instance(tmp_path: Path) -> None:
    server = Dovecot(tmp_path / "own")
    started = time.monotonic()
    server.start()
    start_seconds = time.monotonic() - started

    try:
        assert start_seconds < 5.0
        assert server.running
        with socket.create_connection((server.host, server.port), timeout=5) as connection:
            assert connection.recv(512).startswith(b"* OK")
    finally:
        server.stop()

    assert not server.running
    with pytest.raises(OSError):
        socket.create_connection((server.host, server.port), timeout=1).close()
    server.stop()


def test_dovecot_explicit_busy_port_fails(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind((mailstack.LOOPBACK, 0))
        blocker.listen()
        busy_port = blocker.getsockname()[1]

        server = Dovecot(tmp_path / "busy", port=busy_port)
        with pytest.raises(RuntimeError, match="address already in use"):
            server.start()

    assert not server.running


def test_dovecot_retries_taken_free_port(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind((mailstack.LOOPBACK, 0))
        blocker.listen()
        busy_port = blocker.getsockname()[1]

        # The first "free" port is already taken, as when another process wins the race.
        ports = iter([busy_port])
        real_find_free_port = mailstack.find_free_port
        monkeypatch.setattr(mailstack, "find_free_port", lambda: next(ports, None) or real_find_free_port())

        server = Dovecot(tmp_path / "retry")
        assert server.port == busy_port
        server.start()

    try:
        assert server.port != busy_port
        with socket.create_connection((server.host, server.port), timeout=5) as connection:
            assert connection.recv(512).startswith(b"* OK")
    finally:
        server.stop()


def test_dovecot_missing_binary_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(mailstack, "SBIN_FALLBACK_DIRS", ())

    with pytest.raises(RuntimeError, match="apt-get install -y dovecot-imapd"):
        Dovecot(tmp_path / "missing").start()


# SMTP sink.


def test_smtp_sink_records_message(smtp_sink: SmtpSink) -> None:
    raw = "Subject: 回执\r\nFrom: intake@example.org\r\n\r\n已收到。\r\n".encode()

    _send(smtp_sink, raw, ["a@example.org", "b@example.org"])

    [received] = smtp_sink.wait_for(1)
    assert received.mail_from == "intake@example.org"
    assert received.rcpt_tos == ["a@example.org", "b@example.org"]
    assert received.data == raw
    assert received.auth_login is None


def test_smtp_sink_fail_next_rejects_data() -> None:
    sink = SmtpSink(fail_next=1)
    sink.start()
    try:
        with pytest.raises(smtplib.SMTPDataError) as rejection:
            _send(sink, b"Subject: first try\r\n\r\nx\r\n", ["a@example.org"])
        assert rejection.value.smtp_code == 451
        assert b"4.3.0 try again later" in rejection.value.smtp_error
        assert sink.messages == []

        _send(sink, b"Subject: second try\r\n\r\nx\r\n", ["a@example.org"])

        [received] = sink.wait_for(1)
        assert b"second try" in received.data
        assert sink.rejected == 1
    finally:
        sink.stop()


def test_smtp_sink_requires_credentials() -> None:
    sink = SmtpSink(credentials=("intake", "sink-password"))
    sink.start()
    try:
        with smtplib.SMTP(sink.host, sink.port, timeout=10) as client:
            with pytest.raises(smtplib.SMTPSenderRefused):
                client.sendmail("intake@example.org", ["a@example.org"], b"Subject: no auth\r\n\r\nx\r\n")

        with smtplib.SMTP(sink.host, sink.port, timeout=10) as client:
            with pytest.raises(smtplib.SMTPAuthenticationError):
                client.login("intake", "wrong-password")

        with smtplib.SMTP(sink.host, sink.port, timeout=10) as client:
            client.login("intake", "sink-password")
            client.sendmail("intake@example.org", ["a@example.org"], b"Subject: with auth\r\n\r\nx\r\n")

        [received] = sink.wait_for(1)
        assert received.auth_login == "intake"
    finally:
        sink.stop()


def test_smtp_sink_wait_for_times_out(smtp_sink: SmtpSink) -> None:
    started = time.monotonic()

    with pytest.raises(TimeoutError, match="received 0 of 1"):
        smtp_sink.wait_for(1, timeout=0.2)

    assert time.monotonic() - started < 2.0

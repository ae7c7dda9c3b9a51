"""Shared pytest fixtures."""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mailstack import Dovecot, ImapAccount, SmtpSink, find_dovecot_binary


# ---- Mail stack fixtures (tests/mailstack.py): Dovecot IMAP and an SMTP sink on 127.0.0.1 ----


def dovecot_root(prefix: str) -> Iterator[Path]:
    """Yield a fresh folder for a Dovecot instance outside pytest's temporary tree.

    pytest keeps /tmp/pytest-of-USER at mode 0700 and resets it whenever another
    pytest run starts; Dovecot's auth process (user dovecot) then loses access to
    the password files below it. A folder directly under the system temp folder
    keeps the permissions the stack sets.
    """
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """One Dovecot instance for the whole test run, stopped at the end.

    Fails (never skips) when Dovecot is not installed, because the IMAP integration
    tests are part of the suite and must not pass silently without a server.
    """
    try:
        find_dovecot_binary("dovecot")
        find_dovecot_binary("doveadm")
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)

    for root in dovecot_root("intake-dovecot-"):
        server = Dovecot(root)
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def imap_account(dovecot: Dovecot) -> ImapAccount:
    """A new user with an empty mailbox on the session's Dovecot, unique to this test."""
    username = f"user-{secrets.token_hex(6)}"
    password = secrets.token_urlsafe(12)
    dovecot.add_user(username, password)
    return ImapAccount(host=dovecot.host, port=dovecot.port, username=username,
                       password=password, server=dovecot)


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A started SMTP sink that records what it receives, stopped after the test."""
    sink = SmtpSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


# ---- End of mail stack fixtures ----

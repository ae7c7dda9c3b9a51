"""Shared pytest fixtures."""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from tests.mailstack import Dovecot, ImapAccount, SmtpSink, find_dovecot_binary

DovecotT = TypeVar("DovecotT", bound=Dovecot)


# ---- Mail stack fixtures (tests/mailstack.py): Dovecot IMAP and an SMTP sink on 127.0.0.1 ----


def running_dovecot(factory: Callable[[Path], DovecotT], prefix: str) -> Iterator[DovecotT]:
    """Start a Dovecot made by `factory` in a fresh folder, yield it, then stop it and remove the folder.

    The folder sits directly under the system temp folder, outside pytest's tree:
    pytest keeps /tmp/pytest-of-USER at mode 0700 and resets it whenever another
    pytest run starts, and Dovecot's auth process (user dovecot) then loses access
    to the password files below it.
    """
    root = Path(tempfile.mkdtemp(prefix=prefix))
    server = factory(root)
    try:
        server.start()
        yield server
    finally:
        server.stop()
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

    yield from running_dovecot(Dovecot, "intake-dovecot-")


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

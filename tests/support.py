"""Shared helpers for tests that run the daemon: configuration files and stores."""

from __future__ import annotations

import io
import os
import zipfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from tests.mailstack import ImapAccount, SmtpSink

REPO = Path(__file__).resolve().parents[1]
PASSWORD_ENV = "INTAKE_TEST_IMAP_PASSWORD"
POSTGRES_URL = os.environ.get("INTAKE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def rewrite_part(data: bytes, part: str, transform: Callable[[bytes], bytes], *,
                 extra: dict[str, bytes] | None = None) -> bytes:
    """Return the zip package `data` with `part` passed through `transform` and `extra` parts added."""
    source = zipfile.ZipFile(io.BytesIO(data))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            content = source.read(item)
            target.writestr(item, transform(content) if item.filename == part else content)
        for name, content in (extra or {}).items():
            target.writestr(name, content)
    return buffer.getvalue()


def write_config(folder: Path, *, mailbox: str, store_url: str, outbox: str = 'transport = "file"\ndir = "outbox"',
                 smtp: str = "", extra: str = "") -> Path:
    """Write a config.toml into `folder` that uses the repository's rules and templates."""
    path = folder / "config.toml"
    path.write_text(
        f"""
[mailbox]
{mailbox}

[smtp]
host = "127.0.0.1"
security = "none"
from_address = "gyhlw@gdei.gov.cn"
{smtp}

[outbox]
{outbox}
templates = "{REPO / 'outbox_templates'}"

[store]
url = "{store_url}"

[campaign]
rules = "{REPO / 'rules' / 'notice_2020_858.toml'}"

[digest]
to = ["staff@gdei.gov.cn"]

{extra}
""",
        encoding="utf-8",
    )
    return path


@contextmanager
def postgres_schema() -> Iterator[str]:
    """Yield a URL whose connections use a fresh schema, dropped afterwards.

    Skips the test when PostgreSQL is unreachable, unless INTAKE_REQUIRE_POSTGRES=1.
    """
    engine = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    schema = f"intake_test_{uuid.uuid4().hex[:12]}"
    try:
        with engine.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OperationalError as err:
        engine.dispose()
        if os.environ.get("INTAKE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL at {POSTGRES_URL} is required but unreachable: {err}")
        pytest.skip(f"PostgreSQL at {POSTGRES_URL} unreachable")
    try:
        separator = "&" if "?" in POSTGRES_URL else "?"
        yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    finally:
        with engine.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store URL for an empty store, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'intake.db'}"
        return
    with postgres_schema() as url:
        yield url


def imap_config(folder: Path, account: ImapAccount, sink: SmtpSink, *, store_url: str | None = None) -> Path:
    mailbox = (f'kind = "imap"\nhost = "127.0.0.1"\nport = {account.port}\nsecurity = "none"\n'
               f'username = "{account.username}"\npassword_env = "{PASSWORD_ENV}"\naddress = "gyhlw@gdei.gov.cn"')
    return write_config(folder, mailbox=mailbox, store_url=store_url or f"sqlite:///{folder / 'intake.db'}",
                        outbox='transport = "smtp"\nmax_attempts = 3', smtp=f"port = {sink.port}")

"""IMAP over implicit TLS and STARTTLS, against a Dovecot with a throw-away certificate."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from daemon.cli import cli
from tests import builders
from tests.conftest import running_dovecot
from tests.mailstack import Dovecot, ImapAccount, SmtpSink, find_free_port
from tests.support import PASSWORD_ENV, write_config


class TlsDovecot(Dovecot):
    """A Dovecot that offers STARTTLS on its imap port and implicit TLS on `tls_port`."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.tls_port = find_free_port()
        self.certificate = self.root / "cert.pem"
        self.key = self.root / "key.pem"

    def _write_config(self) -> None:
        super()._write_config()
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
             "-keyout", str(self.key), "-out", str(self.certificate)],
            check=True, capture_output=True, timeout=60,
        )
        # Later settings override earlier ones in a Dovecot config file.
        # imap_id_log makes Dovecot log the ID a client sends, so a test can see it.
        extra = f"""
imap_id_log = *
ssl = yes
ssl_cert = <{self.certificate}
ssl_key = <{self.key}
service imap-login {{
  inet_listener imaps {{
    address = {self.host}
    port = {self.tls_port}
    ssl = yes
  }}
}}
"""
        with self.config_path.open("a", encoding="utf-8") as handle:
            handle.write(extra)


@pytest.fixture(scope="module")
def tls_dovecot() -> Iterator[TlsDovecot]:
    yield from running_dovecot(TlsDovecot, "intake-tlsdovecot-")


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_run_once_over_tls(tmp_path: Path, tls_dovecot: TlsDovecot, smtp_sink: SmtpSink, security: str,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    account = ImapAccount(host=tls_dovecot.host, port=tls_dovecot.port, username=f"tls-{secrets.token_hex(4)}",
                          password=secrets.token_urlsafe(12), server=tls_dovecot)
    tls_dovecot.add_user(account.username, account.password)
    account.append(builders.mail(sender="周文涛 <zhouwt@xinghe-sl.example.com>", subject="汇总表",
                                 message_id="<tls@xinghe-sl.example.com>", attachments=[(
                                     "附件1.xlsx", builders.form1_workbook([builders.form1_row(2)]),
                                     builders.XLSX_TYPE)]))
    port = tls_dovecot.tls_port if security == "tls" else tls_dovecot.port
    mailbox = (f'kind = "imap"\nhost = "127.0.0.1"\nport = {port}\nsecurity = "{security}"\n'
               f'ca_file = "{tls_dovecot.certificate}"\n'
               f'username = "{account.username}"\npassword_env = "{PASSWORD_ENV}"\naddress = "gyhlw@gdei.gov.cn"')
    config = write_config(tmp_path, mailbox=mailbox, store_url=f"sqlite:///{tmp_path / 'intake.db'}",
                          outbox='transport = "smtp"', smtp=f"port = {smtp_sink.port}")
    monkeypatch.setenv(PASSWORD_ENV, account.password)

    result = CliRunner().invoke(cli, ["--config", str(config), "run", "--once"], catch_exceptions=False)

    assert result.exit_code == 0, result.output
    assert "附件1 1 行" in result.output
    assert len(smtp_sink.wait_for(1)) == 1


def test_imap_id_sent_after_login(tmp_path: Path, tls_dovecot: TlsDovecot, smtp_sink: SmtpSink,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    username = f"id-{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(12)
    tls_dovecot.add_user(username, password)
    mailbox = (f'kind = "imap"\nhost = "127.0.0.1"\nport = {tls_dovecot.port}\nsecurity = "starttls"\n'
               f'ca_file = "{tls_dovecot.certificate}"\n'
               f'username = "{username}"\npassword_env = "{PASSWORD_ENV}"')
    config = write_config(tmp_path, mailbox=mailbox, store_url=f"sqlite:///{tmp_path / 'intake.db'}")
    monkeypatch.setenv(PASSWORD_ENV, password)

    result = CliRunner().invoke(cli, ["--config", str(config), "run", "--once"], catch_exceptions=False)

    assert result.exit_code == 0, result.output
    log = tls_dovecot.log_path.read_text(encoding="utf-8", errors="replace")
    assert any(username in line and "name=intake" in line for line in log.splitlines())


def test_untrusted_certificate_is_refused(tmp_path: Path, tls_dovecot: TlsDovecot, smtp_sink: SmtpSink,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    mailbox = (f'kind = "imap"\nhost = "127.0.0.1"\nport = {tls_dovecot.tls_port}\nsecurity = "tls"\n'
               f'username = "nobody"\npassword_env = "{PASSWORD_ENV}"')
    config = write_config(tmp_path, mailbox=mailbox, store_url=f"sqlite:///{tmp_path / 'intake.db'}")
    monkeypatch.setenv(PASSWORD_ENV, "x")

    result = CliRunner().invoke(cli, ["--config", str(config), "run", "--once"], standalone_mode=False)

    assert result.exit_code != 0
    assert "无法连接 IMAP 服务器" in str(result.exception)
    assert "CERTIFICATE_VERIFY_FAILED" in str(result.exception)

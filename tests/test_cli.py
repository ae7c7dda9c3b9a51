"""The `intake` command line on the demo Maildir, as staff would use it."""

from __future__ import annotations

import email
import email.policy
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from openpyxl import load_workbook

from tests.mailstack import SmtpSink
from tests.support import REPO, write_config

DEMO = REPO / "demo" / "maildir"


def demo_config(folder: Path, *, smtp: str = "", outbox: str = 'transport = "file"\ndir = "outbox"',
                extra: str = "") -> Path:
    return write_config(folder, mailbox=f'kind = "maildir"\npath = "{DEMO}"\naddress = "gyhlw@gdei.gov.cn"',
                        store_url=f"sqlite:///{folder / 'intake.db'}", smtp=smtp, outbox=outbox, extra=extra)


def intake(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the installed console script the way a person would."""
    return subprocess.run([sys.executable, "-m", "daemon.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, cwd=REPO)


def test_run_once_on_demo_prints_each_decision(tmp_path: Path) -> None:
    config = demo_config(tmp_path)

    result = intake("--config", str(config), "run", "--once")

    assert result.returncode == 0, result.stderr
    assert "本轮收取新邮件 7 封，处理 7 封，写入回复 6 封" in result.stdout
    assert "受理（逾期），附件1 2 行" in result.stdout
    assert "部分退回，附件3 3 行、附件2 1 份报告" in result.stdout
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 6


def test_digest_and_export_after_demo(tmp_path: Path) -> None:
    config = demo_config(tmp_path)
    intake("--config", str(config), "run", "--once")

    digest = intake("--config", str(config), "digest")
    export = intake("--config", str(config), "export", "--out", str(tmp_path / "汇总.xlsx"))

    assert digest.returncode == 0, digest.stderr
    assert "报送情况每日汇总" in digest.stdout
    assert "尚未报送 19 家" in digest.stdout
    assert export.returncode == 0, export.stderr
    assert "附件1 5 条" in export.stdout
    workbook = load_workbook(tmp_path / "汇总.xlsx")
    assert workbook.sheetnames == ["附件1", "附件3", "附件2"]
    assert workbook["附件1"].max_row == 6


def test_reparse_by_message_id(tmp_path: Path) -> None:
    config = demo_config(tmp_path)
    intake("--config", str(config), "run", "--once")

    result = intake("--config", str(config), "reparse", "202009101012312718460@xinghe-sl.example.com")

    assert result.returncode == 0, result.stderr
    assert "已重新处理 <202009101012312718460@xinghe-sl.example.com>：受理，附件1 3 行" in result.stdout
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 6


def test_reparse_with_reply_sends_again(tmp_path: Path) -> None:
    config = demo_config(tmp_path)
    intake("--config", str(config), "run", "--once")

    result = intake("--config", str(config), "reparse", "--reply", "<202009101012312718460@xinghe-sl.example.com>")

    assert result.returncode == 0, result.stderr
    assert "已写入 1 封回复" in result.stdout
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 7


def test_reparse_unknown_message_id(tmp_path: Path) -> None:
    config = demo_config(tmp_path)

    result = intake("--config", str(config), "reparse", "<nope@example.com>")

    assert result.returncode == 1
    assert "存储中没有 Message-ID 为 <nope@example.com> 的邮件" in result.stderr


def test_digest_send_mails_staff(tmp_path: Path, smtp_sink: SmtpSink) -> None:
    config = demo_config(tmp_path, smtp=f"port = {smtp_sink.port}", outbox='transport = "smtp"')
    intake("--config", str(config), "run", "--once")

    result = intake("--config", str(config), "digest", "--send")

    assert result.returncode == 0, result.stderr
    messages = smtp_sink.wait_for(7)
    digests = [m for m in messages if m.rcpt_tos == ["staff@gdei.gov.cn"]]
    assert len(digests) == 1
    digest = email.message_from_bytes(digests[0].data, policy=email.policy.default)
    assert "每日汇总" in str(digest["Subject"])
    assert "尚未报送" in digest.get_body(("plain",)).get_content()


def test_config_from_environment_variable(tmp_path: Path) -> None:
    config = demo_config(tmp_path)

    result = intake("run", "--once", env={"INTAKE_CONFIG": str(config)})

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "intake.db").exists()


def test_missing_config_names_the_file(tmp_path: Path) -> None:
    result = intake("--config", str(tmp_path / "nope.toml"), "digest")

    assert result.returncode == 1
    assert "找不到配置文件" in result.stderr
    assert "nope.toml" in result.stderr


@pytest.mark.parametrize(("extra", "message"), [
    ('[schedule]\ndigest_at = "8点半"', "digest_at = '8点半' 无效"),
    ("[schedule]\npoll_seconds = 0", "poll_seconds = 0 无效"),
])
def test_invalid_setting_names_key_and_value(tmp_path: Path, extra: str, message: str) -> None:
    config = demo_config(tmp_path, extra=extra)

    result = intake("--config", str(config), "digest")

    assert result.returncode == 1
    assert message in result.stderr


def test_plaintext_to_remote_host_refused(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[mailbox]\nkind = "imap"\nhost = "imap.example.org"\nsecurity = "none"\nusername = "u"\n',
                      encoding="utf-8")

    result = intake("--config", str(config), "digest")

    assert result.returncode == 1
    assert "security = \"none\" 只允许用于本机地址" in result.stderr


def test_export_rejects_other_suffix(tmp_path: Path) -> None:
    config = demo_config(tmp_path)

    result = intake("--config", str(config), "export", "--out", str(tmp_path / "a.csv"))

    assert result.returncode == 2
    assert "不是 .xlsx" in result.stderr


def test_help_is_chinese() -> None:
    result = intake("--help")

    assert result.returncode == 0
    assert "自动处理报送邮箱" in result.stdout
    assert "按 Message-ID 重新解析" in result.stdout


def test_run_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    config = demo_config(tmp_path, extra="[schedule]\npoll_seconds = 1")
    process = subprocess.Popen([sys.executable, "-m", "daemon.cli", "--config", str(config), "run"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        while not list((tmp_path / "outbox").glob("*.eml")) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(list((tmp_path / "outbox").glob("*.eml"))) == 6
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)

    assert process.returncode == 0, stderr
    assert "intake 已停止" in stdout


def test_usage_errors_are_chinese() -> None:
    missing = intake("reparse")
    unknown = intake("nope")

    assert missing.returncode == 2
    assert "缺少参数 'MESSAGE_ID'" in missing.stderr
    assert "用法" in missing.stderr
    assert "Missing" not in missing.stderr
    assert "没有名为 'nope' 的命令" in unknown.stderr


def test_subcommand_help_without_config(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "daemon.cli", "export", "--help"], capture_output=True,
                            text=True, timeout=60, cwd=tmp_path, env={**os.environ, "INTAKE_CONFIG": ""})

    assert result.returncode == 0, result.stderr
    assert "显示此帮助并退出" in result.stdout
    assert "汇总表的保存路径" in result.stdout

"""One typed settings object, read from config.toml and the environment at start-up.

Relative paths in the file are resolved against the file's own folder, so the
demo configuration works from any working directory. Passwords never sit in
the file: `password_env` names the environment variable that contains it.
"""

from __future__ import annotations

import ipaddress
import os
import re
import ssl
import tomllib
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any

from parsers.archive import ArchiveLimits
from rules.evaluate import Limits
from daemon.errors import ConfigError

#: The checkout or installed tree that contains rules/ and outbox_templates/.
PACKAGE_ROOT = Path(__file__).resolve().parent.parent

ENV_CONFIG = "INTAKE_CONFIG"
DEFAULT_CONFIG = Path("config.toml")

SECURITY_MODES = ("tls", "starttls", "none")


@dataclass(frozen=True)
class MailboxSettings:
    """The source of submissions: an IMAP folder or a Maildir."""

    kind: str
    address: str
    host: str = ""
    port: int = 993
    security: str = "tls"
    username: str = ""
    password_env: str = ""
    folder: str = "INBOX"
    path: Path | None = None
    batch_size: int = 50
    timeout_seconds: float = 60.0
    #: A CA bundle for a server whose certificate a private CA signed; None: the system's.
    ca_file: Path | None = None

    @property
    def name(self) -> str:
        """A stable name of this mailbox for the ledger."""
        if self.kind == "maildir":
            return f"maildir:{self.path}"
        return f"imap://{self.username}@{self.host}:{self.port}/{self.folder}"

    def password(self) -> str:
        return _secret(self.password_env, "mailbox")


@dataclass(frozen=True)
class SmtpSettings:
    """The server that carries replies and the digest."""

    host: str = "127.0.0.1"
    port: int = 25
    security: str = "none"
    username: str = ""
    password_env: str = ""
    from_address: str = ""
    from_name: str = "广东省工业和信息化厅工业互联网处"
    timeout_seconds: float = 60.0
    ca_file: Path | None = None

    def password(self) -> str:
        return _secret(self.password_env, "smtp")


@dataclass(frozen=True)
class Settings:
    """Every setting intake runs with."""

    source: Path
    mailbox: MailboxSettings
    smtp: SmtpSettings
    outbox_transport: str
    outbox_dir: Path
    templates_dir: Path
    store_url: str
    campaign_rules: Path
    poll_seconds: int
    digest_at: time
    digest_to: tuple[str, ...]
    max_message_bytes: int
    max_send_attempts: int
    max_process_attempts: int
    limits: Limits = field(default_factory=Limits)

    @property
    def own_addresses(self) -> frozenset[str]:
        return frozenset(a for a in (self.mailbox.address, self.smtp.from_address) if a)


def config_path(option: str | None) -> Path:
    """Return the configuration file chosen by --config, INTAKE_CONFIG or the default."""
    if option:
        return Path(option)
    if os.environ.get(ENV_CONFIG):
        return Path(os.environ[ENV_CONFIG])
    return DEFAULT_CONFIG


def load_settings(path: Path) -> Settings:
    """Read and check the configuration file at `path`."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ConfigError(f"找不到配置文件 {path}：请检查路径，或用 --config、环境变量 {ENV_CONFIG} 指定其他文件。") from err
    except IsADirectoryError as err:
        raise ConfigError(f"{path} 是文件夹，不是配置文件：请指定其中的 config.toml。") from err
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"配置文件 {path} 不是有效的 UTF-8 TOML 文件：{err}") from err

    try:
        return _settings(raw, path)
    except (TypeError, ValueError, AttributeError) as err:
        # A value of the wrong type (a number where a table or text belongs).
        raise ConfigError(f"配置文件 {path} 中有取值类型不对的项（{err}）：请对照 config.toml 的注释检查各项的写法。") from err


def _settings(raw: dict[str, Any], path: Path) -> Settings:
    base = path.resolve().parent
    mailbox = _mailbox(raw.get("mailbox", {}), base)
    smtp = _smtp(raw.get("smtp", {}), mailbox, base)
    outbox = raw.get("outbox", {})
    transport = outbox.get("transport", "file")
    if transport not in ("smtp", "file"):
        raise ConfigError(f"[outbox] transport = {transport!r} 无效：应为 \"smtp\" 或 \"file\"。")

    schedule = raw.get("schedule", {})
    limits = raw.get("limits", {})
    digest = raw.get("digest", {})
    digest_to = digest.get("to", [])
    if isinstance(digest_to, str):
        digest_to = [digest_to]

    return Settings(
        source=path.resolve(),
        mailbox=mailbox,
        smtp=smtp,
        outbox_transport=transport,
        outbox_dir=_path(base, outbox.get("dir", "data/outbox")),
        templates_dir=_shipped_path(base, outbox.get("templates", "outbox_templates")),
        store_url=_store_url(raw.get("store", {}).get("url", "sqlite:///data/intake.db"), base),
        campaign_rules=_shipped_path(base, raw.get("campaign", {}).get("rules", "rules/notice_2020_858.toml")),
        poll_seconds=_positive_int(schedule, "poll_seconds", 60, "schedule"),
        digest_at=_clock(schedule.get("digest_at", "08:30")),
        digest_to=tuple(str(a) for a in digest_to),
        max_message_bytes=_positive_int(limits, "message_bytes", 50 * 1024 * 1024, "limits"),
        max_send_attempts=_positive_int(outbox, "max_attempts", 5, "outbox"),
        max_process_attempts=_positive_int(schedule, "process_attempts", 3, "schedule"),
        limits=Limits(
            max_attachments=_positive_int(limits, "attachments", 30, "limits"),
            max_archive_depth=_positive_int(limits, "archive_depth", 3, "limits"),
            max_rows=_positive_int(limits, "rows_per_sheet", 5000, "limits"),
            archive=ArchiveLimits(
                max_members=_positive_int(limits, "archive_members", 200, "limits"),
                max_member_bytes=_positive_int(limits, "member_bytes", 50 * 1024 * 1024, "limits"),
                max_total_bytes=_positive_int(limits, "expanded_bytes", 200 * 1024 * 1024, "limits"),
                max_ratio=float(limits.get("expansion_ratio", 200)),
            ),
        ),
    )


def _mailbox(raw: dict[str, Any], base: Path) -> MailboxSettings:
    kind = raw.get("kind", "imap")
    address = str(raw.get("address", "")).lower()
    if kind == "maildir":
        if "path" not in raw:
            raise ConfigError("[mailbox] kind = \"maildir\" 时必须设置 path（Maildir 文件夹）。")
        return MailboxSettings(kind=kind, address=address, path=_path(base, raw["path"]))
    if kind != "imap":
        raise ConfigError(f"[mailbox] kind = {kind!r} 无效：应为 \"imap\" 或 \"maildir\"。")

    for key in ("host", "username"):
        if not raw.get(key):
            raise ConfigError(f"[mailbox] 缺少 {key}：IMAP 邮箱需要服务器地址和用户名。")
    security = _security(raw, "mailbox", raw["host"])
    default_port = 993 if security == "tls" else 143
    return MailboxSettings(
        kind=kind, address=address or str(raw["username"]).lower(), host=raw["host"],
        port=_positive_int(raw, "port", default_port, "mailbox"), security=security,
        username=raw["username"], password_env=raw.get("password_env", ""),
        folder=raw.get("folder", "INBOX"), batch_size=_positive_int(raw, "batch_size", 50, "mailbox"),
        timeout_seconds=float(raw.get("timeout_seconds", 60)),
        ca_file=_ca_file(raw, base, "mailbox"),
    )


def _ca_file(raw: dict[str, Any], base: Path, section: str) -> Path | None:
    if not raw.get("ca_file"):
        return None
    path = _path(base, raw["ca_file"])
    if not path.is_file():
        raise ConfigError(f"[{section}] ca_file = {raw['ca_file']!r} 不存在：请填写 PEM 格式的 CA 证书文件路径，或删除此项以使用系统证书。")
    return path


def _smtp(raw: dict[str, Any], mailbox: MailboxSettings, base: Path) -> SmtpSettings:
    host = raw.get("host", "127.0.0.1")
    security = _security(raw, "smtp", host) if raw else "none"
    default_port = {"tls": 465, "starttls": 587, "none": 25}[security]
    return SmtpSettings(
        host=host, port=_positive_int(raw, "port", default_port, "smtp"), security=security,
        username=raw.get("username", ""), password_env=raw.get("password_env", ""),
        from_address=str(raw.get("from_address", mailbox.address)).lower(),
        from_name=raw.get("from_name", SmtpSettings.from_name),
        timeout_seconds=float(raw.get("timeout_seconds", 60)),
        ca_file=_ca_file(raw, base, "smtp"),
    )


def _security(raw: dict[str, Any], section: str, host: str) -> str:
    security = raw.get("security", "tls")
    if security not in SECURITY_MODES:
        raise ConfigError(f"[{section}] security = {security!r} 无效：应为 tls、starttls 或 none。")
    if security == "none" and not _is_loopback(host):
        raise ConfigError(f"[{section}] security = \"none\" 只允许用于本机地址，而 host = {host!r}：请改用 tls 或 starttls。")
    return str(security)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """A verifying TLS context, trusting `ca_file` when one is configured."""
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


def _secret(variable: str, section: str) -> str:
    if not variable:
        return ""
    value = os.environ.get(variable)
    if value is None:
        raise ConfigError(f"[{section}] password_env = {variable!r}，但环境变量 {variable} 未设置：请先设置该变量再启动。")
    return value


def _path(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _shipped_path(base: Path, value: str) -> Path:
    """Resolve a path to a file intake ships: beside the config file, else in intake's own tree.

    A copy of config.toml in another folder thus still finds the rules and templates.
    """
    path = _path(base, value)
    if path.exists() or Path(value).is_absolute():
        return path
    return PACKAGE_ROOT / value


def _store_url(url: str, base: Path) -> str:
    """Anchor a relative SQLite path at the configuration folder."""
    match = re.match(r"^(sqlite(?:\+\w+)?):///(?!/)(.+)$", url)
    if match and match.group(2) != ":memory:":
        return f"{match.group(1)}:///{base / match.group(2)}"
    return url


def _positive_int(raw: dict[str, Any], key: str, default: int, section: str) -> int:
    value = raw.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"[{section}] {key} = {value!r} 无效：应为正整数。")
    if key == "port" and value > 65535:
        raise ConfigError(f"[{section}] port = {value} 无效：端口应在 1 到 65535 之间。")
    return value


def _clock(value: str) -> time:
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", str(value))
    if not match:
        raise ConfigError(f"[schedule] digest_at = {value!r} 无效：应为 24 小时制的 \"HH:MM\"，例如 \"08:30\"。")
    return time(int(match.group(1)), int(match.group(2)))

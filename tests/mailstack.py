"""Throw-away mail servers on 127.0.0.1 for the integration tests.

`Dovecot` runs a private Dovecot 2.3 instance (plaintext IMAP, Maildir, one passwd-file
per test user) under a folder of its own, with its own config, sockets, state and log, so it
never touches /etc/dovecot or the system service. `SmtpSink` is an aiosmtpd server that
records every message it accepts and can reject the next DATA commands on request.

Both listen on 127.0.0.1 only and every wait in this module is bounded.
"""

from __future__ import annotations

import atexit
import grp
import logging
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from imapclient import IMAPClient

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"

DOVECOT_INSTALL_HINT = "install it with `apt-get install -y dovecot-imapd`"

# Dovecot rejects uid 0 for mail processes, so mailboxes belong to this system user.
MAIL_USER = "mail"

# The Dovecot auth process runs as a user of this group and must read the passwd-files.
DOVECOT_AUTH_GROUP = "dovecot"

# /usr/sbin is not on every PATH (for example a non-login shell of a normal user), and
# Debian installs the dovecot binary there.
SBIN_FALLBACK_DIRS: tuple[str, ...] = ("/usr/sbin", "/sbin")

# Linux limits a unix socket path to 107 bytes. Dovecot puts sockets such as
# "token-login/tokenlogin" and "replication-notify-fifo" under base_dir.
_MAX_BASE_DIR_BYTES = 107 - 32

_USERNAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+@-]{0,63}")
_APPENDUID_PATTERN = re.compile(rb"\[APPENDUID (\d+) (\d+)\]")

# Bounds for start(), stop() and the IMAP helpers, in seconds.
DEFAULT_START_TIMEOUT = 20.0
_STOP_TIMEOUT = 15.0
_KILL_TIMEOUT = 5.0
_IMAP_TIMEOUT = 10.0
_DOVEADM_TIMEOUT = 15.0
_POLL_INTERVAL = 0.05

# Attempts with a fresh free port when another process takes the chosen one first.
_PORT_ATTEMPTS = 3


def find_free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    Another process can still take the port before the caller binds it, so callers
    that choose the port this way retry with a new one when the bind fails.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def find_dovecot_binary(name: str = "dovecot") -> str:
    """Return the path of the Dovecot program `name` (`dovecot` or `doveadm`).

    Raises RuntimeError with the install command when the program is missing.
    """
    found = shutil.which(name)
    if found is not None:
        return found

    for directory in SBIN_FALLBACK_DIRS:
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)

    raise RuntimeError(
        f"{name} not found on PATH or in {', '.join(SBIN_FALLBACK_DIRS)}: "
        f"the IMAP integration tests need a real Dovecot server, {DOVECOT_INSTALL_HINT}"
    )


def _tail(path: Path, offset: int = 0, max_lines: int = 40) -> str:
    """Return the last `max_lines` lines written to a log file after byte `offset`."""
    try:
        with path.open("rb") as log_file:
            log_file.seek(offset)
            text = log_file.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return f"({path} does not exist)"
    return "\n".join(text.splitlines()[-max_lines:])


def _allow_traversal(root: Path) -> None:
    """Add the other-execute bit to `root` and each ancestor that lacks it.

    Dovecot's auth process (user dovecot) and mail processes (user mail) must traverse
    every folder above the passwd-file and the mailboxes, but pytest creates its
    temporary folders with mode 0700. Only folders inside the system temporary folder
    are changed, and only by that one bit. A folder outside it that lacks the bit raises
    RuntimeError, because changing it would alter the machine beyond the test run.
    """
    temp_root = Path(tempfile.gettempdir()).resolve()

    for folder in (root, *root.parents):
        mode = folder.stat().st_mode
        if mode & stat.S_IXOTH:
            continue

        if folder == root or temp_root in folder.parents:
            logger.info("adding o+x to %s so Dovecot's unprivileged processes can traverse it", folder)
            folder.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
            continue

        raise RuntimeError(
            f"{folder} is not traversable by other users (mode {stat.S_IMODE(mode):o}), "
            f"so Dovecot's auth and mail processes cannot reach {root}: "
            f"put the Dovecot root under {temp_root} or add o+x to {folder}"
        )


def _validate_credentials(username: str, password: str) -> None:
    """Raise ValueError for values that would break the passwd-file or the home path."""
    if not _USERNAME_PATTERN.fullmatch(username):
        raise ValueError(
            f"invalid username {username!r}: use 1-64 characters from A-Z a-z 0-9 . _ + @ -, "
            "starting with a letter or digit"
        )

    if not password:
        raise ValueError(f"invalid password for {username!r}: it must not be empty")

    forbidden = [character for character in (":", "\n", "\r", "\0") if character in password]
    if forbidden:
        raise ValueError(
            f"invalid password for {username!r}: it contains {forbidden!r}, "
            "which the passwd-file format cannot store"
        )


@dataclass(frozen=True)
class Received:
    """One message accepted by `SmtpSink`, with the SMTP envelope as the client sent it."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    # Login name from SMTP AUTH, or None when the client did not authenticate.
    auth_login: str | None = None


class Dovecot:
    """A throw-away Dovecot instance under `root` (a pathlib.Path), on 127.0.0.1,
    plaintext IMAP on a free high port.

    Layout under `root`: dovecot.conf, run/ (base_dir with sockets and master.pid),
    state/ (state_dir), dovecot.log (all Dovecot logging), dovecot.out (stdout and stderr
    of the master), users/USERNAME (one passwd-file per user) and mail/USERNAME/Maildir
    (homes and mailboxes, owned by the system user `mail`).

    Settings that differ from a production server: no TLS, plaintext LOGIN allowed,
    fsync disabled, auth_failure_delay = 0 and no growing penalty for repeated failures
    from one IP, so a failed login takes about 0.5 s (measured with Dovecot 2.3.19)
    instead of 2 s and more.
    """

    host: str
    port: int

    def __init__(self, root: Path, *, port: int | None = None,
                 start_timeout: float = DEFAULT_START_TIMEOUT) -> None:
        """Prepare paths only. `port=None` picks a free port (re-picked if it is taken at start)."""
        self.root = Path(root).resolve()
        self.host = LOOPBACK
        self.port = port if port is not None else find_free_port()
        self.start_timeout = start_timeout

        self.config_path = self.root / "dovecot.conf"
        self.base_dir = self.root / "run"
        self.state_dir = self.root / "state"
        self.log_path = self.root / "dovecot.log"
        self.output_path = self.root / "dovecot.out"
        self.passwd_dir = self.root / "users"
        self.mail_root = self.root / "mail"
        self.instance_name = f"intake-test-{secrets.token_hex(4)}"

        self._port_is_explicit = port is not None
        self._process: subprocess.Popen[bytes] | None = None
        # Sizes of the log files at the latest launch, so start() judges only new lines.
        self._log_offsets: dict[Path, int] = {}
        self._users_lock = threading.Lock()

        if len(os.fsencode(self.base_dir)) > _MAX_BASE_DIR_BYTES:
            raise ValueError(
                f"Dovecot root {self.root} is too long: its unix sockets under {self.base_dir} "
                f"would exceed the 107-byte socket path limit, use a root shorter than "
                f"{_MAX_BASE_DIR_BYTES - len('/run')} bytes"
            )

    @property
    def running(self) -> bool:
        """True while the master process started by `start()` has not exited."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Write the config, start the master and wait until the IMAP port sends its greeting.

        Raises RuntimeError with the log tail when Dovecot is missing, exits, or does not
        greet within `start_timeout` seconds. A taken port is replaced by a new free port
        up to three times, unless the caller fixed the port.
        """
        if self.running:
            raise RuntimeError(f"Dovecot under {self.root} is already running on port {self.port}")

        binary = find_dovecot_binary("dovecot")
        if os.geteuid() != 0:
            raise RuntimeError(
                f"the Dovecot test instance must be started as root: it gives the mail folders "
                f"to the {MAIL_USER!r} user, and Dovecot switches its processes to that user "
                f"and to {DOVECOT_AUTH_GROUP!r}"
            )
        self._prepare_folders()

        for attempt in range(1, _PORT_ATTEMPTS + 1):
            self._write_config()
            self._launch(binary)

            try:
                self._wait_until_ready()
            except _PortInUse:
                self._reap_failed_process()
                if self._port_is_explicit or attempt == _PORT_ATTEMPTS:
                    raise RuntimeError(
                        f"Dovecot could not bind {self.host}:{self.port}: address already in use. "
                        f"Log tail:\n{self._log_tails()}"
                    ) from None
                logger.warning("port %d was taken before Dovecot bound it, retrying with a new port", self.port)
                self.port = find_free_port()
                continue
            except BaseException:
                self._reap_failed_process()
                raise

            atexit.register(self.stop)
            logger.info("Dovecot started: pid %d, imap on %s:%d, root %s",
                        self._process.pid if self._process else -1, self.host, self.port, self.root)
            return

    def stop(self) -> None:
        """Stop the instance with `dovecot -c FILE stop`, else SIGTERM then SIGKILL to its master pid.

        `dovecot stop` signals the pid in base_dir/master.pid, which is the master started
        by `start()` because base_dir is emptied before each start. The fallback signals only
        that master's own pid. Dovecot's child processes exit when their master does. Calling
        stop() on a stopped instance does nothing. With Dovecot 2.3.19, `dovecot stop` took
        about 3 s against 1 s for a plain SIGTERM, of which the master spends 1 s waiting
        for its log process (measured).
        """
        process = self._process
        if process is None:
            return

        atexit.unregister(self.stop)

        if process.poll() is None:
            self._stop_gracefully()

        if process.poll() is None:
            self._kill_master(process)

        self._process = None
        logger.info("Dovecot stopped: root %s, exit status %s", self.root, process.returncode)

    def add_user(self, username: str, password: str) -> None:
        """Add a user, who can log in as soon as this returns, with an empty mailbox.

        Each user gets a passwd-file of its own, users/USERNAME, which Dovecot reads on the
        first lookup. With one shared file, Dovecot 2.3.19 rejected a freshly appended user
        for about a second (measured), because it checks the file for changes lazily.
        Raises ValueError for an invalid or already existing username and for a password
        that the passwd-file format cannot store (empty, or containing ':' or a line break).
        """
        _validate_credentials(username, password)
        passwd_path = self.passwd_dir / username

        with self._users_lock:
            if passwd_path.exists():
                raise ValueError(f"user {username!r} already exists in {passwd_path}")

            # Rename a complete file into place so the auth process never reads half a line.
            staging = self.passwd_dir / f".{username}.tmp"
            staging.write_text(f"{username}:{{PLAIN}}{password}\n", encoding="utf-8")
            self._make_readable_by_auth(staging)
            os.replace(staging, passwd_path)

        logger.info("Dovecot user %s added", username)

    def connect(self, username: str, password: str) -> IMAPClient:
        """Return an IMAPClient logged in as `username`. Use it in a `with` block to log out.

        INTERNALDATE values come back timezone-aware (`normalise_times=False`).
        """
        client = IMAPClient(self.host, port=self.port, ssl=False, timeout=_IMAP_TIMEOUT)
        client.normalise_times = False
        try:
            client.login(username, password)
        except BaseException:
            client.shutdown()
            raise
        return client

    def append(self, username: str, password: str, raw: bytes, *, folder: str = "INBOX",
               internaldate: datetime | None = None, flags: tuple[bytes, ...] = ()) -> int:
        """Store `raw` in `folder` with IMAP APPEND and return its UID.

        `internaldate` sets the receipt time (a naive datetime is taken as local time, as
        imapclient does). A missing folder is created first. Appending the same bytes
        twice stores two messages with two UIDs.
        """
        with self.connect(username, password) as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)

            response = client.append(folder, raw, flags=flags, msg_time=internaldate)

            # UIDPLUS (RFC 4315) returns the new UID. Without it, the newest UID is the
            # highest one, because APPEND always assigns UIDs above all existing ones.
            match = _APPENDUID_PATTERN.search(response if isinstance(response, bytes) else b"")
            if match is not None:
                return int(match.group(2))

            client.select_folder(folder, readonly=True)
            uids: list[int] = client.search("ALL")
            if not uids:
                raise RuntimeError(f"APPEND to {folder!r} of {username} succeeded but the folder is empty")
            return max(uids)

    def flags(self, username: str, password: str, folder: str = "INBOX") -> dict[int, tuple[bytes, ...]]:
        """Return the stored flags of every message in `folder`, by UID, each tuple sorted.

        The folder is opened read-only (EXAMINE), so this call sets no flag. The session
        flag \\Recent is left out because it depends on which session saw the message first.
        """
        with self.connect(username, password) as client:
            client.select_folder(folder, readonly=True)
            uids: list[int] = client.search("ALL")
            if not uids:
                return {}

            fetched: dict[int, dict[bytes, Any]] = client.fetch(uids, ["FLAGS"])
            return {
                uid: tuple(sorted(flag for flag in data[b"FLAGS"] if flag != b"\\Recent"))
                for uid, data in sorted(fetched.items())
            }

    def uidvalidity(self, username: str, password: str, folder: str = "INBOX") -> int:
        """Return the folder's UIDVALIDITY from IMAP STATUS."""
        with self.connect(username, password) as client:
            status = client.folder_status(folder, [b"UIDVALIDITY"])
            return int(status[b"UIDVALIDITY"])

    def reset_uidvalidity(self, username: str, password: str, folder: str = "INBOX") -> None:
        """Give the folder a new UIDVALIDITY (the old value plus one) with `doveadm mailbox update`.

        The messages, their UIDs, flags and UIDNEXT stay as they were. Only UIDVALIDITY
        changes, which under RFC 3501 means that every UID a client stored for the folder
        is invalid. Dovecot closes any session that has the folder selected with
        "* BYE IMAP session state is inconsistent, please relogin.", so a client under test
        sees the change on its next login. Raises RuntimeError if doveadm fails or the
        value did not change.
        """
        old_value = self.uidvalidity(username, password, folder)
        new_value = old_value + 1 if old_value < 0xFFFFFFFF else 1

        command = [
            find_dovecot_binary("doveadm"), "-c", str(self.config_path),
            "mailbox", "update", "-u", username, "--uid-validity", str(new_value), folder,
        ]
        result = subprocess.run(command, capture_output=True, timeout=_DOVEADM_TIMEOUT,
                                stdin=subprocess.DEVNULL, check=False)
        if result.returncode != 0:
            raise RuntimeError(
                f"doveadm mailbox update failed for {username} {folder!r} "
                f"(exit status {result.returncode}): {result.stderr.decode(errors='replace').strip()}"
            )

        current = self.uidvalidity(username, password, folder)
        if current != new_value:
            raise RuntimeError(
                f"UIDVALIDITY of {username} {folder!r} is {current} after doveadm set it to {new_value}"
            )
        logger.info("UIDVALIDITY of %s %r changed from %d to %d", username, folder, old_value, new_value)

    # Start and stop steps.

    def _prepare_folders(self) -> None:
        mail_account = pwd.getpwnam(MAIL_USER)

        self.root.mkdir(parents=True, exist_ok=True)
        _allow_traversal(self.root)

        # A base_dir left by an earlier run can hold stale sockets. Dovecot would try to
        # connect to the stale auth-penalty socket, which no listener serves any more.
        shutil.rmtree(self.base_dir, ignore_errors=True)
        self.state_dir.mkdir(exist_ok=True)

        self.mail_root.mkdir(exist_ok=True)
        os.chown(self.mail_root, mail_account.pw_uid, mail_account.pw_gid)
        self.mail_root.chmod(0o700)

        self.passwd_dir.mkdir(exist_ok=True)
        os.chown(self.passwd_dir, -1, grp.getgrnam(DOVECOT_AUTH_GROUP).gr_gid)
        self.passwd_dir.chmod(0o750)

    @staticmethod
    def _make_readable_by_auth(path: Path) -> None:
        os.chown(path, -1, grp.getgrnam(DOVECOT_AUTH_GROUP).gr_gid)
        path.chmod(0o640)

    def _write_config(self) -> None:
        mail_account = pwd.getpwnam(MAIL_USER)
        uid = mail_account.pw_uid
        gid = mail_account.pw_gid

        # Dovecot rejects a uid or gid below first_valid_uid/gid (defaults 500 and 1), and
        # the mail user on Debian has uid and gid 8, so the valid range is exactly that user.
        config = f"""\
# Generated by tests/mailstack.py for one test run. Not read by the system Dovecot.
instance_name = {self.instance_name}
base_dir = {self.base_dir}
state_dir = {self.state_dir}
log_path = {self.log_path}
info_log_path = {self.log_path}
debug_log_path = {self.log_path}

protocols = imap
listen = {self.host}

ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0

first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {gid}
last_valid_gid = {gid}

mail_location = maildir:~/Maildir
mail_fsync = never

passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.passwd_dir}/%u
}}

userdb {{
  driver = static
  args = uid={uid} gid={gid} home={self.mail_root}/%u
}}

service imap-login {{
  inet_listener imap {{
    address = {self.host}
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}

# The auth process tracks failed logins per IP through this anvil socket and delays
# further logins by up to 15 seconds. Moving the socket away disables that penalty
# without a retry delay, because the auth process skips a penalty socket that does not
# exist (a socket that refuses connections would cost a 5-second retry instead).
service anvil {{
  unix_listener anvil-auth-penalty {{
    path = anvil-auth-penalty-disabled
  }}
}}
"""
        self.config_path.write_text(config, encoding="utf-8")

    def _launch(self, binary: str) -> None:
        self._log_offsets = {
            path: path.stat().st_size if path.exists() else 0
            for path in (self.log_path, self.output_path)
        }

        # -F keeps the master in the foreground, so the Popen pid is the master pid and an
        # early exit shows up in poll(). Output goes to a file: a background server that
        # inherits a pipe would keep a reader of that pipe waiting.
        with self.output_path.open("ab") as output:
            self._process = subprocess.Popen(
                [binary, "-F", "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
            )

    def _wait_until_ready(self) -> None:
        """Return once the IMAP port sends "* OK". Raises _PortInUse or RuntimeError."""
        deadline = time.monotonic() + self.start_timeout
        last_error: str = "no connection attempt yet"

        while time.monotonic() < deadline:
            process = self._process
            if process is None or process.poll() is not None:
                tails = self._log_tails()
                if "Address already in use" in tails:
                    raise _PortInUse()
                status = process.returncode if process is not None else None
                raise RuntimeError(
                    f"Dovecot exited during start (exit status {status}). Log tail:\n{tails}"
                )

            greeting = self._read_greeting()
            if greeting.startswith(b"* OK"):
                return
            last_error = greeting.decode(errors="replace") or "connection closed without greeting"
            time.sleep(_POLL_INTERVAL)

        raise RuntimeError(
            f"Dovecot did not greet on {self.host}:{self.port} within {self.start_timeout} s "
            f"(last result: {last_error}). Log tail:\n{self._log_tails()}"
        )

    def _read_greeting(self) -> bytes:
        """Return the first line the IMAP port sends, or b"" after a refused or silent connection."""
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0) as connection:
                return connection.recv(512)
        except OSError:
            return b""

    def _stop_gracefully(self) -> None:
        command = [find_dovecot_binary("dovecot"), "-c", str(self.config_path), "stop"]
        try:
            result = subprocess.run(command, capture_output=True, timeout=_STOP_TIMEOUT,
                                    stdin=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired:
            logger.warning("`dovecot stop` for %s timed out after %s s", self.root, _STOP_TIMEOUT)
            return
        except RuntimeError as error:
            logger.warning("cannot run `dovecot stop` for %s: %s", self.root, error)
            return

        if result.returncode != 0:
            logger.warning("`dovecot stop` for %s failed (exit status %d): %s", self.root,
                           result.returncode, result.stderr.decode(errors="replace").strip())
            return

        # `dovecot stop` returns once the master is gone, so this wait only reaps it.
        try:
            if self._process is not None:
                self._process.wait(timeout=_KILL_TIMEOUT)
        except subprocess.TimeoutExpired:
            logger.warning("Dovecot master under %s is still running after `dovecot stop`", self.root)

    def _kill_master(self, process: subprocess.Popen[bytes]) -> None:
        pid_file = self.base_dir / "master.pid"
        try:
            recorded_pid = int(pid_file.read_text(encoding="ascii").strip())
        except (FileNotFoundError, ValueError):
            recorded_pid = process.pid

        if recorded_pid != process.pid:
            logger.error("%s contains pid %d, not the master %d started here: signalling only %d",
                         pid_file, recorded_pid, process.pid, process.pid)

        for sig in (signal.SIGTERM, signal.SIGKILL):
            logger.warning("sending %s to Dovecot master %d", sig.name, process.pid)
            process.send_signal(sig)
            try:
                process.wait(timeout=_KILL_TIMEOUT)
                return
            except subprocess.TimeoutExpired:
                continue

        logger.error("Dovecot master %d did not exit after SIGKILL", process.pid)

    def _reap_failed_process(self) -> None:
        """Kill and reap a master that failed to start, so no half-started instance remains."""
        process = self._process
        self._process = None
        if process is None or process.poll() is not None:
            return
        self._kill_master(process)

    def _log_tails(self) -> str:
        """Return what Dovecot logged since the latest launch, from both log files."""
        sections = [
            f"--- {path}\n{_tail(path, self._log_offsets.get(path, 0))}"
            for path in (self.log_path, self.output_path)
        ]
        return "\n".join(sections)


class _PortInUse(Exception):
    """The chosen IMAP port was taken before Dovecot bound it."""


@dataclass
class ImapAccount:
    """A user on a running `Dovecot`, with shortcuts that log in as that user."""

    host: str
    port: int
    username: str
    password: str
    server: Dovecot = field(repr=False)

    def connect(self) -> IMAPClient:
        """Return an IMAPClient logged in as this user (see `Dovecot.connect`)."""
        return self.server.connect(self.username, self.password)

    def append(self, raw: bytes, internaldate: datetime | None = None, folder: str = "INBOX",
               flags: tuple[bytes, ...] = ()) -> int:
        """Store `raw` in `folder` and return its UID (see `Dovecot.append`)."""
        return self.server.append(self.username, self.password, raw, folder=folder,
                                  internaldate=internaldate, flags=flags)

    def flags(self, folder: str = "INBOX") -> dict[int, tuple[bytes, ...]]:
        """Return the stored flags by UID without setting any (see `Dovecot.flags`)."""
        return self.server.flags(self.username, self.password, folder)

    def uidvalidity(self, folder: str = "INBOX") -> int:
        """Return the folder's UIDVALIDITY."""
        return self.server.uidvalidity(self.username, self.password, folder)

    def reset_uidvalidity(self, folder: str = "INBOX") -> None:
        """Change the folder's UIDVALIDITY and keep its messages (see `Dovecot.reset_uidvalidity`)."""
        self.server.reset_uidvalidity(self.username, self.password, folder)


class _RecordingHandler:
    """aiosmtpd handler that stores accepted messages in its `SmtpSink`."""

    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        # The sink enforces AUTH here rather than with aiosmtpd's auth_required, which
        # warns on every connection when TLS is not required as well.
        if self._sink.credentials is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"

        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return self._sink._record(session, envelope)


class SmtpSink:
    """aiosmtpd Controller on 127.0.0.1 and a free port that records every message it receives.

    `fail_next=N` replies to the next N DATA commands with "451 4.3.0 try again later"
    and records nothing for them. `rejected` counts those replies, and `fail_next` can be
    set again between sends. With `credentials=(login, password)` the server advertises
    AUTH PLAIN and LOGIN without TLS, requires AUTH before MAIL, and accepts only that pair.
    """

    host: str
    port: int
    messages: list[Received]

    def __init__(self, *, fail_next: int = 0, credentials: tuple[str, str] | None = None) -> None:
        if fail_next < 0:
            raise ValueError(f"invalid fail_next {fail_next}: it must be 0 or more")

        self.host = LOOPBACK
        self.port = 0
        self.messages = []
        self.fail_next = fail_next
        self.rejected = 0
        self.credentials = credentials

        self._condition = threading.Condition()
        self._controller: Controller | None = None

    def start(self) -> None:
        """Start the SMTP server thread and return once it accepts connections on its port.

        A free port taken by another process in the meantime is replaced by a new one,
        up to three times. Raises RuntimeError if the sink is already running.
        """
        if self._controller is not None:
            raise RuntimeError(f"SMTP sink is already running on port {self.port}")

        for attempt in range(1, _PORT_ATTEMPTS + 1):
            self.port = find_free_port()
            controller = Controller(_RecordingHandler(self), hostname=self.host, port=self.port,
                                    ready_timeout=10.0, server_hostname="intake-test-sink",
                                    **self._auth_arguments())
            try:
                controller.start()
            except OSError as error:
                if attempt == _PORT_ATTEMPTS:
                    raise
                logger.warning("SMTP sink could not bind port %d (%s), retrying with a new port",
                               self.port, error)
                continue

            self._controller = controller
            logger.info("SMTP sink started on %s:%d", self.host, self.port)
            return

    def stop(self) -> None:
        """Stop the server thread. Calling stop() on a stopped sink does nothing."""
        controller = self._controller
        if controller is None:
            return
        self._controller = None
        controller.stop()
        logger.info("SMTP sink on port %d stopped after %d messages and %d rejections",
                    self.port, len(self.messages), self.rejected)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Wait until at least `count` messages were accepted and return a copy of all of them.

        Raises TimeoutError, naming how many arrived, after `timeout` seconds.
        """
        with self._condition:
            arrived = self._condition.wait_for(lambda: len(self.messages) >= count, timeout=timeout)
            if not arrived:
                raise TimeoutError(
                    f"SMTP sink on port {self.port} received {len(self.messages)} of {count} "
                    f"expected messages within {timeout} s ({self.rejected} DATA commands rejected)"
                )
            return list(self.messages)

    def _record(self, session: Session, envelope: Envelope) -> str:
        """Store one message or reject it, and return the SMTP reply. Runs on the server thread."""
        with self._condition:
            if self.fail_next > 0:
                self.fail_next -= 1
                self.rejected += 1
                logger.info("SMTP sink rejected DATA from %s as asked (%d more to reject)",
                            envelope.mail_from, self.fail_next)
                return "451 4.3.0 try again later"

            content = envelope.original_content if envelope.original_content is not None else envelope.content
            data = content if isinstance(content, bytes) else str(content).encode("utf-8")
            auth_login = session.auth_data if isinstance(session.auth_data, str) else None

            self.messages.append(Received(
                mail_from=str(envelope.mail_from),
                rcpt_tos=list(envelope.rcpt_tos),
                data=data,
                auth_login=auth_login,
            ))
            self._condition.notify_all()

        return "250 2.0.0 Message accepted"

    def _auth_arguments(self) -> dict[str, Any]:
        if self.credentials is None:
            return {}
        return {
            "authenticator": self._authenticate,
            # Loopback test traffic only, and the sink has no certificate.
            "auth_require_tls": False,
        }

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope,
                      mechanism: str, auth_data: object) -> AuthResult:
        if self.credentials is None or not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)

        login = auth_data.login.decode("utf-8", errors="replace")
        password = auth_data.password.decode("utf-8", errors="replace")
        expected_login, expected_password = self.credentials

        # Compare both in constant time, as a real server would.
        login_matches = secrets.compare_digest(login.encode(), expected_login.encode())
        password_matches = secrets.compare_digest(password.encode(), expected_password.encode())
        if login_matches and password_matches:
            return AuthResult(success=True, auth_data=login)

        logger.info("SMTP sink rejected AUTH %s for login %r", mechanism, login)
        return AuthResult(success=False, handled=False)


__all__: Sequence[str] = (
    "DOVECOT_INSTALL_HINT",
    "Dovecot",
    "ImapAccount",
    "LOOPBACK",
    "Received",
    "SmtpSink",
    "find_dovecot_binary",
    "find_free_port",
)

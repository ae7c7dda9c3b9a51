"""Convert old-format Office files (.doc, .wps, .et) to .docx/.xlsx with LibreOffice.

LibreOffice runs headless in a private temporary folder with its own user profile,
so conversions running at the same time do not share a profile lock, and the
folder is removed afterwards whatever happened. LibreOffice is optional: without
it, conversion raises FileProblem("conversion-unavailable") and the caller returns
the file to the sender with a request for .docx/.xlsx.

LibreOffice 7.4's filter registry lists .wps (WPS Writer) under its "MS Word 97"
filter and .et (WPS Spreadsheets) under "MS Excel 97", so such files are Word and
Excel 97-2003 files in an OLE container, and sniff() reports them as DOC and XLS.
NOTE: this has been checked with .wps/.et files written by LibreOffice, not with
files saved by WPS Office itself.
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import msoffcrypto

from parsers.problems import FileProblem
from parsers.sniff import FileKind, sniff

log = logging.getLogger(__name__)

#: LibreOffice export filter for each target extension.
_EXPORT_FILTERS = {
    "docx": "MS Word 2007 XML",
    "xlsx": "Calc MS Excel 2007 XML",
}

#: The sniffed kind a source must have for each target, checked before LibreOffice starts.
_SOURCE_KINDS = {
    "docx": FileKind.DOC,
    "xlsx": FileKind.XLS,
}

_SUFFIX_PATTERN = re.compile(r"[a-z0-9]{1,8}")

#: Seconds to wait for the killed process group to exit before the folder is removed.
_KILL_GRACE = 5.0

#: Characters of LibreOffice's output kept in a failure reason.
_REASON_CHARS = 300


def libreoffice_binary() -> str | None:
    """Return the path of `soffice` or `libreoffice` on PATH, or None when neither is installed."""
    for name in ("soffice", "libreoffice"):
        path = shutil.which(name)
        if path is not None:
            return path
    return None


def convert_office(data: bytes, *, source_suffix: str, target: str, timeout: float = 120) -> bytes:
    """Convert the Word or Excel 97-2003 file in `data` and return the bytes of the new file.

    `source_suffix` is the sender's extension (".doc", "wps", ".et" ...). LibreOffice
    uses it as a hint when it detects the format. `target` is "docx" or "xlsx".
    `timeout` is in seconds. Its default of 120 s is an estimate for large files,
    because a one-page file took about 1 s with LibreOffice 7.4 on a 2-core machine,
    profile creation included.

    Raises FileProblem("conversion-unavailable", format=, target=) when LibreOffice
    is not installed, FileProblem("encrypted-file") when the file has an open
    password, and FileProblem("conversion-failed", format=, target=, reason=) when
    the file is not of the kind `target` needs, LibreOffice exits non-zero or
    times out (its process group is killed), or no valid output file appears.
    Raises ValueError for an unknown `target` or a suffix that is not 1-8 letters
    or digits, because those are the caller's mistakes.
    """
    suffix = source_suffix.lower().lstrip(".")
    if target not in _EXPORT_FILTERS:
        raise ValueError(f"unsupported conversion target {target!r}, expected one of {sorted(_EXPORT_FILTERS)}")
    if not _SUFFIX_PATTERN.fullmatch(suffix):
        raise ValueError(f"invalid source suffix {source_suffix!r}, expected 1-8 letters or digits")
    detail = {"format": f".{suffix}", "target": f".{target}"}

    binary = libreoffice_binary()
    if binary is None:
        raise FileProblem("conversion-unavailable", **detail)

    _check_source(data, target, detail)

    with tempfile.TemporaryDirectory(prefix="intake-convert-") as folder:
        return _run_conversion(binary, Path(folder), data, suffix, target, timeout, detail)


def _check_source(data: bytes, target: str, detail: dict[str, str]) -> None:
    """Raise FileProblem unless `data` is an unencrypted file of the kind `target` needs.

    Without this check LibreOffice imports unknown bytes as plain text and returns a
    .docx of garbage, so the sender would not learn that the file is broken.
    """
    kind = sniff(data)
    if kind != _SOURCE_KINDS[target]:
        raise FileProblem("conversion-failed", **detail,
                          reason=f"content is {kind.value}, expected {_SOURCE_KINDS[target].value}")

    try:
        encrypted = msoffcrypto.OfficeFile(io.BytesIO(data)).is_encrypted()
    except Exception as err:  # msoffcrypto raises its own errors, struct.error and others on unusual files
        log.debug("encryption check failed, leaving the file to LibreOffice: %s: %s", type(err).__name__, err)
        return
    if encrypted:
        raise FileProblem("encrypted-file")


def _run_conversion(binary: str, folder: Path, data: bytes, suffix: str, target: str, timeout: float,
                    detail: dict[str, str]) -> bytes:
    """Run LibreOffice on `data` inside `folder` and return the converted bytes."""
    source = folder / f"source.{suffix}"
    source.write_bytes(data)
    outdir = folder / "out"
    profile = folder / "profile"
    command = [
        binary,
        f"-env:UserInstallation={profile.as_uri()}",
        "--headless",
        "--norestore",
        "--nolockcheck",
        "--convert-to", f"{target}:{_EXPORT_FILTERS[target]}",
        "--outdir", str(outdir),
        str(source),
    ]

    started = time.monotonic()
    # A new session makes LibreOffice and its children one process group, so a
    # timeout kills exactly the processes this call started.
    try:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, start_new_session=True, cwd=folder)
    except OSError as err:
        log.warning("LibreOffice could not be started (%s): %s", binary, err)
        raise FileProblem("conversion-unavailable", **detail) from err
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        log.warning("LibreOffice timed out after %g s converting .%s to .%s (pid %d)",
                    timeout, suffix, target, process.pid)
        raise FileProblem("conversion-failed", **detail, reason=f"timed out after {timeout:g} s") from None
    elapsed = time.monotonic() - started

    message = output.decode("utf-8", "replace").strip()[-_REASON_CHARS:]
    if process.returncode != 0:
        log.warning("LibreOffice exited with %d converting .%s to .%s: %s", process.returncode, suffix, target,
                    message)
        raise FileProblem("conversion-failed", **detail, reason=f"exit code {process.returncode}: {message}")

    # LibreOffice exits 0 when it cannot load the source, so the output file is the real check.
    result = outdir / f"source.{target}"
    if not result.is_file():
        log.warning("LibreOffice wrote no .%s for a .%s file: %s", target, suffix, message)
        raise FileProblem("conversion-failed", **detail, reason=f"no output file: {message}")
    converted = result.read_bytes()
    converted_kind = sniff(converted)
    if converted_kind.value != target:
        log.warning("LibreOffice wrote a %s file, not .%s, for a .%s file", converted_kind.value, target, suffix)
        raise FileProblem("conversion-failed", **detail, reason=f"output is {converted_kind.value}, not {target}")

    log.info("converted .%s (%d bytes) to .%s (%d bytes) in %.1f s", suffix, len(data), target, len(converted),
             elapsed)
    return converted


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Kill the process group led by `process`, reap the leader and wait for the rest to exit.

    The leader is not reaped yet when this is called, so its pid, which is also the
    group id, cannot have been reused by an unrelated process. The wait lets the
    temporary folder be removed after LibreOffice has stopped writing to it.
    """
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        process.communicate(timeout=_KILL_GRACE)
    except subprocess.TimeoutExpired:
        log.warning("LibreOffice process %d did not exit %.0f s after SIGKILL", process.pid, _KILL_GRACE)

    deadline = time.monotonic() + _KILL_GRACE
    while _group_alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def _group_alive(group: int) -> bool:
    """Return whether a process of `group` is still running (zombies do not count).

    Reads /proc, so outside Linux it returns False and the caller does not wait.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        return False
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name in brackets may contain spaces, so split after its closing bracket.
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 2 and fields[2] == str(group) and fields[0] != "Z":
            return True
    return False

"""Conversion of .doc, .wps and .et files to .docx/.xlsx with LibreOffice.

The old-format inputs are made by LibreOffice itself from a .docx or .xlsx, then
converted back. Tests that run LibreOffice are skipped when it is not installed.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docx
import olefile
import openpyxl
import pytest

from parsers.convert import convert_office, libreoffice_binary
from parsers.document import read_docx
from parsers.problems import FileProblem
from parsers.sniff import FileKind, sniff
from tests import builders

requires_libreoffice = pytest.mark.skipif(
    libreoffice_binary() is None,
    reason="LibreOffice is not installed (apt-get install libreoffice-writer-nogui libreoffice-calc-nogui)",
)


def libreoffice_save(data: bytes, *, source_name: str, target: str, folder: Path) -> bytes:
    """Convert `data` with LibreOffice to `target` ("doc", "wps:MS Word 97" ...) and return the result.

    Used only to build old-format inputs, so it runs LibreOffice directly, not through convert_office.
    """
    binary = libreoffice_binary()
    assert binary is not None
    source = folder / source_name
    source.write_bytes(data)
    outdir = folder / "out"
    subprocess.run([binary, f"-env:UserInstallation={(folder / 'profile').as_uri()}", "--headless", "--norestore",
                    "--convert-to", target, "--outdir", str(outdir), str(source)],
                   check=True, capture_output=True, timeout=120)
    extension = target.split(":", 1)[0]
    return (outdir / f"{source.stem}.{extension}").read_bytes()


@pytest.fixture(scope="module")
def word97_report(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The Form 2 report saved by LibreOffice as a Word 97-2003 .doc."""
    if libreoffice_binary() is None:
        pytest.skip("LibreOffice is not installed (apt-get install libreoffice-writer-nogui libreoffice-calc-nogui)")
    return libreoffice_save(builders.form2_report("广东甲公司"), source_name="report.docx", target="doc",
                            folder=tmp_path_factory.mktemp("doc"))


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder that tempfile uses for this test, so leftovers of convert_office can be seen."""
    folder = tmp_path / "tempfiles"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def started_groups(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The process group ids of the processes that convert_office starts during the test."""
    groups: list[int] = []
    real_popen = subprocess.Popen

    def recording_popen(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        process = real_popen(*args, **kwargs)
        groups.append(os.getpgid(process.pid))
        return process

    monkeypatch.setattr(subprocess, "Popen", recording_popen)
    yield groups


def fake_soffice(folder: Path, script: str) -> Path:
    """Write an executable `soffice` shell script into `folder` and return the folder."""
    path = folder / "soffice"
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return folder


def paragraph_texts(data: bytes) -> list[str]:
    return [paragraph.text for paragraph in read_docx(data)]


# ---- Finding LibreOffice ----


def test_binary_found_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(fake_soffice(tmp_path, "exit 0")))

    assert libreoffice_binary() == str(tmp_path / "soffice")


def test_binary_missing_returns_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    assert libreoffice_binary() is None


def test_missing_libreoffice_raises_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(FileProblem) as caught:
        convert_office(b"any bytes", source_suffix=".WPS", target="docx")

    assert caught.value.code == "conversion-unavailable"
    assert caught.value.detail == {"format": ".wps", "target": ".docx"}


@pytest.mark.parametrize("suffix, target", [("doc", "pdf"), ("../doc", "docx"), ("", "docx"), ("d o c", "docx")])
def test_invalid_arguments_raise_value_error(suffix: str, target: str) -> None:
    with pytest.raises(ValueError):
        convert_office(b"", source_suffix=suffix, target=target)


# ---- Conversions ----


@requires_libreoffice
def test_doc_converts_to_docx(word97_report: bytes, private_tmp: Path) -> None:
    assert sniff(word97_report) == FileKind.DOC

    converted = convert_office(word97_report, source_suffix=".doc", target="docx")

    assert sniff(converted) == FileKind.DOCX
    assert paragraph_texts(converted) == paragraph_texts(builders.form2_report("广东甲公司"))
    assert list(private_tmp.iterdir()) == []


@requires_libreoffice
def test_wps_converts_to_docx(tmp_path: Path) -> None:
    # LibreOffice writes .wps with its "MS Word 97" filter, the format it expects of WPS Writer files.
    original = docx.Document()
    original.add_paragraph("一、项目基本情况")
    original.add_paragraph("WPS 文字保存的报告。")
    buffer = io.BytesIO()
    original.save(buffer)
    wps = libreoffice_save(buffer.getvalue(), source_name="report.docx", target="wps:MS Word 97", folder=tmp_path)

    converted = convert_office(wps, source_suffix="wps", target="docx")

    assert [p.text for p in docx.Document(io.BytesIO(converted)).paragraphs] == [
        "一、项目基本情况", "WPS 文字保存的报告。"]


@requires_libreoffice
def test_et_converts_to_xlsx(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "附件1"
    sheet.append(["单位名称", "财政资金（万元）"])
    sheet.append(["广东甲公司", 28])
    buffer = io.BytesIO()
    workbook.save(buffer)
    et = libreoffice_save(buffer.getvalue(), source_name="table.xlsx", target="et:MS Excel 97", folder=tmp_path)
    assert sniff(et) == FileKind.XLS

    converted = convert_office(et, source_suffix=".et", target="xlsx")

    result = openpyxl.load_workbook(io.BytesIO(converted))
    assert result.sheetnames == ["附件1"]
    assert [list(row) for row in result["附件1"].iter_rows(values_only=True)] == [
        ["单位名称", "财政资金（万元）"], ["广东甲公司", 28]]


@requires_libreoffice
def test_parallel_conversions_succeed(word97_report: bytes, private_tmp: Path) -> None:
    results: list[bytes] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(convert_office(word97_report, source_suffix="doc", target="docx"))
        except BaseException as err:  # collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)

    assert errors == []
    assert len(results) == 3
    assert all(sniff(result) == FileKind.DOCX for result in results)
    assert list(private_tmp.iterdir()) == []


# ---- Failures ----


@requires_libreoffice
def test_garbage_raises_failed(private_tmp: Path) -> None:
    garbage = bytes(range(256)) * 40

    with pytest.raises(FileProblem) as caught:
        convert_office(garbage, source_suffix="doc", target="docx")

    assert caught.value.code == "conversion-failed"
    assert caught.value.detail["format"] == ".doc"
    assert "expected doc" in caught.value.detail["reason"]
    assert list(private_tmp.iterdir()) == []


@requires_libreoffice
def test_wrong_kind_for_target_raises_failed(word97_report: bytes) -> None:
    with pytest.raises(FileProblem) as caught:
        convert_office(word97_report, source_suffix="et", target="xlsx")

    assert caught.value.code == "conversion-failed"
    assert "expected xls" in caught.value.detail["reason"]


def rewrite_word_stream(doc: bytes, folder: Path, change: Any) -> bytes:
    """Return `doc` with its WordDocument stream replaced by change(stream), same length."""
    path = folder / "changed.doc"
    path.write_bytes(doc)
    with olefile.OleFileIO(str(path), write_mode=True) as ole:
        stream = ole.openstream("WordDocument").read()
        ole.write_stream("WordDocument", change(stream))
    return path.read_bytes()


@requires_libreoffice
def test_unloadable_doc_raises_failed(word97_report: bytes, tmp_path: Path, private_tmp: Path) -> None:
    # An all-zero WordDocument stream passes the sniff check, so LibreOffice itself rejects it.
    broken = rewrite_word_stream(word97_report, tmp_path, lambda stream: bytes(len(stream)))
    assert sniff(broken) == FileKind.DOC

    with pytest.raises(FileProblem) as caught:
        convert_office(broken, source_suffix="doc", target="docx")

    assert caught.value.code == "conversion-failed"
    assert caught.value.detail["reason"].startswith("no output file")
    assert list(private_tmp.iterdir()) == []


@requires_libreoffice
def test_encrypted_doc_raises_encrypted(word97_report: bytes, tmp_path: Path) -> None:
    # fEncrypted is bit 0 of byte 11 of the FIB at the start of the WordDocument stream.
    def set_encrypted(stream: bytes) -> bytes:
        return stream[:11] + bytes([stream[11] | 0x01]) + stream[12:]

    flagged = rewrite_word_stream(word97_report, tmp_path, set_encrypted)

    with pytest.raises(FileProblem) as caught:
        convert_office(flagged, source_suffix="doc", target="docx")

    assert caught.value.code == "encrypted-file"


@requires_libreoffice
def test_nonzero_exit_raises_failed(word97_report: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(fake_soffice(tmp_path, "echo 'simulated crash' >&2; exit 3")))

    with pytest.raises(FileProblem) as caught:
        convert_office(word97_report, source_suffix="doc", target="docx")

    assert caught.value.code == "conversion-failed"
    assert caught.value.detail["reason"] == "exit code 3: simulated crash"


def live_members(group: int) -> list[int]:
    """Return the pids of processes in `group` that have not exited (zombies excluded)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2:].split()
        if fields[2] == str(group) and fields[0] != "Z":
            members.append(int(entry.name))
    return members


@requires_libreoffice
@pytest.mark.parametrize("timeout", [0.01, 0.4])
def test_timeout_kills_group(word97_report: bytes, timeout: float, private_tmp: Path,
                             started_groups: list[int]) -> None:
    # On 2 cores both timeouts expire while oosplash and soffice.bin are still loading.
    with pytest.raises(FileProblem) as caught:
        convert_office(word97_report, source_suffix="doc", target="docx", timeout=timeout)

    assert caught.value.code == "conversion-failed"
    assert caught.value.detail["reason"] == f"timed out after {timeout:g} s"
    assert len(started_groups) == 1
    assert live_members(started_groups[0]) == []
    assert list(private_tmp.iterdir()) == []


@requires_libreoffice
def test_timeout_spares_other_processes(word97_report: bytes, tmp_path: Path) -> None:
    # A process outside the conversion's group must survive its timeout.
    bystander = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        with pytest.raises(FileProblem):
            convert_office(word97_report, source_suffix="doc", target="docx", timeout=0.4)

        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait(timeout=10)


def test_binary_falls_back_to_libreoffice(monkeypatch: pytest.MonkeyPatch) -> None:
    found = {"libreoffice": "/opt/lo/libreoffice"}
    monkeypatch.setattr(shutil, "which", lambda name: found.get(name))

    assert libreoffice_binary() == "/opt/lo/libreoffice"

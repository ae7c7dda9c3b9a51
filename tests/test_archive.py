"""Tests for parsers.archive.expand_zip and parsers.sniff on archives that senders make."""

from __future__ import annotations

import hashlib
import io
import struct
import zipfile
import zlib

import msoffcrypto
import pytest

from parsers.archive import ArchiveLimits, expand_zip
from parsers.problems import FileProblem
from parsers.sniff import FileKind, sniff
from tests.builders import form1_row, form1_workbook, form2_report, inline_image_png, zip_archive

REPORT_NAME = "附件2/佛山市恒丰五金制品有限公司（张喆）.docx"

_ZIP_ENCRYPTED_FLAG = 0x1
_ZIP_UTF8_FLAG = 0x800


@pytest.fixture(scope="module")
def report() -> bytes:
    return form2_report("佛山市恒丰五金制品有限公司")


def _plain_zip(members: dict[str, bytes]) -> bytes:
    """Return a deflated zip written by zipfile, names as given (backslashes kept)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _incompressible(size: int) -> bytes:
    """Return `size` deterministic bytes that deflate cannot shrink."""
    blocks = (hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(size // 32 + 1))
    return b"".join(blocks)[:size]


def _patch_members(data: bytes, *, declared_size: int | None = None, crc: int | None = None,
                   clear_flags: int = 0) -> bytes:
    """Rewrite every member's declared size, CRC or flags in both the local and central headers."""
    patched = bytearray(data)
    end = data.rindex(b"PK\x05\x06")
    count, _size, position = struct.unpack_from("<HII", data, end + 10)
    for _ in range(count):
        name_length, extra_length, comment_length = struct.unpack_from("<HHH", data, position + 28)
        local, = struct.unpack_from("<I", data, position + 42)
        if declared_size is not None:
            struct.pack_into("<I", patched, position + 24, declared_size)
            struct.pack_into("<I", patched, local + 22, declared_size)
        if crc is not None:
            struct.pack_into("<I", patched, position + 16, crc)
            struct.pack_into("<I", patched, local + 14, crc)
        for flags_at in (position + 8, local + 6):
            flags, = struct.unpack_from("<H", data, flags_at)
            struct.pack_into("<H", patched, flags_at, flags & ~clear_flags)
        position += 46 + name_length + extra_length + comment_length
    return bytes(patched)


def _zipcrypto_zip(name: str, content: bytes, password: bytes) -> bytes:
    """Return a one-member stored zip encrypted with traditional PKWARE (ZipCrypto) encryption."""
    crc = zlib.crc32(content)
    keys = [0x12345678, 0x23456789, 0x34567890]

    def crc_update(value: int, byte: int) -> int:
        return ~zlib.crc32(bytes([byte]), ~value & 0xFFFFFFFF) & 0xFFFFFFFF

    def update_keys(byte: int) -> None:
        keys[0] = crc_update(keys[0], byte)
        keys[1] = ((keys[1] + (keys[0] & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        keys[2] = crc_update(keys[2], keys[1] >> 24)

    def key_byte() -> int:
        temp = (keys[2] | 2) & 0xFFFF
        return ((temp * (temp ^ 1)) >> 8) & 0xFF

    for byte in password:
        update_keys(byte)
    encrypted = bytearray()
    # The 12-byte encryption header ends with the CRC's high byte, which readers check.
    for byte in bytes(range(11)) + bytes([crc >> 24]) + content:
        encrypted.append(byte ^ key_byte())
        update_keys(byte)

    raw_name = name.encode("utf-8")
    flags = _ZIP_ENCRYPTED_FLAG | _ZIP_UTF8_FLAG
    dos_time, dos_date = 0x4BC0, 0x5128
    local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, flags, 0, dos_time, dos_date, crc,
                        len(encrypted), len(content), len(raw_name), 0) + raw_name + bytes(encrypted)
    central = struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, flags, 0, dos_time, dos_date, crc,
                          len(encrypted), len(content), len(raw_name), 0, 0, 0, 0, 0x20, 0) + raw_name
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, len(central), len(local), 0)
    return local + central + end


def _encrypted_xlsx() -> bytes:
    """Return a Form 1 workbook saved with an open password, as Excel does (an OLE container)."""
    encrypted = io.BytesIO()
    msoffcrypto.OfficeFile(io.BytesIO(form1_workbook([form1_row(2)]))).encrypt("123456", encrypted)
    return encrypted.getvalue()


def _ole_with_stream(name: str) -> bytes:
    """Return an OLE compound file whose one top-level stream `EncryptedPackage` is renamed `name`."""
    data = bytearray(_encrypted_xlsx())
    old = "EncryptedPackage".encode("utf-16-le")
    start = 0
    while True:
        at = data.find(old, start)
        assert at >= 0, "EncryptedPackage directory entry not found"
        # A directory entry is 128-byte aligned and stores the name's byte length at offset 64.
        if at % 128 == 0 and struct.unpack_from("<H", data, at + 64)[0] == len(old) + 2:
            break
        start = at + 1
    encoded = (name + "\0").encode("utf-16-le")
    data[at:at + 64] = encoded.ljust(64, b"\0")
    struct.pack_into("<H", data, at + 64, len(encoded))
    return bytes(data)


def _problems(data: bytes, limits: ArchiveLimits = ArchiveLimits()) -> dict[str, str]:
    return {name: problem.code for name, problem in expand_zip(data, limits).problems}


def _names(data: bytes, limits: ArchiveLimits = ArchiveLimits()) -> list[str]:
    return [member.name for member in expand_zip(data, limits).members]


# --- member names -----------------------------------------------------------


def test_expand_zip_gbk_names_without_flag(report: bytes) -> None:
    data = zip_archive({REPORT_NAME: report, "附件2/中山市宏达灯饰（王堃 朱镕基）.docx": b"second"}, names="gbk")
    expansion = expand_zip(data)

    assert [m.name for m in expansion.members] == [REPORT_NAME, "附件2/中山市宏达灯饰（王堃 朱镕基）.docx"]
    assert expansion.members[0].data == report
    assert expansion.problems == []


def test_expand_zip_gbk_name_flag_really_clear(report: bytes) -> None:
    data = zip_archive({REPORT_NAME: report}, names="gbk")
    info = zipfile.ZipFile(io.BytesIO(data)).infolist()[0]

    assert not info.flag_bits & _ZIP_UTF8_FLAG
    assert info.filename != REPORT_NAME
    assert _names(data) == [REPORT_NAME]


def test_expand_zip_utf8_flag_names(report: bytes) -> None:
    data = zip_archive({REPORT_NAME: report, "附件2/江门市锦丰（李珺 黄昇 刘玥）.docx": b"x"}, names="utf-8")

    assert _names(data) == [REPORT_NAME, "附件2/江门市锦丰（李珺 黄昇 刘玥）.docx"]


def test_expand_zip_utf8_names_without_flag() -> None:
    """Some archivers write UTF-8 names but leave the UTF-8 flag clear."""
    data = _patch_members(_plain_zip({"报告（张喆）.docx": b"x"}), clear_flags=_ZIP_UTF8_FLAG)

    assert not zipfile.ZipFile(io.BytesIO(data)).infolist()[0].flag_bits & _ZIP_UTF8_FLAG
    assert _names(data) == ["报告（张喆）.docx"]


def test_expand_zip_ascii_names() -> None:
    assert _names(zip_archive({"form2/report.docx": b"x"}, names="gbk")) == ["form2/report.docx"]


def test_expand_zip_backslash_separators() -> None:
    data = zip_archive({"附件2\\佛山市\\报告.docx": b"x"}, names="gbk")

    assert _names(data) == ["附件2/佛山市/报告.docx"]


def test_expand_zip_gbk_trail_byte_0x5c_kept() -> None:
    """錦 and 誠 end in byte 0x5C in GBK, which is also the backslash."""
    assert "錦".encode("gbk")[1:] == b"\\"
    data = zip_archive({"附件2\\錦誠電子.docx": b"x"}, names="gbk")

    assert _names(data) == ["附件2/錦誠電子.docx"]


def test_expand_zip_directories_skipped() -> None:
    data = _plain_zip({"附件2/": b"", "附件2/报告.docx": b"x"})

    assert _names(data) == ["附件2/报告.docx"]


def test_expand_zip_backslash_directory_skipped() -> None:
    """Windows tools that write backslash paths write folder entries as "附件2\\" too."""
    data = _plain_zip({"附件2\\": b"", "附件2\\报告.docx": b"x"})

    assert _names(data) == ["附件2/报告.docx"]


# --- junk entries -----------------------------------------------------------


def test_expand_zip_macosx_junk_skipped(report: bytes) -> None:
    data = zip_archive({
        REPORT_NAME: report,
        "__MACOSX/附件2/._佛山市恒丰五金制品有限公司（张喆）.docx": b"\x00\x05\x16\x07",
        "__MACOSX/._附件2": b"\x00\x05\x16\x07",
    }, names="utf-8")
    expansion = expand_zip(data)

    assert [m.name for m in expansion.members] == [REPORT_NAME]
    assert expansion.problems == []


@pytest.mark.parametrize("junk", [".DS_Store", "附件2/.DS_Store", "Thumbs.db", "附件2/desktop.ini"])
def test_expand_zip_system_files_skipped(junk: str, report: bytes) -> None:
    data = zip_archive({junk: b"junk", REPORT_NAME: report}, names="gbk")

    assert _names(data) == [REPORT_NAME]


# --- unsafe paths -----------------------------------------------------------


@pytest.mark.parametrize("name", [
    "../报告.docx",
    "附件2/../../报告.docx",
    "..\\报告.docx",
    "/etc/报告.docx",
    "\\报告.docx",
    "C:/Users/报告.docx",
    "C:\\Users\\报告.docx",
])
def test_expand_zip_unsafe_path_refused(name: str) -> None:
    data = _plain_zip({name: b"x", "safe.docx": b"y"})
    expansion = expand_zip(data)
    problems = {member: problem.code for member, problem in expansion.problems}

    assert [m.name for m in expansion.members] == ["safe.docx"]
    assert list(problems.values()) == ["unsafe-path"]


def test_expand_zip_unsafe_path_detail_names_member() -> None:
    expansion = expand_zip(_plain_zip({"../报告.docx": b"x"}))
    name, problem = expansion.problems[0]

    assert name == "../报告.docx"
    assert isinstance(problem, FileProblem)
    assert problem.detail["member"] == "../报告.docx"


def test_expand_zip_unsafe_gbk_path_refused() -> None:
    data = zip_archive({"../附件2/报告.docx": b"x"}, names="gbk")

    assert _problems(data) == {"../附件2/报告.docx": "unsafe-path"}


def test_expand_zip_dots_inside_name_allowed() -> None:
    data = _plain_zip({"附件2/报告..最终版.docx": b"x", "附件2/...docx": b"y"})

    assert _names(data) == ["附件2/报告..最终版.docx", "附件2/...docx"]


# --- limits -----------------------------------------------------------------


def test_expand_zip_member_count_limit() -> None:
    data = _plain_zip({f"报告{i}.docx": b"x" for i in range(6)})

    with pytest.raises(FileProblem) as raised:
        expand_zip(data, ArchiveLimits(max_members=5))

    assert raised.value.code == "too-many-members"
    assert raised.value.detail["count"] == 6
    assert raised.value.detail["limit"] == 5


def test_expand_zip_member_count_at_limit() -> None:
    data = _plain_zip({f"报告{i}.docx": b"x" for i in range(5)})

    assert len(_names(data, ArchiveLimits(max_members=5))) == 5


def test_expand_zip_member_count_ignores_directories() -> None:
    data = _plain_zip({"a/": b"", "b/": b"", "a/1.docx": b"x", "b/2.docx": b"y"})

    assert _names(data, ArchiveLimits(max_members=2)) == ["a/1.docx", "b/2.docx"]


def test_expand_zip_declared_size_limit() -> None:
    data = _plain_zip({"big.docx": _incompressible(100 * 1024), "small.docx": b"x"})
    expansion = expand_zip(data, ArchiveLimits(max_member_bytes=64 * 1024))
    problems = dict(expansion.problems)

    assert [m.name for m in expansion.members] == ["small.docx"]
    assert problems["big.docx"].code == "member-too-large"
    assert problems["big.docx"].detail["limit"] == 64 * 1024
    assert problems["big.docx"].detail["size"] == 100 * 1024


def test_expand_zip_size_at_limit_allowed() -> None:
    content = _incompressible(64 * 1024)
    expansion = expand_zip(_plain_zip({"exact.docx": content}), ArchiveLimits(max_member_bytes=64 * 1024))

    assert [m.data for m in expansion.members] == [content]


def test_expand_zip_actual_size_beyond_declared() -> None:
    """A member declares 100 bytes but inflates to 2 MiB, and it is never read past its declared size.

    zipfile stops at the declared size and then fails the CRC check, so the member
    is reported unreadable or too large, and none of its bytes come back.
    """
    bomb = _patch_members(_plain_zip({"bomb.docx": bytes(2 * 1024 * 1024)}), declared_size=100)
    expansion = expand_zip(bomb, ArchiveLimits(max_member_bytes=64 * 1024, max_ratio=1e9))
    problems = {name: problem.code for name, problem in expansion.problems}

    assert expansion.members == []
    assert problems["bomb.docx"] in {"member-too-large", "unreadable-member"}


def test_expand_zip_actual_size_with_forged_crc() -> None:
    """With a CRC forged for the declared 100 bytes, only those 100 bytes are read."""
    forged = _patch_members(_plain_zip({"bomb.docx": bytes(2 * 1024 * 1024)}),
                            declared_size=100, crc=zlib.crc32(bytes(100)))
    expansion = expand_zip(forged, ArchiveLimits(max_member_bytes=64 * 1024, max_ratio=1e9))

    assert all(len(m.data) <= 100 for m in expansion.members)


def test_expand_zip_ratio_limit() -> None:
    data = _plain_zip({"bomb.docx": bytes(256 * 1024), "report.docx": _incompressible(4096)})
    expansion = expand_zip(data)
    problems = dict(expansion.problems)

    assert [m.name for m in expansion.members] == ["report.docx"]
    assert problems["bomb.docx"].code == "suspicious-ratio"
    assert problems["bomb.docx"].detail["ratio"] > 200


def test_expand_zip_ratio_limit_configurable() -> None:
    data = _plain_zip({"zeros.docx": bytes(256 * 1024)})

    assert _names(data, ArchiveLimits(max_ratio=1e6)) == ["zeros.docx"]


def test_expand_zip_office_file_ratio_passes(report: bytes) -> None:
    workbook = form1_workbook([form1_row(2)])
    data = zip_archive({"附件1.xlsx": workbook, "附件2.docx": report}, names="gbk")

    assert _names(data) == ["附件1.xlsx", "附件2.docx"]


def test_expand_zip_total_size_limit() -> None:
    data = _plain_zip({"a.docx": _incompressible(40 * 1024), "b.docx": _incompressible(40 * 1024)})
    expansion = expand_zip(data, ArchiveLimits(max_total_bytes=60 * 1024))
    problems = dict(expansion.problems)

    assert [m.name for m in expansion.members] == ["a.docx"]
    assert problems["b.docx"].code == "archive-too-large"


# --- encryption and damage --------------------------------------------------


def test_expand_zip_encrypted_member(report: bytes) -> None:
    data = _zipcrypto_zip("佛山市报告.docx", report, b"858")

    assert zipfile.ZipFile(io.BytesIO(data)).read("佛山市报告.docx", pwd=b"858") == report
    assert _problems(data) == {"佛山市报告.docx": "encrypted-archive"}
    assert _names(data) == []


def test_expand_zip_broken_zip() -> None:
    with pytest.raises(FileProblem) as raised:
        expand_zip(b"PK\x03\x04 this is not really a zip archive")

    assert raised.value.code == "unreadable-archive"


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_expand_zip_truncated_zip(cut: float, report: bytes) -> None:
    data = zip_archive({REPORT_NAME: report}, names="gbk")

    with pytest.raises(FileProblem) as raised:
        expand_zip(data[:int(len(data) * cut)])

    assert raised.value.code == "unreadable-archive"


def test_expand_zip_empty_input() -> None:
    with pytest.raises(FileProblem) as raised:
        expand_zip(b"")

    assert raised.value.code == "unreadable-archive"


def test_expand_zip_corrupt_member_reported(report: bytes) -> None:
    data = _patch_members(zip_archive({"a.docx": report}, names="gbk"), crc=0)
    expansion = expand_zip(data)

    assert expansion.members == []
    assert _problems(data) == {"a.docx": "unreadable-member"}


def test_expand_zip_empty_archive() -> None:
    expansion = expand_zip(_plain_zip({}))

    assert expansion.members == []
    assert expansion.problems == []


# --- sniff ------------------------------------------------------------------


def test_sniff_xlsx() -> None:
    assert sniff(form1_workbook([form1_row(2)])) == FileKind.XLSX


def test_sniff_docx(report: bytes) -> None:
    assert sniff(report) == FileKind.DOCX


def test_sniff_zip(report: bytes) -> None:
    assert sniff(zip_archive({REPORT_NAME: report}, names="gbk")) == FileKind.ZIP


def test_sniff_zip_holding_xlsx_is_zip() -> None:
    assert sniff(zip_archive({"附件1.xlsx": form1_workbook([form1_row(2)])})) == FileKind.ZIP


def test_sniff_empty_zip() -> None:
    assert sniff(_plain_zip({})) == FileKind.ZIP


def test_sniff_broken_zip() -> None:
    assert sniff(b"PK\x03\x04 this is not really a zip archive") == FileKind.ZIP


def test_sniff_encrypted_office() -> None:
    assert sniff(_encrypted_xlsx()) == FileKind.ENCRYPTED_OFFICE


def test_sniff_ole() -> None:
    assert sniff(_ole_with_stream("Contents")) == FileKind.OLE


def test_sniff_xls() -> None:
    assert sniff(_ole_with_stream("Workbook")) == FileKind.XLS


def test_sniff_doc() -> None:
    assert sniff(_ole_with_stream("WordDocument")) == FileKind.DOC


def test_sniff_broken_ole() -> None:
    assert sniff(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100)) == FileKind.OLE


def test_sniff_png() -> None:
    assert sniff(inline_image_png()) == FileKind.IMAGE


def test_sniff_jpeg() -> None:
    assert sniff(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00") == FileKind.IMAGE


def test_sniff_pdf() -> None:
    assert sniff(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n") == FileKind.PDF


def test_sniff_7z() -> None:
    assert sniff(b"7z\xbc\xaf\x27\x1c\x00\x04" + bytes(24)) == FileKind.SEVEN_ZIP


def test_sniff_rar() -> None:
    assert sniff(b"Rar!\x1a\x07\x01\x00" + bytes(24)) == FileKind.RAR


@pytest.mark.parametrize("encoding", ["utf-8", "gbk"])
def test_sniff_text(encoding: str) -> None:
    note = "说明：附件为佛山市报送材料，联系人张喆，电话 13926471835。\r\n"

    assert sniff(note.encode(encoding)) == FileKind.TEXT


def test_sniff_unknown_binary() -> None:
    assert sniff(bytes(range(256))) == FileKind.UNKNOWN


def test_sniff_empty() -> None:
    assert sniff(b"") == FileKind.UNKNOWN


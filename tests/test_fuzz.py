"""Property tests: mutated real attachments and mails end as a result or a classified problem.

Every seed is a real fixture from tests/builders.py (or, for .xls, a minimal BIFF8 workbook
built here). The properties feed byte-level and structured mutations of the seeds to the
parsers and to rules.evaluate.evaluate, and require that each outcome is a parsed result,
a FileProblem, or a file outcome whose status and finding codes are known. Any other
exception fails the property, as does an example that runs past the deadline.

The example count is fixed so CI is reproducible, and INTAKE_FUZZ_EXAMPLES raises it for
a longer local hunt. Each @example pins an input that raised an unhandled exception when
it was found. Their byte offsets assume the seeds as built here. Deflate output can differ
between zlib builds, so on another build an offset may damage some other byte.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import re
import signal
import struct
import threading
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any
from unittest import mock

import openpyxl
import py7zr
import py7zr.helpers
from openpyxl.cell.cell import MergedCell
from hypothesis import example, given, settings
from hypothesis import strategies as st
from lxml import etree

from parsers.archive import Expansion, Member, expand_7z, expand_zip
from parsers.document import Paragraph, read_docx
from parsers.mime import ParsedMessage, parse_message
from parsers.problems import FileProblem
from parsers.sniff import FileKind, sniff
from parsers.spreadsheet import Sheet, SheetRow, read_workbook
from rules.campaign import Campaign, load_campaign
from rules.evaluate import (
    ACCEPTED,
    IGNORED,
    PARTIAL,
    PASSED,
    REJECTED,
    RETURNED,
    SKIPPED,
    Evaluation,
    FileOutcome,
    evaluate,
)
from rules.findings import MESSAGES, Finding
from rules.reports import ReportResult, read_report
from rules.tables import TableResult, read_table
from tests.builders import (
    DOCX_TYPE,
    FORM1_HEADER,
    FORM1_EXAMPLE_ROW,
    XLSX_TYPE,
    ZIP_TYPE,
    form1_row,
    form1_workbook,
    form2_report,
    form3_row,
    form3_workbook,
    forwarded,
    mail,
    zip_archive,
)
from tests.support import REPO

# ---------------------------------------------------------------------------
# Bounds
# ---------------------------------------------------------------------------

FUZZ_EXAMPLES = int(os.environ.get("INTAKE_FUZZ_EXAMPLES", "60"))
#: Hypothesis reports an example slower than this as a failure.
DEADLINE = timedelta(seconds=3)
#: An example still running after this is stopped, so a hang fails instead of blocking CI.
HARD_LIMIT_SECONDS = 30.0

# The profile is registered here and applied per test, so no other test file is affected.
# The example database is off because derandomize replays the same examples on every run.
settings.register_profile(
    "intake-fuzz",
    max_examples=FUZZ_EXAMPLES,
    deadline=DEADLINE,
    derandomize=True,
    database=None,
    print_blob=True,
)
FUZZ = settings.get_profile("intake-fuzz")

CAMPAIGN: Campaign = load_campaign(REPO / "rules" / "notice_2020_858.toml")
RECEIVED = datetime(2020, 9, 10, 9, 15, 20, tzinfo=timezone(timedelta(hours=8)))
PROVIDER = "广东星河数联科技有限公司 <xinghe@xinghe.example.cn>"
CITY = "佛山市工业和信息化局 <fsgxj@foshan.example.gov.cn>"
COMPANY = "佛山市顺德区恒丰五金制品有限公司"


class ExampleTimeout(Exception):
    """Raised inside an example that ran past HARD_LIMIT_SECONDS."""


@contextmanager
def bounded(seconds: float = HARD_LIMIT_SECONDS) -> Iterator[None]:
    """Raise ExampleTimeout inside the block once it has run for `seconds`.

    The alarm works only in the main thread on POSIX, and elsewhere the block runs unbounded.
    """
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise ExampleTimeout(f"no outcome within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ---------------------------------------------------------------------------
# Seeds
# ---------------------------------------------------------------------------

_CFB_END = 0xFFFFFFFE
_CFB_FREE = 0xFFFFFFFF
_CFB_FAT_SECTOR = 0xFFFFFFFD
_CFB_NO_STREAM = 0xFFFFFFFF


def _biff_record(kind: int, body: bytes) -> bytes:
    return struct.pack("<HH", kind, len(body)) + body


def _biff_bof(kind: int) -> bytes:
    # BIFF8 is version 0x0600, and the build and year fields are arbitrary. Kind 0x0005 is
    # the workbook globals and 0x0010 a worksheet.
    return _biff_record(0x0809, struct.pack("<HHHHII", 0x0600, kind, 0x0DBB, 0x07CC, 0, 0x06))


def _biff8_stream(title: str, rows: Sequence[Sequence[Any]]) -> bytes:
    """Return a BIFF8 Workbook stream with one sheet: text in a shared string table, numbers as NUMBER."""
    strings: list[str] = []
    index: dict[str, int] = {}
    cells: list[bytes] = []
    for r, values in enumerate(rows):
        for c, value in enumerate(values):
            if value is None:
                continue
            if isinstance(value, str):
                if value not in index:
                    index[value] = len(strings)
                    strings.append(value)
                cells.append(_biff_record(0x00FD, struct.pack("<HHHI", r, c, 0, index[value])))  # LABELSST
            else:
                cells.append(_biff_record(0x0203, struct.pack("<HHHd", r, c, 0, float(value))))  # NUMBER
    table = struct.pack("<II", len(strings), len(strings)) + b"".join(
        struct.pack("<HB", len(s), 1) + s.encode("utf-16-le") for s in strings)
    width = max(len(values) for values in rows)
    sheet = (_biff_bof(0x0010) + _biff_record(0x0200, struct.pack("<IIHHH", 0, len(rows), 0, width, 0))
             + b"".join(cells) + _biff_record(0x000A, b""))

    def workbook_globals(sheet_offset: int) -> bytes:
        sheet_entry = struct.pack("<IBBBB", sheet_offset, 0, 0, len(title), 1) + title.encode("utf-16-le")
        return (_biff_bof(0x0005) + _biff_record(0x0042, struct.pack("<H", 1200))  # CODEPAGE: UTF-16
                + _biff_record(0x0085, sheet_entry) + _biff_record(0x00FC, table) + _biff_record(0x000A, b""))

    return workbook_globals(len(workbook_globals(0))) + sheet


def _compound_file(stream: bytes) -> bytes:
    """Wrap `stream` as the Workbook stream of a version 3 compound file (512-byte sectors).

    Sector 0 contains the FAT and sector 1 the directory, and the stream follows. The stream
    is padded to 4096 bytes, because a shorter stream would belong in the mini stream.
    """
    stream = stream.ljust(max(4096, -(-len(stream) // 512) * 512), b"\0")
    count = len(stream) // 512
    fat = [_CFB_FAT_SECTOR, _CFB_END] + [3 + i for i in range(count - 1)] + [_CFB_END]
    fat += [_CFB_FREE] * (128 - len(fat))
    header = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(16) + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6)
              + bytes(6) + struct.pack("<IIIIIIIII", 0, 1, 1, 0, 4096, _CFB_END, 0, _CFB_END, 0)
              + struct.pack("<109I", 0, *([_CFB_FREE] * 108)))

    def entry(name: str, kind: int, child: int, start: int, size: int) -> bytes:
        raw = (name + "\0").encode("utf-16-le") if name else b""
        return (raw.ljust(64, b"\0") + struct.pack("<HBB", len(raw), kind, 1)
                + struct.pack("<III", _CFB_NO_STREAM, _CFB_NO_STREAM, child) + bytes(36)
                + struct.pack("<IQ", start, size))

    directory = (entry("Root Entry", 5, 1, _CFB_END, 0) + entry("Workbook", 2, _CFB_NO_STREAM, 2, len(stream))
                 + entry("", 0, _CFB_NO_STREAM, _CFB_NO_STREAM, 0) * 2)
    return header + struct.pack("<128I", *fat) + directory + stream


def form1_xls() -> bytes:
    """Return a Form 1 as an Excel 97-2003 .xls with two data rows and two numbered empty rows."""
    rows = [["附件1"], ["上云上平台实施项目情况汇总表（服务商填写）"], ["填报人：陈建华    联系方式：13925168820"],
            FORM1_HEADER, ["示例："], FORM1_EXAMPLE_ROW, form1_row(2), form1_row(3), [4], [5]]
    return _compound_file(_biff8_stream("附件1", rows))


def seven_zip(members: dict[str, bytes]) -> bytes:
    """Return a 7z archive of `members` with fixed timestamps, so the bytes are stable."""
    fixed = py7zr.helpers.ArchiveTimestamp(132441006000000000)  # 2020-09-08
    buffer = io.BytesIO()
    with mock.patch.object(py7zr.helpers.ArchiveTimestamp, "from_now", classmethod(lambda cls: fixed)):
        with py7zr.SevenZipFile(buffer, "w") as archive:
            for name, data in members.items():
                archive.writestr(data, name)
    return buffer.getvalue()


@functools.cache
def file_seeds() -> dict[str, bytes]:
    """Return real attachments, keyed by a name that describes each one."""
    report = form2_report(COMPANY)
    form1 = form1_workbook([form1_row(2), form1_row(3)])
    return {
        "form1.xlsx": form1,
        "form3.xlsx": form3_workbook([form3_row(2), form3_row(3)], header_line_breaks=True),
        "form1.xls": form1_xls(),
        "report.docx": report,
        "reports.zip": zip_archive({"附件2/甲公司.docx": report, "附件1.xlsx": form1}),
        "reports-gbk.zip": zip_archive({"附件2/乙公司.docx": report}, names="gbk"),
        "reports.7z": seven_zip({"附件2/丙公司.docx": report}),
    }


@functools.cache
def mail_seeds() -> dict[str, bytes]:
    """Return real submission mails: a provider's Form 1, a report pack and a city's forwarded mail."""
    files = file_seeds()
    inner = mail(sender=PROVIDER, subject="附件1 服务商汇总表", message_id="<inner@xinghe.example.cn>",
                 attachments=[("附件1-汇总表.xlsx", files["form1.xlsx"], XLSX_TYPE)],
                 received="Wed, 09 Sep 2020 17:02:11 +0800")
    return {
        "form1": mail(sender=PROVIDER, subject="报送附件1", message_id="<form1@xinghe.example.cn>",
                      attachments=[("附件1-汇总表.xlsx", files["form1.xlsx"], XLSX_TYPE)],
                      received="Thu, 10 Sep 2020 09:15:20 +0800"),
        "reports-gb2312": mail(sender=CITY, subject="附件2 报告和附件3 检查表", message_id="<pack@foshan.example.gov.cn>",
                               attachments=[("报告.zip", files["reports.zip"], ZIP_TYPE),
                                            ("附件3.xlsx", files["form3.xlsx"], XLSX_TYPE),
                                            ("报告.docx", files["report.docx"], DOCX_TYPE)],
                               charset="gb18030", filename_style="rfc2047",
                               received="Thu, 10 Sep 2020 10:00:00 +0800"),
        "forwarded": forwarded(sender=CITY, subject="转发：附件1", inner=inner,
                               message_id="<fwd@foshan.example.gov.cn>"),
    }


@functools.cache
def xml_parts(seed: str) -> tuple[str, ...]:
    """Return the names of the XML parts of an OOXML seed, the main parts first."""
    with zipfile.ZipFile(io.BytesIO(file_seeds()[seed])) as archive:
        names = [n for n in archive.namelist() if n.endswith((".xml", ".rels"))]
    main = ("xl/worksheets/sheet1.xml", "word/document.xml", "xl/workbook.xml", "xl/sharedStrings.xml",
            "[Content_Types].xml", "_rels/.rels", "xl/_rels/workbook.xml.rels", "word/_rels/document.xml.rels",
            "xl/styles.xml", "word/styles.xml", "word/numbering.xml")
    return tuple(sorted(names, key=lambda n: (main.index(n) if n in main else len(main), n)))


# ---------------------------------------------------------------------------
# Byte-level mutations
# ---------------------------------------------------------------------------

_SIGNATURES = (b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06", b"PK\x06\x06", b"7z\xbc\xaf\x27\x1c")
#: Offsets where container headers sit: the compound file's header, FAT, directory and stream start.
_FIXED_OFFSETS = (0, 32, 512, 1024, 1536)
_INTERESTING = (
    b"\x00", b"\xff", b"\x7f", b"\x80", b"\x00\x00", b"\xff\xff", b"\x00\x00\x00\x00", b"\xff\xff\xff\xff",
    b"\xff\xff\xff\x7f", b"\x00\x00\x00\x80", b"\xfe\xff\xff\xff", b"\x01\x00\x00\x00",
    b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06", b"<", b">", b"&", b'"', b"\r\n", b"\r\n\r\n", b"=?", b"?=",
    b"--", b"\xd0\xcf\x11\xe0",
)

_POSITION = st.integers(min_value=0, max_value=1 << 20)
_CHUNK = st.one_of(st.sampled_from(_INTERESTING), st.binary(min_size=1, max_size=16))

BYTE_OPERATIONS = st.one_of(
    st.tuples(st.just("flip"), _POSITION, st.integers(0, 7)),
    st.tuples(st.just("overwrite"), _POSITION, _CHUNK),
    st.tuples(st.just("insert"), _POSITION, st.one_of(_CHUNK, st.binary(min_size=17, max_size=256))),
    st.tuples(st.just("delete"), _POSITION, st.integers(1, 1024)),
    st.tuples(st.just("truncate"), _POSITION),
    st.tuples(st.just("duplicate"), _POSITION, _POSITION, st.integers(1, 4096)),
    st.tuples(st.just("structure"), st.integers(0, 63), st.integers(0, 127), _CHUNK),
)


def _structure_offsets(data: bytes) -> list[int]:
    """Return the offsets of archive signatures in `data`, followed by the fixed header offsets."""
    offsets = [m.start() for signature in _SIGNATURES for m in re.finditer(re.escape(signature), data)]
    return sorted(offsets) + [o for o in _FIXED_OFFSETS if o < len(data)]


def mutate_bytes(data: bytes, operations: Sequence[tuple[Any, ...]]) -> bytes:
    """Apply byte-level operations in order. Every position wraps around the current length."""
    buffer = bytearray(data)
    for operation in operations:
        kind, *args = operation
        size = len(buffer)
        if kind == "flip" and size:
            position, bit = args
            buffer[position % size] ^= 1 << bit
        elif kind == "overwrite":
            position, chunk = args
            at = position % (size + 1)
            buffer[at:at + len(chunk)] = chunk
        elif kind == "insert":
            position, chunk = args
            at = position % (size + 1)
            buffer[at:at] = chunk
        elif kind == "delete" and size:
            position, length = args
            at = position % size
            del buffer[at:at + length]
        elif kind == "truncate":
            (position,) = args
            del buffer[position % (size + 1):]
        elif kind == "duplicate" and size:
            source, target, length = args
            start = source % size
            chunk = bytes(buffer[start:start + length])
            at = target % (size + 1)
            buffer[at:at] = chunk
        elif kind == "structure":
            signature, offset, chunk = args
            offsets = _structure_offsets(bytes(buffer))
            if offsets:
                at = min(offsets[signature % len(offsets)] + offset, size)
                buffer[at:at + len(chunk)] = chunk
    return bytes(buffer)


# ---------------------------------------------------------------------------
# Structured mutations of OOXML parts
# ---------------------------------------------------------------------------

_MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_WORD_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_XML_SNIPPETS = (
    b"<!DOCTYPE r [<!ENTITY e 'x'>]>", b"&e;", b"&amp;", b"&#0;", b"&#xD800;", b"<![CDATA[x]]>", b"<!-- -->",
    b'<c r="XFD1048576" t="s"><v>99999</v></c>', b'<row r="0"/>', b'<row r="1048577"><c r="A1048577"><v>1</v></c></row>',
    b'<c r="A1" t="n"><v>NaN</v></c>', b'<c r="B7"><v>1e309</v></c>', b'<c r="B7" t="d"><v>not a date</v></c>',
    b'<c r="A7" t="b"><v>2</v></c>', b'<c r="C7" t="e"><v>#DIV/0!</v></c>', b'<c r="D7" t="inlineStr"><is/></c>',
    b'<c r="J7"><f>1/0</f></c>', b'<c r="K7"><f t="shared" ref="K7:K9" si="0">J7</f></c>', b"<f>",
    b'<dimension ref="A1:XFD1048576"/>', b'<mergeCell ref="A1:XFD1048576"/>', b'<col min="0" max="99999999"/>',
    b'<sheet name="" sheetId="0" r:id="rId99"/>', b'<si><t xml:space="preserve">\x01</t></si>',
    b"<w:p><w:r><w:t>\xe4\xb8\x80\xe3\x80\x81\xe9\xa1\xb9\xe7\x9b\xae</w:t></w:r></w:p>",
    b'<w:pStyle w:val=""/>', b"<w:numPr/>", b"<w:tbl><w:tr><w:tc/></w:tr></w:tbl>", b"<w:txbxContent/>",
    b"</w:body>", b"<w:body>", b'<?xml version="1.0" encoding="gb2312"?>', b'<?xml version="1.0" encoding="x"?>',
    b"\x00", b"\xff\xfe",
)
_REPLACEMENT_PARTS = (
    b"",
    b"<a/>",
    f'<worksheet xmlns="{_MAIN_NS}"/>'.encode(),
    f'<worksheet xmlns="{_MAIN_NS}"><sheetData><row><c><v>1</v></c></row></sheetData></worksheet>'.encode(),
    f'<workbook xmlns="{_MAIN_NS}"><sheets/></workbook>'.encode(),
    f'<sst xmlns="{_MAIN_NS}" count="1"/>'.encode(),
    f'<w:document xmlns:w="{_WORD_NS}"/>'.encode(),
    f'<w:document xmlns:w="{_WORD_NS}"><w:body><w:p/></w:body></w:document>'.encode(),
    f'<w:styles xmlns:w="{_WORD_NS}"><w:style/></w:styles>'.encode(),
    b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>',
    b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"/>',
)
_ATTRIBUTE_VALUES = (
    "", "0", "-1", "1", "A0", "A1", "XFD1048576", "ZZZZ9", "99999999999999999999", "1e309", "NaN", "s", "n", "b",
    "e", "str", "inlineStr", "d", "shared", "array", "rId999", "../../../x.xml", "/xl/missing.xml", "x" * 5000,
)
_TEXT_VALUES = st.one_of(
    st.sampled_from(["", "1e309", "-inf", "NaN", "99999999999", "-1", "0.5", "SUM(", "#REF!", "一、项目基本情况",
                     "2019", "x" * 40000]),
    # lxml rejects control characters other than tab and line ends, because XML 1.0 cannot contain them.
    st.text(alphabet=st.characters(exclude_categories=("Cs", "Cc")), max_size=40),
)

PART_OPERATIONS = st.one_of(
    st.tuples(st.just("remove"), st.integers(0, 1 << 16)),
    st.tuples(st.just("copy"), st.integers(0, 1 << 16)),
    st.tuples(st.just("text"), st.integers(0, 1 << 16), _TEXT_VALUES),
    st.tuples(st.just("attribute"), st.integers(0, 1 << 16), st.integers(0, 7),
              st.one_of(st.sampled_from(_ATTRIBUTE_VALUES), _TEXT_VALUES)),
    st.tuples(st.just("snippet"), st.integers(0, 1 << 16), st.sampled_from(_XML_SNIPPETS)),
    st.tuples(st.just("cut"), st.integers(0, 1 << 20)),
    st.tuples(st.just("replace"), st.sampled_from(_REPLACEMENT_PARTS)),
    st.tuples(st.just("bytes"), st.lists(BYTE_OPERATIONS, min_size=1, max_size=3)),
    st.tuples(st.just("drop")),
)


def _mutate_tree(part: bytes, kind: str, args: Sequence[Any]) -> bytes:
    """Apply an element-level operation. A part that is not XML is returned unchanged."""
    try:
        root = etree.fromstring(part, etree.XMLParser(resolve_entities=False, huge_tree=False))
    except etree.XMLSyntaxError:
        return part
    elements = list(root.iter())
    element = elements[args[0] % len(elements)]
    if kind == "remove" and element is not root:
        element.getparent().remove(element)
    elif kind == "copy" and element is not root:
        element.addnext(etree.fromstring(etree.tostring(element)))
    elif kind == "text":
        element.text = args[1]
    elif kind == "attribute":
        names = list(element.attrib) or ["r"]
        element.set(names[args[1] % len(names)], args[2])
    changed: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)
    return changed


def mutate_part(part: bytes, operation: tuple[Any, ...]) -> bytes | None:
    """Return the part after one structured operation, or None to leave it out of the package."""
    kind, *args = operation
    if kind in ("remove", "copy", "text", "attribute"):
        return _mutate_tree(part, kind, args)
    if kind == "snippet":
        tags = [m.start() for m in re.finditer(rb"<", part)] or [0]
        at = tags[args[0] % len(tags)]
        snippet: bytes = args[1]
        return part[:at] + snippet + part[at:]
    if kind == "cut":
        return part[:args[0] % (len(part) + 1)]
    if kind == "replace":
        replacement: bytes = args[0]
        return replacement
    if kind == "bytes":
        return mutate_bytes(part, args[0])
    return None


def mutate_package(data: bytes, changes: Sequence[tuple[int, tuple[Any, ...]]], parts: Sequence[str]) -> bytes:
    """Rewrite the zip package `data` with each chosen XML part changed by its operation."""
    with zipfile.ZipFile(io.BytesIO(data)) as source:
        contents = {info.filename: source.read(info) for info in source.infolist()}
    for part_index, operation in changes:
        name = parts[part_index % len(parts)]
        if name not in contents:
            continue
        changed = mutate_part(contents[name], operation)
        if changed is None:
            del contents[name]
        else:
            contents[name] = changed
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for name, content in contents.items():
            target.writestr(zipfile.ZipInfo(name, date_time=(2020, 9, 8, 9, 30, 0)), content)
    return buffer.getvalue()


# ---------------------------------------------------------------------------
# Mail header mutations
# ---------------------------------------------------------------------------

_HEADER_LINE = re.compile(rb"^[A-Za-z][A-Za-z0-9-]*:")
_HEADER_NAMES = ("Content-Type", "Content-Transfer-Encoding", "Content-Disposition", "Date", "Received", "From",
                 "To", "Reply-To", "Subject", "Message-ID", "Auto-Submitted", "Return-Path", "MIME-Version",
                 "Content-ID", "Precedence", "List-Id")
_CHARSETS = ("utf-8", "gb2312", "gbk", "gb18030", "big5", "utf-16", "utf-32", "utf-7", "iso-2022-jp", "cp1252",
             "us-ascii", "unknown-8bit", "x-unknown", "", "idna", "punycode", "base64", "hex", "rot13", "undefined")
_HEADER_VALUES = (
    "multipart/mixed", 'multipart/mixed; boundary=""', "multipart/mixed; boundary=", "multipart/alternative",
    "message/rfc822", "message/partial; id=1; number=1; total=2", "message/delivery-status", "text/plain",
    "text/plain; charset=utf-7", "text/plain; charset=x-unknown", 'text/html; charset="gb2312"',
    "text/plain; charset=base64", "text/plain; charset=undefined",
    "application/octet-stream; name*0*=utf-8''%E4%B8; name*1*=%AD.xlsx", "application/octet-stream; name=",
    "base64", "quoted-printable", "x-uuencode", "uuencode", "8bit", "binary", "7bit", "bogus",
    "attachment", "attachment; filename=", "attachment; filename*=gbk''%FF%FE%FD.xlsx", "attachment; filename*=''",
    "attachment; filename*=hex''41.xlsx", "attachment; filename*=undefined''a.xlsx",
    'attachment; filename="=?gb2312?B?1tDOxA==?=.xlsx"', 'attachment; filename="=?base64?B?AAAA?="',
    "inline", "inline; filename=a.png",
    "Thu, 31 Feb 2020 25:61:61 +9999", "Mon, 1 Jan 0001 00:00:00 +0000", "Fri, 31 Dec 9999 23:59:59 -2359",
    "99999999999999999999", "from x by y; Thu, 10 Sep 2020 09:15:16 +0800", "from x by y; garbage", "by ;",
    "<>", "<@>", '"" <>', "a@b@c", "=?utf-8?B?5L2g5aW9?= <a@example.cn>", "=?utf-8?Q?=E4=B8?=",
    "=?unknown-8bit?B?/w==?=", "=?utf-16?B?AAA=?=", "=?utf-8*zh?B?5L2g?=", "=?gb2312?B?====?=", "auto-replied",
    "no", "1.0", "1.0 (bogus", "bulk",
)

_ENCODED_WORD = st.builds(
    lambda charset, encoding, payload: f"=?{charset}?{encoding}?{payload}?=",
    st.sampled_from(_CHARSETS), st.sampled_from("BbQqX"),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_?", max_size=24),
)
_RFC2231 = st.builds(
    lambda header, charset, payload: f"{header}; filename*={charset}''{payload}",
    st.sampled_from(["attachment", "inline"]), st.sampled_from(_CHARSETS),
    st.text(alphabet="%0123456789ABCDEFabc.xlsx", max_size=24),
)
HEADER_VALUES = st.one_of(
    st.sampled_from(_HEADER_VALUES).map(str.encode),
    _ENCODED_WORD.map(str.encode),
    _RFC2231.map(str.encode),
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=60).map(lambda s: s.encode("utf-8")),
    st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), max_size=20).map(
        lambda s: s.encode("gb18030")),
    st.binary(max_size=40),
)
HEADER_OPERATIONS = st.one_of(
    st.tuples(st.just("value"), st.integers(0, 255), HEADER_VALUES),
    st.tuples(st.just("drop"), st.integers(0, 255)),
    st.tuples(st.just("repeat"), st.integers(0, 255)),
    st.tuples(st.just("add"), st.integers(0, 255), st.sampled_from(_HEADER_NAMES), HEADER_VALUES),
    st.tuples(st.just("fold"), st.integers(0, 255), st.integers(0, 200)),
    st.tuples(st.just("line"), st.integers(0, 255), st.binary(max_size=60)),
)


def mutate_headers(raw: bytes, operations: Sequence[tuple[Any, ...]]) -> bytes:
    """Change header lines of the message and of its parts.

    Each operation picks its line among the lines that look like a header ("Name: value").
    """
    lines = raw.split(b"\r\n")
    for operation in operations:
        kind, header_index, *args = operation
        headers = [i for i, line in enumerate(lines) if _HEADER_LINE.match(line)]
        if not headers:
            break
        at = headers[header_index % len(headers)]
        line = lines[at]
        name = line.split(b":", 1)[0]
        if kind == "value":
            lines[at] = name + b": " + args[0]
        elif kind == "drop":
            del lines[at]
        elif kind == "repeat":
            lines.insert(at, line)
        elif kind == "add":
            lines.insert(at, args[0].encode() + b": " + args[1])
        elif kind == "fold":
            cut = args[0] % (len(line) + 1)
            lines[at:at + 1] = [line[:cut], b"\t" + line[cut:]]
        elif kind == "line":
            lines[at] = args[0]
    return b"\r\n".join(lines)


# ---------------------------------------------------------------------------
# What counts as a classified outcome
# ---------------------------------------------------------------------------


def check_finding(finding: Finding) -> None:
    assert isinstance(finding, Finding)
    assert finding.code in MESSAGES, f"unknown finding code {finding.code!r}"
    assert isinstance(finding.message(), str)


def check_evaluation(evaluation: Evaluation) -> None:
    """Assert that every file passed with a form, was returned with known findings, or was skipped."""
    assert isinstance(evaluation, Evaluation)
    assert evaluation.decision in (ACCEPTED, PARTIAL, REJECTED, IGNORED)
    for outcome in evaluation.files:
        assert isinstance(outcome, FileOutcome)
        assert outcome.status in (PASSED, RETURNED, SKIPPED), outcome.status
        assert isinstance(outcome.kind, FileKind)
        if outcome.status == PASSED:
            assert outcome.form is not None
        if outcome.status == RETURNED:
            assert outcome.findings, f"{outcome.name} returned without a finding"
        for finding in outcome.findings:
            check_finding(finding)
    for finding in evaluation.findings:
        check_finding(finding)


def check_sheets(sheets: list[Sheet]) -> None:
    assert isinstance(sheets, list)
    for sheet in sheets:
        assert isinstance(sheet, Sheet)
        assert all(isinstance(row, SheetRow) for row in sheet.rows)


def check_table(sheets: list[Sheet]) -> None:
    table = read_table(sheets, CAMPAIGN, file="附件1.xlsx")
    assert table is None or isinstance(table, TableResult)
    if table is not None:
        for finding in table.findings:
            check_finding(finding)


def check_paragraphs(paragraphs: list[Paragraph]) -> None:
    assert isinstance(paragraphs, list)
    assert all(isinstance(p, Paragraph) for p in paragraphs)
    report = read_report(paragraphs, CAMPAIGN, file="报告.docx")
    assert report is None or isinstance(report, ReportResult)
    if report is not None:
        for finding in report.findings:
            check_finding(finding)


def check_expansion(expansion: Expansion) -> None:
    assert isinstance(expansion, Expansion)
    assert all(isinstance(member, Member) and isinstance(member.data, bytes) for member in expansion.members)
    assert all(isinstance(problem, FileProblem) for _, problem in expansion.problems)


def parsed_or_problem(parse: Callable[[], object], check: Callable[[Any], None]) -> None:
    """Run `parse` within the hard limit and check its result.

    A FileProblem is a classified outcome and passes.
    """
    with bounded():
        try:
            result = parse()
        except FileProblem as problem:
            assert isinstance(problem.code, str) and problem.code
            return
        check(result)


class _ErrorRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def reader_errors() -> Iterator[list[logging.LogRecord]]:
    """Collect the tracebacks that evaluate logs when a reader raised something other than FileProblem."""
    logger = logging.getLogger("rules.evaluate")
    handler = _ErrorRecords()
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)


def evaluate_raw(raw: bytes) -> None:
    """Parse and evaluate `raw`, and check the evaluation.

    evaluate returns a file whose reader raised an unexpected exception as unreadable,
    so the sender still gets a reply. That exception is still a reader bug, so it is
    raised again here with its own traceback.
    """
    with bounded(), reader_errors() as errors:
        message = parse_message(raw)
        assert isinstance(message, ParsedMessage)
        evaluation = evaluate(message, CAMPAIGN, received=RECEIVED, own_addresses=frozenset())
    for record in errors:
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            error.add_note(f"evaluate returned the file as unreadable: {record.getMessage()}")
            raise error
    check_evaluation(evaluation)


def attach(name: str, data: bytes, content_type: str = "application/octet-stream") -> bytes:
    return mail(sender=PROVIDER, subject="报送材料", message_id="<fuzz@xinghe.example.cn>",
                attachments=[(name, data, content_type)])


# ---------------------------------------------------------------------------
# Byte-level properties
# ---------------------------------------------------------------------------

FILE_SEEDS = sorted(file_seeds())
MUTATIONS = st.lists(BYTE_OPERATIONS, min_size=1, max_size=6)


@FUZZ
@given(seed=st.sampled_from(FILE_SEEDS), operations=MUTATIONS)
# "Version needed to extract" of the first central directory entry: NotImplementedError.
@example(seed="form1.xlsx", operations=[("structure", 9, 6, b"\xff")])
# One header byte deleted, so the FAT and directory sit one byte off: RecursionError in olefile.
@example(seed="form1.xls", operations=[("delete", 139, 1)])
def test_sniff_mutated_bytes(seed: str, operations: list[tuple[Any, ...]]) -> None:
    data = mutate_bytes(file_seeds()[seed], operations)
    with bounded():
        assert isinstance(sniff(data), FileKind)


@FUZZ
@given(seed=st.sampled_from(["form1.xlsx", "form3.xlsx"]), operations=MUTATIONS)
@example(seed="form1.xlsx", operations=[("flip", 223, 0)])  # corrupt deflate data: zlib.error
def test_read_workbook_mutated_xlsx(seed: str, operations: list[tuple[Any, ...]]) -> None:
    data = mutate_bytes(file_seeds()[seed], operations)

    def check(sheets: list[Sheet]) -> None:
        check_sheets(sheets)
        check_table(sheets)

    parsed_or_problem(lambda: read_workbook(data, FileKind.XLSX), check)


@FUZZ
@given(operations=MUTATIONS)
# Each opens cleanly and fails when xlrd parses the sheet on demand (sheet_by_index).
@example(operations=[("overwrite", 2508, b"\xff\xff")])  # first LABELSST cell's string index: IndexError
@example(operations=[("flip", 1566, 0)])  # sheet offset off by one: XLRDError "Expected BOF record"
@example(operations=[("flip", 2462, 0)])  # length of the sheet's BOF record: struct.error
def test_read_workbook_mutated_xls(operations: list[tuple[Any, ...]]) -> None:
    data = mutate_bytes(file_seeds()["form1.xls"], operations)

    def check(sheets: list[Sheet]) -> None:
        check_sheets(sheets)
        check_table(sheets)

    parsed_or_problem(lambda: read_workbook(data, FileKind.XLS), check)


def test_read_workbook_xls_seed() -> None:
    """Check that the hand-made .xls seed passes as a Form 1, so mutations start from a valid file."""
    table = read_table(read_workbook(file_seeds()["form1.xls"], FileKind.XLS), CAMPAIGN, file="附件1.xls")
    assert table is not None
    assert table.passed
    assert len(table.rows) == 2


@FUZZ
@given(operations=MUTATIONS)
def test_read_docx_mutated_bytes(operations: list[tuple[Any, ...]]) -> None:
    data = mutate_bytes(file_seeds()["report.docx"], operations)
    parsed_or_problem(lambda: read_docx(data), check_paragraphs)


@FUZZ
@given(seed=st.sampled_from(["reports.zip", "reports-gbk.zip"]), operations=MUTATIONS)
@example(seed="reports.zip", operations=[("flip", 52, 1)])  # first member's deflate data: zlib.error
def test_expand_zip_mutated_bytes(seed: str, operations: list[tuple[Any, ...]]) -> None:
    data = mutate_bytes(file_seeds()[seed], operations)
    parsed_or_problem(lambda: expand_zip(data), check_expansion)


@FUZZ
@given(operations=MUTATIONS)
@example(operations=[("flip", 32, 0)])  # first byte of the packed stream: LZMAError
def test_expand_7z_mutated_bytes(operations: list[tuple[Any, ...]]) -> None:
    data = mutate_bytes(file_seeds()["reports.7z"], operations)
    parsed_or_problem(lambda: expand_7z(data), check_expansion)


@FUZZ
@given(seed=st.sampled_from(FILE_SEEDS), operations=MUTATIONS)
@example(seed="form1.xlsx", operations=[("structure", 9, 6, b"\xff")])  # sniff raises inside evaluate
def test_evaluate_mutated_attachment(seed: str, operations: list[tuple[Any, ...]]) -> None:
    evaluate_raw(attach(seed, mutate_bytes(file_seeds()[seed], operations)))


@FUZZ
@given(seed=st.sampled_from(sorted(mail_seeds())), operations=MUTATIONS)
# Both bytes land in the attachment's filename*=utf-8''... parameter.
@example(seed="form1", operations=[("overwrite", 1625, b"\xff")])  # raw 8-bit byte in the value: UnicodeEncodeError
@example(seed="form1", operations=[("overwrite", 1620, b"\x00")])  # NUL in the charset: ValueError
def test_parse_message_mutated_bytes(seed: str, operations: list[tuple[Any, ...]]) -> None:
    evaluate_raw(mutate_bytes(mail_seeds()[seed], operations))


@FUZZ
@given(seed=st.sampled_from(sorted(mail_seeds())), operations=st.lists(HEADER_OPERATIONS, min_size=1, max_size=6))
@example(seed="form1", operations=[("value", 4, b"=?base64?B?AAAA?=")])  # Subject in a non-text codec
@example(seed="form1", operations=[("value", 9, b"text/plain; charset=undefined")])  # body in Python's "undefined"
@example(seed="form1", operations=[("value", 9, b'text/plain; charset="utf\x008"')])  # NUL in a charset label
# Raw UTF-8 bytes in an RFC 2231 file name, as some clients write it: UnicodeEncodeError.
@example(seed="form1", operations=[("value", 15, "attachment; filename*=utf-8''报告.xlsx".encode())])
def test_parse_message_mutated_headers(seed: str, operations: list[tuple[Any, ...]]) -> None:
    evaluate_raw(mutate_headers(mail_seeds()[seed], operations))


# ---------------------------------------------------------------------------
# Structured properties
# ---------------------------------------------------------------------------

PART_CHANGES = st.lists(st.tuples(st.integers(0, 63), PART_OPERATIONS), min_size=1, max_size=3)


@FUZZ
@given(seed=st.sampled_from(["form1.xlsx", "form3.xlsx"]), changes=PART_CHANGES)
@example(seed="form1.xlsx", changes=[(1, ("replace", b""))])  # empty xl/workbook.xml: ParseError
def test_read_workbook_mutated_parts(seed: str, changes: list[tuple[int, tuple[Any, ...]]]) -> None:
    data = mutate_package(file_seeds()[seed], changes, xml_parts(seed))

    def check(sheets: list[Sheet]) -> None:
        check_sheets(sheets)
        check_table(sheets)

    parsed_or_problem(lambda: read_workbook(data, FileKind.XLSX), check)
    evaluate_raw(attach("附件1.xlsx", data, XLSX_TYPE))


@FUZZ
@given(changes=PART_CHANGES)
@example(changes=[(0, ("remove", 1))])  # word/document.xml without <w:body>
def test_read_docx_mutated_parts(changes: list[tuple[int, tuple[Any, ...]]]) -> None:
    data = mutate_package(file_seeds()["report.docx"], changes, xml_parts("report.docx"))
    parsed_or_problem(lambda: read_docx(data), check_paragraphs)
    evaluate_raw(attach("报告.docx", data, DOCX_TYPE))


_MEMBER_NAMES = st.one_of(
    st.sampled_from(["附件2/报告.docx", "../报告.docx", "/etc/报告.docx", "C:/报告.docx", "a\\..\\b.docx", "dir/",
                     "__MACOSX/._报告.docx", ".DS_Store", "报告.docx", "报告.docx", "a/" * 100 + "x.docx", " ", "."]),
    st.text(alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), min_size=1,
            max_size=30),
)
_MEMBER_DATA = st.one_of(st.sampled_from(FILE_SEEDS).map(lambda name: file_seeds()[name]), st.binary(max_size=200))
_COMPRESSION = st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])


@FUZZ
@given(members=st.lists(st.tuples(_MEMBER_NAMES, _MEMBER_DATA, _COMPRESSION), min_size=1, max_size=5),
       operations=st.lists(BYTE_OPERATIONS, max_size=2))
@example(members=[("a.docx", b"abc", zipfile.ZIP_LZMA)], operations=[("flip", 38, 0)])  # LZMA properties size: LZMAError
def test_expand_zip_random_members(members: list[tuple[str, bytes, int]],
                                   operations: list[tuple[Any, ...]]) -> None:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w") as archive:
        warnings.simplefilter("ignore", UserWarning)  # duplicate member names are part of the input
        for name, data, compression in members:
            info = zipfile.ZipInfo(name, date_time=(2020, 9, 8, 9, 30, 0))
            info.compress_type = compression
            archive.writestr(info, data)
    data = mutate_bytes(buffer.getvalue(), operations)
    parsed_or_problem(lambda: expand_zip(data), check_expansion)
    evaluate_raw(attach("报告.zip", data, ZIP_TYPE))


# Cell values as a reader can hand them over: text of any kind, numbers, booleans, dates.
_CELL_TEXT = st.one_of(
    st.sampled_from(["=1/0", "=SUM(A1:A3)", "=", "=\"2019\"", "2019年", "２０１９", "2019.0", "SQ1904163275",
                     "sq 1904 163275", "1e309", "nan", "inf", "-0", "28万元", "¥1,000", "１２.５万", "正常", "停止",
                     "示例：", "　", "\u200b", "\ufeff2019", "序号", "申请编号", "x" * 40000, "2" * 400]),
    st.text(max_size=40),
    st.text(alphabet=st.characters(max_codepoint=0x1F), max_size=10),
)
CELL_VALUES = st.one_of(
    st.none(), _CELL_TEXT, st.integers(min_value=-(1 << 70), max_value=1 << 70),
    st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(9999, 12, 31)),
)
#: Changes as (sheet row index, column index, value). The Form 1 seed has its header at row index 3.
CELL_CHANGES = st.lists(st.tuples(st.integers(0, 12), st.integers(0, 15), CELL_VALUES), min_size=1, max_size=12)


@functools.cache
def form1_sheets() -> tuple[Sheet, ...]:
    return tuple(read_workbook(file_seeds()["form1.xlsx"], FileKind.XLSX))


@FUZZ
@given(changes=CELL_CHANGES)
def test_read_table_random_cells(changes: list[tuple[int, int, Any]]) -> None:
    sheet = form1_sheets()[0]
    rows = [list(row.values) for row in sheet.rows]
    for r, c, value in changes:
        while r >= len(rows):
            rows.append([len(rows) - 4])
        cells = rows[r]
        cells.extend([None] * (c + 1 - len(cells)))
        cells[c] = value
    changed = Sheet(name=sheet.name, rows=tuple(SheetRow(number=i + 1, values=tuple(values))
                                                for i, values in enumerate(rows)))
    with bounded():
        check_table([changed])


@FUZZ
@given(changes=CELL_CHANGES)
def test_read_workbook_random_cells(changes: list[tuple[int, int, Any]]) -> None:
    workbook = openpyxl.load_workbook(io.BytesIO(file_seeds()["form1.xlsx"]))
    sheet = workbook.active
    for r, c, value in changes:
        cell = sheet.cell(row=r + 1, column=c + 1)
        if isinstance(cell, MergedCell):  # the title lines are merged across the form
            continue
        # openpyxl rejects control characters, so they are removed. test_read_table_random_cells covers them.
        cell.value = openpyxl.cell.cell.ILLEGAL_CHARACTERS_RE.sub("", value) if isinstance(value, str) else value
    buffer = io.BytesIO()
    workbook.save(buffer)
    data = buffer.getvalue()

    def check(sheets: list[Sheet]) -> None:
        check_sheets(sheets)
        check_table(sheets)

    parsed_or_problem(lambda: read_workbook(data, FileKind.XLSX), check)
    evaluate_raw(attach("附件1.xlsx", data, XLSX_TYPE))

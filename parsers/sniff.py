"""Recognise a file's type from its content, because names and MIME types lie."""

from __future__ import annotations

import io
import zipfile
from enum import Enum

import olefile


class FileKind(str, Enum):
    """The type of a file, judged from its first bytes and container layout."""

    XLSX = "xlsx"
    DOCX = "docx"
    ZIP = "zip"
    SEVEN_ZIP = "7z"
    RAR = "rar"
    TNEF = "tnef"
    XLS = "xls"
    DOC = "doc"
    ENCRYPTED_OFFICE = "encrypted-office"
    OLE = "ole"
    PDF = "pdf"
    IMAGE = "image"
    TEXT = "text"
    UNKNOWN = "unknown"


_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"RIFF")


def sniff(data: bytes) -> FileKind:
    """Return the kind of `data`; never raises."""
    head = data[:8]

    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return _zip_kind(data)
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return FileKind.SEVEN_ZIP
    if head.startswith(b"Rar!\x1a\x07"):
        return FileKind.RAR
    if head.startswith(b"\x78\x9f\x3e\x22"):  # Outlook's winmail.dat: 0x223E9F78 little-endian
        return FileKind.TNEF
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return _ole_kind(data)
    if head.startswith(b"%PDF"):
        return FileKind.PDF
    if head.startswith(_IMAGE_MAGIC):
        return FileKind.IMAGE
    if _looks_like_text(data[:4096]):
        return FileKind.TEXT
    return FileKind.UNKNOWN


def _zip_kind(data: bytes) -> FileKind:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
    except Exception:  # BadZipFile, NotImplementedError for odd versions, struct errors ...
        return FileKind.ZIP
    if "xl/workbook.xml" in names or "xl/workbook.bin" in names:
        return FileKind.XLSX
    if "word/document.xml" in names:
        return FileKind.DOCX
    return FileKind.ZIP


def _ole_kind(data: bytes) -> FileKind:
    try:
        with olefile.OleFileIO(io.BytesIO(data)) as ole:
            streams = {"/".join(entry) for entry in ole.listdir()}
    except Exception:  # olefile can raise OSError, ValueError or RecursionError on a damaged FAT
        return FileKind.OLE
    # Password-protected OOXML files are OLE containers with an EncryptedPackage.
    if "EncryptedPackage" in streams:
        return FileKind.ENCRYPTED_OFFICE
    if "Workbook" in streams or "Book" in streams:
        return FileKind.XLS
    if "WordDocument" in streams:
        return FileKind.DOC
    return FileKind.OLE


def _looks_like_text(sample: bytes) -> bool:
    if not sample or b"\x00" in sample:
        return False
    controls = sum(1 for byte in sample if byte < 9 or 13 < byte < 32)
    return controls / len(sample) < 0.01

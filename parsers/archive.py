"""Safe expansion of zip archives into memory, member by member.

Nothing is written to disk, so a member path cannot escape a folder. A path that
would (absolute, or with ".." parts) is still rejected, because a submitter who
sends one has sent something other than the requested reports. Every member is
read through a byte counter, so a zip bomb costs at most `max_member_bytes` of
memory however large its headers say it is.
"""

from __future__ import annotations

import io
import posixpath
import zipfile
from dataclasses import dataclass, field

import py7zr
import py7zr.exceptions
from py7zr.io import Py7zIO, WriterFactory

from parsers.problems import FileProblem
from parsers.text import decode_bytes

_CHUNK = 64 * 1024

#: Zip flag bit 11: the member name is UTF-8 (APPNOTE 4.4.4).
_UTF8_FLAG = 0x800
#: Zip flag bit 0: the member is encrypted.
_ENCRYPTED_FLAG = 0x1

#: Entries that archivers add beside the real files.
_JUNK_PREFIXES = ("__MACOSX/",)
_JUNK_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini"}


@dataclass(frozen=True)
class ArchiveLimits:
    """Bounds on what one archive may expand to."""

    max_members: int = 200
    max_member_bytes: int = 50 * 1024 * 1024
    max_total_bytes: int = 200 * 1024 * 1024
    #: Expanded size over compressed size; office files compress about 1.1:1 to 10:1.
    max_ratio: float = 200.0


@dataclass(frozen=True)
class Member:
    """One file read out of an archive."""

    name: str
    data: bytes


@dataclass
class Expansion:
    """The members that could be read and a problem for each one that could not."""

    members: list[Member] = field(default_factory=list)
    problems: list[tuple[str, FileProblem]] = field(default_factory=list)


def expand_zip(data: bytes, limits: ArchiveLimits = ArchiveLimits()) -> Expansion:
    """Read every member of the zip in `data` within `limits`.

    Raises FileProblem("unreadable-archive") when the archive as a whole is
    broken and FileProblem("too-many-members") past the member limit. A member
    that breaks a rule is skipped and reported in `problems` by its name.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except Exception as err:  # BadZipFile, struct.error, ValueError ... from a corrupt directory
        raise FileProblem("unreadable-archive", reason=f"{type(err).__name__}: {err}") from err

    result = Expansion()
    total = 0
    with archive:
        # Old Windows tools write folder entries with a trailing backslash.
        entries = [info for info in archive.infolist() if not info.is_dir() and not member_name(info).endswith("/")]
        if len(entries) > limits.max_members:
            raise FileProblem("too-many-members", count=len(entries), limit=limits.max_members)

        for info in entries:
            name = member_name(info)
            if is_junk(name):
                continue

            problem = _check_member(info, name, limits, total)
            if problem is not None:
                result.problems.append((name, problem))
                continue

            try:
                content = _read_bounded(archive, info, limits.max_member_bytes)
            except FileProblem as err:
                result.problems.append((name, err))
                continue
            total += len(content)
            result.members.append(Member(name=name, data=content))

    return result


def member_name(info: zipfile.ZipInfo) -> str:
    """Return the member's real name, decoding GBK names that lack the UTF-8 flag.

    Without the flag, zipfile decodes the raw bytes as CP437. Chinese Windows
    archivers write GBK there, so the bytes are recovered and decoded again.
    """
    name = info.filename
    if not info.flag_bits & _UTF8_FLAG:
        try:
            raw = name.encode("cp437")
        except UnicodeEncodeError:
            raw = None
        if raw is not None:
            name = decode_bytes(raw)
    return name.replace("\\", "/")


def is_junk(name: str) -> bool:
    return name.startswith(_JUNK_PREFIXES) or posixpath.basename(name) in _JUNK_NAMES


def _check_member(info: zipfile.ZipInfo, name: str, limits: ArchiveLimits, total: int) -> FileProblem | None:
    if info.flag_bits & _ENCRYPTED_FLAG:
        return FileProblem("encrypted-archive", member=name)
    return check_declared(name, info.file_size, info.compress_size, limits, total)


def _read_bounded(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """Read one member in chunks, stopping once it passes `limit` bytes.

    The header's size is not trusted: a crafted member can declare a small size
    and inflate to far more.
    """
    buffer = io.BytesIO()
    try:
        with archive.open(info) as stream:
            while chunk := stream.read(_CHUNK):
                if buffer.tell() + len(chunk) > limit:
                    raise FileProblem("member-too-large", member=member_name(info), size=None, limit=limit)
                buffer.write(chunk)
    except FileProblem:
        raise
    except RuntimeError as err:  # zipfile raises RuntimeError for a password-protected member
        raise FileProblem("encrypted-archive", member=member_name(info)) from err
    except Exception as err:  # zlib, lzma, bz2 and zipfile errors from a corrupt member
        raise FileProblem("unreadable-member", member=member_name(info), reason=f"{type(err).__name__}: {err}") from err
    return buffer.getvalue()


def expand_7z(data: bytes, limits: ArchiveLimits = ArchiveLimits()) -> Expansion:
    """Read every member of the 7z archive in `data` within `limits`.

    Declared sizes are checked first. Each member is then decompressed into a
    writer that stops the whole extraction past `max_member_bytes`, because 7z
    headers can lie as zip headers can.
    """
    try:
        archive = py7zr.SevenZipFile(io.BytesIO(data))
    except py7zr.exceptions.PasswordRequired as err:
        raise FileProblem("encrypted-archive", member="") from err
    except Exception as err:  # py7zr passes on lzma, zlib, struct and its own errors for corrupt input
        raise FileProblem("unreadable-archive", reason=f"{type(err).__name__}: {err}") from err

    result = Expansion()
    with archive:
        try:
            encrypted = archive.needs_password()
            entries = [info for info in archive.list() if not info.is_directory]
        except Exception as err:  # a corrupt header is only parsed here
            raise FileProblem("unreadable-archive", reason=f"{type(err).__name__}: {err}") from err
        if encrypted:
            raise FileProblem("encrypted-archive", member="")
        if len(entries) > limits.max_members:
            raise FileProblem("too-many-members", count=len(entries), limit=limits.max_members)

        selected: list[str] = []
        total = 0
        for info in entries:
            name = info.filename.replace("\\", "/")
            if is_junk(name):
                continue
            problem = check_declared(name, info.uncompressed, info.compressed, limits, total)
            if problem is not None:
                result.problems.append((name, problem))
                continue
            total += info.uncompressed or 0
            selected.append(info.filename)

        if not selected:
            return result
        factory = _CappedFactory(limits.max_member_bytes)
        try:
            archive.extract(targets=selected, factory=factory)
        except _Overflow as err:
            raise FileProblem("member-too-large", member=err.member, size=None, limit=limits.max_member_bytes) from err
        except Exception as err:  # as when opening: corrupt streams raise many types
            raise FileProblem("unreadable-archive", reason=f"{type(err).__name__}: {err}") from err

    for filename in selected:
        product = factory.products.get(filename)
        if product is not None:
            result.members.append(Member(name=filename.replace("\\", "/"), data=product.getvalue()))
    return result


def check_declared(name: str, size: int | None, compressed: int | None, limits: ArchiveLimits,
                    total: int) -> FileProblem | None:
    parts = name.split("/")
    if name.startswith("/") or ".." in parts or (parts and parts[0].endswith(":")):
        return FileProblem("unsafe-path", member=name)
    size = size or 0
    if size > limits.max_member_bytes:
        return FileProblem("member-too-large", member=name, size=size, limit=limits.max_member_bytes)
    if total + size > limits.max_total_bytes:
        return FileProblem("archive-too-large", member=name, limit=limits.max_total_bytes)
    if compressed and size / compressed > limits.max_ratio:
        return FileProblem("suspicious-ratio", member=name, ratio=round(size / compressed))
    return None


class _Overflow(Exception):
    def __init__(self, member: str) -> None:
        super().__init__(member)
        self.member = member


class _CappedWriter(Py7zIO):
    """An in-memory member that aborts the extraction past `limit` bytes."""

    def __init__(self, filename: str, limit: int) -> None:
        self.filename = filename
        self.limit = limit
        self._buffer = io.BytesIO()

    def write(self, s: bytes | bytearray) -> int:
        if self._buffer.tell() + len(s) > self.limit:
            raise _Overflow(self.filename)
        return self._buffer.write(s)

    def read(self, size: int | None = None) -> bytes:
        return self._buffer.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._buffer.seek(offset, whence)

    def flush(self) -> None:
        self._buffer.flush()

    def size(self) -> int:
        return len(self._buffer.getbuffer())

    def getvalue(self) -> bytes:
        return self._buffer.getvalue()


class _CappedFactory(WriterFactory):
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.products: dict[str, _CappedWriter] = {}

    def create(self, filename: str) -> Py7zIO:
        product = _CappedWriter(filename, self.limit)
        self.products[filename] = product
        return product

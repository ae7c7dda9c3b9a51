"""Read rar archives through libarchive (Debian's libarchive13, via libarchive-c).

The tests cover RAR 4 archives; how much of RAR5 reads depends on the
installed libarchive. What it cannot read is returned with a reason asking for zip. Members are read block by block with the
same bounds as zip members, since rar headers can lie about sizes too.
"""

from __future__ import annotations

import ctypes
import io

from parsers.archive import ArchiveLimits, Expansion, Member, check_declared, is_junk
from parsers.problems import FileProblem

try:
    import libarchive
    import libarchive.exception
    import libarchive.ffi
except (ImportError, OSError, AttributeError):  # libarchive-c cannot find libarchive.so.13
    libarchive = None


def expand_rar(data: bytes, limits: ArchiveLimits = ArchiveLimits()) -> Expansion:
    """Read every member of the rar archive in `data` within `limits`.

    Raises FileProblem("encrypted-archive") for a password-protected archive and
    FileProblem("unreadable-archive") for anything libarchive cannot read.
    """
    if libarchive is None:
        raise FileProblem("unsupported-format", format="rar")

    result = Expansion()
    total = 0
    count = 0
    try:
        with libarchive.memory_reader(data, format_name="rar") as archive:
            for entry in archive:
                if entry.isdir:
                    continue
                count += 1
                if count > limits.max_members:
                    raise FileProblem("too-many-members", count=count, limit=limits.max_members)

                name = (entry.pathname or "").replace("\\", "/")
                if is_junk(name):
                    continue
                if _is_encrypted(entry):
                    raise FileProblem("encrypted-archive", member=name)
                problem = check_declared(name, entry.size, None, limits, total)
                if problem is not None:
                    result.problems.append((name, problem))
                    continue

                content = _read_bounded(entry, name, limits.max_member_bytes)
                total += len(content)
                result.members.append(Member(name=name, data=content))
    except FileProblem:
        raise
    except libarchive.exception.ArchiveError as err:
        if "encrypt" in str(err).lower() or "password" in str(err).lower():
            raise FileProblem("encrypted-archive", member="") from err
        raise FileProblem("unreadable-archive", reason=str(err)) from err
    except Exception as err:  # libarchive-c also raises OSError and ctypes errors on damaged input
        raise FileProblem("unreadable-archive", reason=f"{type(err).__name__}: {err}") from err
    return result


def _is_encrypted(entry: "libarchive.ArchiveEntry") -> bool:
    """Ask libarchive whether the entry's data or metadata is encrypted.

    libarchive-c 5.3 has no wrapper for archive_entry_is_encrypted (libarchive 3.2+),
    so the C function is called on the entry's pointer.
    """
    function = getattr(libarchive.ffi.libarchive, "archive_entry_is_encrypted", None)
    if function is None:
        return False
    function.argtypes = [ctypes.c_void_p]
    function.restype = ctypes.c_int
    # NOTE: _entry_p is libarchive-c's private handle of the C entry.
    return bool(function(entry._entry_p))


def _read_bounded(entry: "libarchive.ArchiveEntry", name: str, limit: int) -> bytes:
    buffer = io.BytesIO()
    for block in entry.get_blocks():
        if buffer.tell() + len(block) > limit:
            raise FileProblem("member-too-large", member=name, size=None, limit=limit)
        buffer.write(block)
    return buffer.getvalue()

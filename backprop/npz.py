"""Reading an .npz archive a person gave us, member by member, headers first.

`np.load` allocates each array as its .npy header declares and only then reads it, so a few
kilobytes of compressed zeros can declare gigabytes. Here every member's header (shape, dtype) and
stored size (ZipInfo.file_size) are read first, checked against each other and the memory budget,
and the caller checks them against what it expects; only then is an array read. Object arrays
(pickles) are refused from their header, never unpickled.
"""

import zipfile
import zlib
from dataclasses import dataclass

import numpy as np

from .budget import array_bytes, check_bytes, format_bytes
from .errors import InputError

# Everything reading a damaged or hostile archive can raise (BadZipFile for a bad CRC,
# NotImplementedError/RuntimeError for unsupported compression or encryption, zlib.error, ...).
ARCHIVE_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, zlib.error,
                  NotImplementedError, RuntimeError, KeyError)


@dataclass(frozen=True)
class Member:
    """One array of the archive as its header declares it; nothing of its data is read yet."""

    name: str  # the array's name: the member name without ".npy"
    shape: tuple
    dtype: np.dtype
    fortran_order: bool
    nbytes: int  # declared data size, shape x itemsize


class NpzArchive:
    """An open .npz: `members` (name -> Member) checked, `read(name)` reads one array.

    Use as a context manager. `field` names the input in every InputError (e.g. "checkpoint"),
    `label` the file in messages (e.g. its name)."""

    def __init__(self, source, field, label):
        self.field = field
        self.label = label
        try:
            self._zip = zipfile.ZipFile(source)
        except ARCHIVE_ERRORS as error:
            if _starts_like_npy(source):
                raise InputError(field, f"{label} holds a single array (.npy), not an .npz archive "
                                        "of named arrays") from None
            raise InputError(field, f"{label} cannot be read as a NumPy .npz (zip) file: {error}") from None
        try:
            self.members = self._read_headers()
        except BaseException:
            self._zip.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._zip.close()

    def _refuse(self, message):
        return InputError(self.field, f"{self.label} {message}")

    def _read_headers(self):
        members = {}
        for info in self._zip.infolist():
            if info.is_dir():
                continue
            if not info.filename.endswith(".npy"):
                raise self._refuse(f"holds {info.filename!r}, which is not a NumPy array (.npy)")
            name = info.filename[:-4]
            if name in members:
                raise self._refuse(f"holds the array {name!r} twice")
            try:
                with self._zip.open(info) as stream:
                    shape, fortran_order, dtype = _read_header(stream)
                    header_bytes = stream.tell()
            except ARCHIVE_ERRORS as error:
                raise self._refuse(f"has a damaged array {name!r}: {error}") from None
            if dtype.hasobject:
                raise self._refuse(f"holds {name!r} as pickled Python objects, which are never loaded "
                                   "(save plain numeric arrays)")
            nbytes = array_bytes(shape, dtype)
            if header_bytes + nbytes != info.file_size:
                raise self._refuse(f"is damaged: array {name!r} declares {format_bytes(nbytes)} "
                                   f"of data ({shape}, {dtype}) but its member holds "
                                   f"{format_bytes(max(info.file_size - header_bytes, 0))}")
            members[name] = Member(name, tuple(shape), dtype, fortran_order, nbytes)
        total = sum(member.nbytes for member in members.values())
        check_bytes(total, self.field, f"{self.label} declares arrays that")
        return members

    def read(self, name):
        """The array `name`, read after its header was checked (a member that holds other data
        than its header and stored size promise is refused)."""
        if name not in self.members:
            raise self._refuse(f"has no array {name!r}")
        try:
            with self._zip.open(name + ".npy") as stream:
                array = np.lib.format.read_array(stream, allow_pickle=False)
        except ARCHIVE_ERRORS as error:
            raise self._refuse(f"has a damaged array {name!r}: {error}") from None
        member = self.members[name]
        if array.shape != member.shape or array.dtype != member.dtype:  # cannot happen for one header
            raise self._refuse(f"changed array {name!r} while it was read")
        return array


    def chunks(self, name, size=1 << 22):
        """The data bytes of array `name` (what follows its header), `size` bytes at a time (the
        last chunk may be shorter), so a large member can be looked at in bounded memory."""
        if name not in self.members:
            raise self._refuse(f"has no array {name!r}")
        left = self.members[name].nbytes
        try:
            with self._zip.open(name + ".npy") as stream:
                _read_header(stream)
                while left:
                    chunk = stream.read(min(size, left))
                    if not chunk:
                        raise EOFError(f"the data ends {left:,} bytes early")
                    left -= len(chunk)
                    yield chunk
        except ARCHIVE_ERRORS as error:
            raise self._refuse(f"has a damaged array {name!r}: {error}") from None


def _read_header(stream):
    """(shape, fortran_order, dtype) of the .npy header `stream` starts with, left after it."""
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(stream)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(stream)
    raise ValueError(f".npy format version {version} is not supported")


def _starts_like_npy(source):
    try:
        if hasattr(source, "seek"):
            source.seek(0)
            return source.read(6) == np.lib.format.MAGIC_PREFIX
        with open(source, "rb") as handle:
            return handle.read(6) == np.lib.format.MAGIC_PREFIX
    except (OSError, TypeError, ValueError):
        return False


__all__ = ["ARCHIVE_ERRORS", "Member", "NpzArchive"]

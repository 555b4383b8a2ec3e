"""The boundary cache file: plain NumPy arrays in one memory-mapped file, written atomically.

Layout: ``MAGIC`` (8 bytes), header offset and length (two little-endian uint64), then the raw arrays, each
64-byte aligned, then a JSON header naming every array's dtype, shape and offset plus free-form metadata.

Why not pickle or .npz: no code runs on load (a tampered cache cannot execute anything), nothing is
decompressed or CRC-checked, and the arrays are memory-mapped, so opening is a few milliseconds, the pages
are shared between worker processes through the page cache, and only touched grid pages become resident.
Structure is validated instead of checksummed; atomic replacement rules out torn files.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import struct
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO, Final

import numpy as np
from numpy.typing import NDArray

from geo.errors import CacheError

MAGIC: Final = b"GPGEO\x00\x01\x00"
FORMAT_NAME: Final = "gongping-geo-boundaries"
# Bump whenever the array layout or the grid classification changes; old files are then rebuilt.
FORMAT_VERSION: Final = 1
_PREFIX: Final = struct.Struct("<8sQQ")
_ALIGN: Final = 64
# Only plain numbers and fixed-width strings may come out of a cache: never object arrays.
_ALLOWED_KINDS: Final = frozenset("iufU")


def write_cache(path: Path, arrays: Mapping[str, NDArray[Any]], meta: Mapping[str, Any]) -> None:
    """Write arrays + JSON metadata to ``path`` atomically (same-directory temp file, fsync, os.replace)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            _write(handle, arrays, meta)
            handle.flush()
            os.fsync(handle.fileno())
        # os.replace is atomic: readers see the old file or the new one, never a torn one, and a build that
        # failed before this line leaves the previous good cache untouched.
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _write(handle: BinaryIO, arrays: Mapping[str, NDArray[Any]], meta: Mapping[str, Any]) -> None:
    handle.write(_PREFIX.pack(MAGIC, 0, 0))
    table: dict[str, dict[str, Any]] = {}
    offset = _PREFIX.size
    for name, array in arrays.items():
        data = np.ascontiguousarray(array)
        if data.dtype.kind not in _ALLOWED_KINDS:
            raise TypeError(f"cache array {name!r} has unsupported dtype {data.dtype}")
        pad = -offset % _ALIGN
        handle.write(b"\0" * pad)
        offset += pad
        table[name] = {"dtype": data.dtype.str, "shape": list(data.shape), "offset": offset}
        handle.write(data.tobytes())
        offset += data.nbytes
    header = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "meta": dict(meta), "arrays": table}
    encoded = json.dumps(header, ensure_ascii=False).encode("utf-8")
    handle.write(encoded)
    handle.seek(0)
    handle.write(_PREFIX.pack(MAGIC, offset, len(encoded)))


def _fsync_directory(directory: Path) -> None:
    # Persist the rename itself across a power cut; not every platform lets a directory be opened.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_cache(path: Path, required: tuple[str, ...]) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
    """Memory-map a cache written by write_cache; raise CacheError if missing, corrupt or outdated."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            prefix = handle.read(_PREFIX.size)
            if len(prefix) != _PREFIX.size:
                raise CacheError(f"{path}: truncated boundary cache")
            magic, header_offset, header_len = _PREFIX.unpack(prefix)
            if magic != MAGIC:
                raise CacheError(f"{path}: not a boundary cache")
            if header_offset + header_len != size or header_offset < _PREFIX.size:
                raise CacheError(f"{path}: truncated or padded boundary cache")
            handle.seek(header_offset)
            header = json.loads(handle.read(header_len).decode("utf-8"))
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    except CacheError:
        raise
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise CacheError(f"{path}: unreadable boundary cache ({exc})") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise CacheError(f"{path}: not a boundary cache")
    if header.get("version") != FORMAT_VERSION:
        raise CacheError(f"{path}: cache format {header.get('version')} != {FORMAT_VERSION}")
    table = header.get("arrays")
    meta = header.get("meta")
    if not isinstance(table, dict) or not isinstance(meta, dict):
        raise CacheError(f"{path}: malformed cache header")
    arrays: dict[str, NDArray[Any]] = {}
    for name in required:
        entry = table.get(name)
        if not isinstance(entry, dict):
            raise CacheError(f"{path}: cache lacks array {name!r}")
        arrays[name] = _view(path, mapped, entry, header_offset, name)
    return arrays, meta


def _view(path: Path, mapped: mmap.mmap, entry: dict[str, Any], limit: int, name: str) -> NDArray[Any]:
    try:
        dtype = np.dtype(entry["dtype"])
        shape = tuple(int(n) for n in entry["shape"])
        offset = int(entry["offset"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CacheError(f"{path}: malformed entry for array {name!r}") from exc
    if dtype.kind not in _ALLOWED_KINDS or any(n < 0 for n in shape):
        raise CacheError(f"{path}: array {name!r} has unsupported dtype or shape")
    count = int(np.prod(shape, dtype=np.int64))
    if offset < _PREFIX.size or offset + count * dtype.itemsize > limit:
        raise CacheError(f"{path}: array {name!r} lies outside the file")
    return np.frombuffer(mapped, dtype=dtype, count=count, offset=offset).reshape(shape)

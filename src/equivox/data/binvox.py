"""Reader and writer for the binvox voxel format (no extra dependency).

Format: an ASCII header ``#binvox 1`` / ``dim D0 D1 D2`` / ``translate tx ty tz`` / ``scale s`` / ``data``, then
run-length-encoded bytes ``(value, count)`` (count 1..255) over the voxels in x-z-y order (x slowest, y fastest).
equivox returns the grid indexed ``[x, y, z]`` (what binvox calls x, y, z), which equivox reads as tensor axes
``(d, h, w)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Tuple, Union

import numpy as np

from .errors import DataError

__all__ = ["BinvoxGrid", "read_binvox", "write_binvox"]

PathLike = Union[str, Path]


@dataclass
class BinvoxGrid:
    """A binvox grid.

    Attributes:
        data: ``bool`` array ``(X, Y, Z)`` indexed ``[x, y, z]``.
        translate: world position of the grid's corner (3 floats).
        scale: world size of the whole grid along its longest side (float).
    """

    data: np.ndarray
    translate: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    scale: float = 1.0


def read_binvox(path: PathLike) -> BinvoxGrid:
    """Read a ``.binvox`` file (opened read-only).

    Raises:
        DataError: missing file, bad header, or run-length data that does not fill the grid exactly
            (truncated or corrupt file).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"binvox file not found: {path}")
    raw = path.read_bytes()
    pos = 0
    header = {}
    lines_read = 0
    while True:
        end = raw.find(b"\n", pos)
        if end < 0 or lines_read > 16:
            raise DataError(f"{path}: not a binvox file (no 'data' line in the header)")
        line = raw[pos:end].strip().decode("ascii", errors="replace")
        pos = end + 1
        lines_read += 1
        if lines_read == 1:
            if not line.startswith("#binvox"):
                raise DataError(f"{path}: not a binvox file (first line {line[:40]!r}, expected '#binvox 1')")
            continue
        if line == "data":
            break
        parts = line.split()
        if parts:
            header[parts[0]] = parts[1:]
    try:
        dims = tuple(int(v) for v in header["dim"])
        translate = tuple(float(v) for v in header.get("translate", ["0", "0", "0"]))
        scale = float(header.get("scale", ["1"])[0])
        assert len(dims) == 3 and min(dims) > 0 and len(translate) == 3
    except (KeyError, ValueError, AssertionError, IndexError):
        raise DataError(f"{path}: malformed binvox header {header}") from None
    rle = np.frombuffer(raw[pos:], dtype=np.uint8)
    if rle.size % 2:
        raise DataError(f"{path}: truncated binvox data (odd number of run-length bytes)")
    values, counts = rle[0::2], rle[1::2].astype(np.int64)
    total = int(np.prod(dims))
    if counts.sum() != total:
        raise DataError(f"{path}: binvox data holds {int(counts.sum())} voxels, header says {dims} = {total} "
                        "(truncated or corrupt file)")
    flat = np.repeat(values.astype(bool), counts)
    data = flat.reshape(dims[0], dims[2], dims[1]).transpose(0, 2, 1)  # stored x-z-y -> [x, y, z]
    return BinvoxGrid(np.ascontiguousarray(data), translate, scale)


def write_binvox(path: PathLike, data: np.ndarray, translate=(0.0, 0.0, 0.0), scale: float = 1.0) -> Path:
    """Write a 3D array (nonzero = occupied) indexed ``[x, y, z]`` as a binvox file; returns the path."""
    data = np.asarray(data)
    if data.ndim != 3:
        raise ValueError(f"write_binvox expects a 3D array, got shape {data.shape}")
    flat = (data != 0).transpose(0, 2, 1).ravel().astype(np.uint8)  # [x, y, z] -> stored x-z-y
    out = bytearray()
    if flat.size:
        change = np.flatnonzero(np.diff(flat)) + 1
        starts = np.r_[0, change]
        lengths = np.diff(np.r_[starts, flat.size])
        for start, length in zip(starts, lengths):
            v = int(flat[start])
            while length > 0:
                n = min(int(length), 255)
                out += bytes((v, n))
                length -= n
    dims = data.shape
    header = (f"#binvox 1\ndim {dims[0]} {dims[1]} {dims[2]}\n"
              f"translate {translate[0]} {translate[1]} {translate[2]}\nscale {scale}\ndata\n")
    path = Path(path)
    path.write_bytes(header.encode("ascii") + bytes(out))
    return path

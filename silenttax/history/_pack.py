"""Raw figures packed per series per day (a ``chunk`` row), lossless.

One minute's figure as a ``point`` row costs ~60 bytes with its indexes; a week of
one-minute figures of 40 series is then ~20 MB. A closed day of one series is packed
instead: six float64 columns (time, value, low, high, n, snapshot id; a missing one as
NaN), each byte-shuffled (the k-th byte of every value together, so the slowly changing
high bytes compress to almost nothing), then zlib: ~8 bytes a point, bit-exact.
Standard library only: reading a week of chunks must not import numpy.
"""

from __future__ import annotations

import array
import math
import sys
import zlib
from collections.abc import Sequence

from silenttax.errors import StateError

__all__ = ["PackedPoint", "pack", "unpack"]

_FORMAT = 1
_COLUMNS = 6
_SWAP = sys.byteorder != "little"  # stored little-endian whatever the machine

PackedPoint = tuple[float, float, float | None, float | None, int | None, int]
"""(at, value, lo, hi, n, snapshot)."""


def _column(values: Sequence[float | int | None]) -> bytes:
    data = array.array("d", [math.nan if v is None else float(v) for v in values])
    if _SWAP:
        data.byteswap()
    raw = data.tobytes()
    return b"".join(raw[i::8] for i in range(8))


def pack(points: Sequence[PackedPoint]) -> bytes:
    """The points as one compressed blob (``unpack`` gives them back exactly).

    Examples:
        >>> unpack(pack([(60.0, 0.012, 0.011, 0.013, 200, 7), (120.0, 0.014, None, None, None, 8)]))
        [(60.0, 0.012, 0.011, 0.013, 200, 7), (120.0, 0.014, None, None, None, 8)]
    """
    body = b"".join(_column([p[j] for p in points]) for j in range(_COLUMNS))
    return bytes([_FORMAT]) + zlib.compress(body, 9)


def unpack(blob: bytes) -> list[PackedPoint]:
    """The points of a blob written by :func:`pack`.

    Raises:
        StateError: a blob of another format (a newer silenttax wrote it) or a damaged one.
    """
    if not blob or blob[0] != _FORMAT:
        got = blob[0] if blob else None
        raise StateError(f"a packed chunk of format {got}; this silenttax reads format {_FORMAT}")
    try:
        body = zlib.decompress(blob[1:])
    except zlib.error as exc:
        raise StateError(f"a damaged packed chunk ({exc})") from exc
    n, rest = divmod(len(body), 8 * _COLUMNS)
    if rest:
        raise StateError(f"a damaged packed chunk ({len(body)} bytes)")
    columns = []
    for j in range(_COLUMNS):
        part = body[j * 8 * n : (j + 1) * 8 * n]
        raw = bytearray(8 * n)
        for i in range(8):
            raw[i::8] = part[i * n : (i + 1) * n]
        values = array.array("d")
        values.frombytes(bytes(raw))
        if _SWAP:
            values.byteswap()
        columns.append(values)
    at, value, lo, hi, count, snapshot = columns

    def maybe(v: float) -> float | None:
        return None if math.isnan(v) else v

    return [
        (at[i], value[i], maybe(lo[i]), maybe(hi[i]),
         None if math.isnan(count[i]) else int(count[i]), int(snapshot[i]))
        for i in range(n)
    ]  # fmt: skip

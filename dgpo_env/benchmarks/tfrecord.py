"""TFRecord files without TensorFlow: CRC32C, framing, and a streaming, CRC-checked record reader.

A TFRecord file is a sequence of records, each framed as (little-endian)::

    uint64 length | uint32 masked_crc32c(length bytes) | data[length] | uint32 masked_crc32c(data)

CRC32C is the Castagnoli CRC (reflected polynomial ``0x82F63B78``, initial value and final XOR
``0xFFFFFFFF``; RFC 3720 appendix B.4). TFRecord stores it *masked*:
``((crc >> 15) | (crc << 17)) + 0xA282EAD8 (mod 2**32)`` (DESIGN.md section 1).

Checking a 500 MB file byte by byte in Python would take minutes, so :func:`crc32c_many` runs the
table-driven algorithm on many records at once with numpy: one vectorised step per byte position,
across all records of a batch (records are grouped by length so that little work is wasted).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

CRC32C_POLY = 0x82F63B78  # reflected Castagnoli polynomial, RFC 3720 B.4
MASK_DELTA = 0xA282EAD8  # TFRecord's CRC mask constant
HEADER_BYTES = 12  # uint64 length + uint32 masked CRC of the length
FOOTER_BYTES = 4  # uint32 masked CRC of the data
_U32 = 0xFFFFFFFF
_LENGTH = struct.Struct("<Q")
_CRC = struct.Struct("<I")


class TFRecordError(ValueError):
    """A TFRecord file is corrupt or truncated; the message names the byte offset.

    Attributes:
        offset: Byte offset in the file of the record (or field) where the problem was found.
    """

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


@cache
def crc32c_table() -> NDArray[np.uint32]:
    """The 256-entry CRC32C lookup table (read-only)."""
    table = np.zeros(256, dtype=np.uint32)
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ CRC32C_POLY if crc & 1 else crc >> 1
        table[byte] = crc
    table.flags.writeable = False
    return table


@cache
def _table_list() -> tuple[int, ...]:
    return tuple(int(x) for x in crc32c_table())


def crc32c(data: bytes) -> int:
    """CRC32C of ``data`` (pure Python, table-driven; for short inputs).

    Example:
        >>> hex(crc32c(b"123456789"))  # the standard check value
        '0xe3069283'
    """
    table = _table_list()
    crc = _U32
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ _U32


def mask_crc(crc: int) -> int:
    """TFRecord's masked CRC: rotate right by 15 bits and add ``0xA282EAD8`` (mod 2**32)."""
    return ((((crc >> 15) | (crc << 17)) & _U32) + MASK_DELTA) & _U32


def crc32c_many(
    buffer: NDArray[np.uint8], starts: NDArray[np.int64], lengths: NDArray[np.int64], batch: int = 65_536
) -> NDArray[np.uint32]:
    """CRC32C of many byte ranges of one buffer at once (numpy-vectorised across ranges).

    Args:
        buffer: ``uint8[L]`` bytes.
        starts: ``int64[R]`` start offset of each range.
        lengths: ``int64[R]`` length of each range (``starts + lengths <= L``).
        batch: Ranges processed together; bounds the temporary memory to a few arrays of this size.

    Returns:
        ``uint32[R]`` the CRC32C of every range.
    """
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    assert starts.shape == lengths.shape and starts.ndim == 1
    assert lengths.size == 0 or (lengths.min() >= 0 and (starts + lengths).max() <= buffer.size)
    table = crc32c_table()
    out = np.empty(starts.size, dtype=np.uint32)
    order = np.argsort(lengths, kind="stable")  # similar lengths together: few idle lanes
    for lo in range(0, order.size, batch):
        idx = order[lo : lo + batch]  # [B]
        start, length = starts[idx], lengths[idx]
        crc = np.full(idx.size, _U32, dtype=np.uint32)  # [B]
        first_active = 0  # lengths ascend within the batch, so finished lanes form a prefix
        for k in range(int(length.max(initial=0))):
            while length[first_active] <= k:
                first_active += 1
            lanes = slice(first_active, None)
            byte = buffer[start[lanes] + k]  # [B']
            crc[lanes] = table[(crc[lanes] ^ byte) & 0xFF] ^ (crc[lanes] >> 8)
        out[idx] = crc ^ np.uint32(_U32)
    return out


def mask_crc_many(crc: NDArray[np.uint32]) -> NDArray[np.uint32]:
    """Vectorised :func:`mask_crc`."""
    c = crc.astype(np.uint64)
    rotated = ((c >> 15) | (c << 17)) & _U32
    return ((rotated + MASK_DELTA) & _U32).astype(np.uint32)


def frame_record(data: bytes) -> bytes:
    """One record in TFRecord framing (length, masked CRC of length, data, masked CRC of data)."""
    length = _LENGTH.pack(len(data))
    return length + _CRC.pack(mask_crc(crc32c(length))) + data + _CRC.pack(mask_crc(crc32c(data)))


def write_tfrecord(path: str | Path, records: Sequence[bytes]) -> None:
    """Write ``records`` to a TFRecord file (used to build small test files)."""
    with Path(path).open("wb") as fh:
        for data in records:
            fh.write(frame_record(data))


@dataclass(frozen=True)
class RecordChunk:
    """Consecutive, CRC-checked records of a file, sharing one buffer.

    Attributes:
        buffer: The raw bytes holding the records.
        offsets: ``int64[R]`` file offset of each record's header.
        starts: ``int64[R]`` start of each record's data in ``buffer``.
        lengths: ``int64[R]`` data length of each record.
    """

    buffer: bytes
    offsets: NDArray[np.int64]
    starts: NDArray[np.int64]
    lengths: NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.offsets.size)

    def record(self, i: int) -> bytes:
        """The data of record ``i``."""
        s = int(self.starts[i])
        return self.buffer[s : s + int(self.lengths[i])]


def iter_record_chunks(path: str | Path, chunk_bytes: int = 32 << 20, check_crc: bool = True) -> Iterator[RecordChunk]:
    """Stream a TFRecord file as chunks of records, checking both CRCs of every record.

    Memory stays around ``2 * chunk_bytes`` whatever the file size.

    Args:
        path: The file.
        chunk_bytes: How many bytes to read at a time (a larger record is read whole).
        check_crc: Verify the masked CRC32C of every length and data field.

    Yields:
        :class:`RecordChunk` objects in file order.

    Raises:
        TFRecordError: On a truncated record or a CRC mismatch; the message gives the byte offset.
    """
    with Path(path).open("rb") as fh:
        pending = b""  # bytes of the file from offset `base` that belong to unfinished records
        base = 0
        while True:
            block = fh.read(chunk_bytes)
            eof = not block
            buf = pending + block
            offsets: list[int] = []
            starts: list[int] = []
            lengths: list[int] = []
            pos = 0
            problem: TFRecordError | None = None
            while pos + HEADER_BYTES <= len(buf):
                (length,) = _LENGTH.unpack_from(buf, pos)
                end = pos + HEADER_BYTES + length + FOOTER_BYTES
                if end > len(buf):
                    # Does not fit: either more data follows, or the length field is damaged (check it
                    # now, before buffering a bogus amount), or the file ends too early.
                    (stored,) = _CRC.unpack_from(buf, pos + 8)
                    if check_crc and mask_crc(crc32c(buf[pos : pos + 8])) != stored:
                        problem = TFRecordError(
                            f"{path}: corrupt record at byte offset {base + pos}: the CRC32C of its length field "
                            "does not match the stored checksum (the file is damaged; re-download it and check "
                            "its sha256)",
                            base + pos,
                        )
                    elif eof:
                        problem = TFRecordError(
                            f"{path}: truncated record at byte offset {base + pos}: its header declares "
                            f"{length} data bytes but only {len(buf) - pos - HEADER_BYTES} bytes follow "
                            "(re-download the file)",
                            base + pos,
                        )
                    break
                offsets.append(base + pos)
                starts.append(pos + HEADER_BYTES)
                lengths.append(length)
                pos = end
            if problem is None and eof and pos < len(buf) and pos + HEADER_BYTES > len(buf):
                problem = TFRecordError(
                    f"{path}: truncated record header at byte offset {base + pos}: {len(buf) - pos} trailing "
                    f"bytes, a header needs {HEADER_BYTES} (re-download the file)",
                    base + pos,
                )
            chunk = RecordChunk(
                buf,
                np.array(offsets, dtype=np.int64),
                np.array(starts, dtype=np.int64),
                np.array(lengths, dtype=np.int64),
            )
            if check_crc and len(chunk):
                _check_chunk(path, chunk)  # an earlier corrupt record is reported before `problem`
            if problem is not None:
                raise problem
            if len(chunk):
                yield chunk
            if eof:
                return
            pending = buf[pos:]
            base += pos


def _check_chunk(path: str | Path, chunk: RecordChunk) -> None:
    """Raise :class:`TFRecordError` at the first record of ``chunk`` whose length or data CRC is wrong."""
    arr = np.frombuffer(chunk.buffer, dtype=np.uint8)
    head = chunk.starts - HEADER_BYTES  # [R] header position in the buffer
    stored_len_crc = _read_u32(arr, head + 8)
    stored_data_crc = _read_u32(arr, chunk.starts + chunk.lengths)
    len_crc = mask_crc_many(crc32c_many(arr, head, np.full_like(head, 8)))
    data_crc = mask_crc_many(crc32c_many(arr, chunk.starts, chunk.lengths))
    bad_len = np.flatnonzero(len_crc != stored_len_crc)
    bad_data = np.flatnonzero(data_crc != stored_data_crc)
    if bad_len.size or bad_data.size:
        first = int(min(bad_len.min(initial=len(chunk)), bad_data.min(initial=len(chunk))))
        what = "length field" if first in set(bad_len.tolist()) else "data"
        raise TFRecordError(
            f"{path}: corrupt record at byte offset {int(chunk.offsets[first])}: the CRC32C of its {what} "
            "does not match the stored checksum (the file is damaged; re-download it and check its sha256)",
            int(chunk.offsets[first]),
        )


def _read_u32(arr: NDArray[np.uint8], positions: NDArray[np.int64]) -> NDArray[np.uint32]:
    """Little-endian uint32 values at ``positions`` of a byte array."""
    b = arr[positions[:, None] + np.arange(4)].astype(np.uint32)  # [R, 4]
    return b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16) | (b[:, 3] << 24)


def iter_records(path: str | Path, check_crc: bool = True) -> Iterator[tuple[int, bytes]]:
    """Every record of a TFRecord file as ``(byte offset, data)``, CRC-checked.

    Raises:
        TFRecordError: On a truncated record or a CRC mismatch.
    """
    for chunk in iter_record_chunks(path, check_crc=check_crc):
        for i in range(len(chunk)):
            yield int(chunk.offsets[i]), chunk.record(i)

"""TFRecord files without TensorFlow: framing and a streaming, CRC-checked record reader.

A TFRecord file is a sequence of records, each framed as (little-endian)::

    uint64 length | uint32 masked_crc32c(length bytes) | data[length] | uint32 masked_crc32c(data)

CRC32C is the Castagnoli CRC (RFC 3720 appendix B.4), computed by the ``google-crc32c`` package
(Google's C library, hardware-accelerated where the CPU allows). TFRecord stores it *masked*:
``((crc >> 15) | (crc << 17)) + 0xA282EAD8 (mod 2**32)``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import google_crc32c
import numpy as np
from numpy.typing import NDArray

from dgpo_env.io import atomic_write_bytes

MASK_DELTA = 0xA282EAD8  # TFRecord's CRC mask constant
HEADER_BYTES = 12  # uint64 length + uint32 masked CRC of the length
FOOTER_BYTES = 4  # uint32 masked CRC of the data
_U32 = 0xFFFFFFFF
_LENGTH = struct.Struct("<Q")
_CRC = struct.Struct("<I")


class _Digest(Protocol):
    def update(self, data: bytes, /) -> None: ...


class TFRecordError(ValueError):
    """A TFRecord file is corrupt or truncated; the message names the byte offset.

    Attributes:
        offset: Byte offset in the file of the record (or field) where the problem was found.
    """

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


def crc32c(data: bytes) -> int:
    """CRC32C of ``data`` (``google-crc32c``).

    Example:
        >>> hex(crc32c(b"123456789"))  # the standard check value
        '0xe3069283'
    """
    return int(google_crc32c.value(bytes(data)))


def mask_crc(crc: int) -> int:
    """TFRecord's masked CRC: rotate right by 15 bits and add ``0xA282EAD8`` (mod 2**32)."""
    return ((((crc >> 15) | (crc << 17)) & _U32) + MASK_DELTA) & _U32


def frame_record(data: bytes) -> bytes:
    """One record in TFRecord framing (length, masked CRC of length, data, masked CRC of data)."""
    length = _LENGTH.pack(len(data))
    return length + _CRC.pack(mask_crc(crc32c(length))) + data + _CRC.pack(mask_crc(crc32c(data)))


def write_tfrecord(path: str | Path, records: Sequence[bytes]) -> None:
    """Write ``records`` to a TFRecord file atomically (used to build small test files)."""
    atomic_write_bytes(path, b"".join(frame_record(data) for data in records))


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


def iter_record_chunks(
    path: str | Path, chunk_bytes: int = 32 << 20, check_crc: bool = True, digest: _Digest | None = None
) -> Iterator[RecordChunk]:
    """Stream a TFRecord file as chunks of records, checking both CRCs of every record.

    Memory stays around ``2 * chunk_bytes`` whatever the file size.

    Args:
        path: The file.
        chunk_bytes: How many bytes to read at a time (a larger record is read whole).
        check_crc: Verify the masked CRC32C of every length and data field.
        digest: A ``hashlib`` object updated with every byte of the file, in order (e.g. to
            compare the file's sha256 with the official one once the stream is exhausted).

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
            if digest is not None:
                digest.update(block)
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
    buf = chunk.buffer
    for i, (start, length) in enumerate(zip(chunk.starts.tolist(), chunk.lengths.tolist(), strict=True)):
        head = start - HEADER_BYTES
        what = None
        if mask_crc(crc32c(buf[head : head + 8])) != _CRC.unpack_from(buf, head + 8)[0]:
            what = "length field"
        elif mask_crc(crc32c(buf[start : start + length])) != _CRC.unpack_from(buf, start + length)[0]:
            what = "data"
        if what is not None:
            offset = int(chunk.offsets[i])
            raise TFRecordError(
                f"{path}: corrupt record at byte offset {offset}: the CRC32C of its {what} does not match "
                "the stored checksum (the file is damaged; re-download it and check its sha256)",
                offset,
            )


def iter_records(path: str | Path, check_crc: bool = True) -> Iterator[tuple[int, bytes]]:
    """Every record of a TFRecord file as ``(byte offset, data)``, CRC-checked.

    Raises:
        TFRecordError: On a truncated record or a CRC mismatch.
    """
    for chunk in iter_record_chunks(path, check_crc=check_crc):
        for i in range(len(chunk)):
            yield int(chunk.offsets[i]), chunk.record(i)

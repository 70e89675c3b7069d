"""G.711 A-law and µ-law codecs for test audio (bytes <-> int16 samples).

Pure Python replacement for the deprecated `audioop`; follows the ITU-T G.711 reference
(Sun's g711.c), with lookup tables built once on first use.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from functools import cache
from typing import Literal

Codec = Literal["ulaw", "alaw"]

ULAW_SILENCE = 0xFF  # encodes 0
ALAW_SILENCE = 0xD5  # encodes +8, the smallest positive step
PAYLOAD_TYPES: dict[int, Codec] = {0: "ulaw", 8: "alaw"}  # RFC 3551 static payload types
PAYLOAD_TYPE_OF: dict[Codec, int] = {"ulaw": 0, "alaw": 8}

_ULAW_BIAS = 0x84
_ULAW_CLIP_14 = 8159
_ULAW_SEG_END = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)
_ALAW_SEG_END = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)


def _ulaw_decode_one(code: int) -> int:
    code = ~code & 0xFF
    exponent = (code >> 4) & 0x07
    magnitude = (((code & 0x0F) << 3) + _ULAW_BIAS) << exponent
    magnitude -= _ULAW_BIAS
    return -magnitude if code & 0x80 else magnitude


def _ulaw_encode_one(sample: int) -> int:
    value = sample >> 2  # µ-law works on 14 bits
    if value < 0:
        value = -value
        mask = 0x7F
    else:
        mask = 0xFF
    value = min(value, _ULAW_CLIP_14) + (_ULAW_BIAS >> 2)
    segment = next((i for i, end in enumerate(_ULAW_SEG_END) if value <= end), 8)
    if segment >= 8:
        return 0x7F ^ mask
    return ((segment << 4) | ((value >> (segment + 1)) & 0x0F)) ^ mask


def _alaw_decode_one(code: int) -> int:
    code ^= 0x55
    value = (code & 0x0F) << 4
    segment = (code & 0x70) >> 4
    if segment == 0:
        value += 8
    else:
        value = (value + 0x108) << (segment - 1)
    return value if code & 0x80 else -value


def _alaw_encode_one(sample: int) -> int:
    value = sample >> 3  # A-law works on 13 bits
    if value >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        value = -value - 1
    segment = next((i for i, end in enumerate(_ALAW_SEG_END) if value <= end), 8)
    if segment >= 8:
        return 0x7F ^ mask
    code = segment << 4
    code |= (value >> 1 if segment < 2 else value >> segment) & 0x0F
    return code ^ mask


@cache
def _decode_table(codec: Codec) -> bytes:
    """256 little/native-endian int16 values, one per code, as raw bytes for fast joins."""
    decode_one = _ulaw_decode_one if codec == "ulaw" else _alaw_decode_one
    return array("h", (decode_one(code) for code in range(256))).tobytes()


@cache
def _decode_pairs(codec: Codec) -> tuple[bytes, ...]:
    table = _decode_table(codec)
    return tuple(table[2 * code : 2 * code + 2] for code in range(256))


@cache
def _encode_table(codec: Codec) -> bytes:
    """65536 codes indexed by the sample's unsigned 16-bit pattern (sample & 0xFFFF)."""
    encode_one = _ulaw_encode_one if codec == "ulaw" else _alaw_encode_one
    return bytes(encode_one(value - 65536 if value >= 32768 else value) for value in range(65536))


def encode(samples: Iterable[int], codec: Codec) -> bytes:
    """Encode int16 samples (values outside int16 are clipped) into G.711 bytes."""
    table = _encode_table(codec)
    return bytes(table[max(-32768, min(32767, sample)) & 0xFFFF] for sample in samples)


def decode(data: bytes, codec: Codec) -> array[int]:
    """Decode G.711 bytes into an array('h') of int16 samples."""
    pairs = _decode_pairs(codec)
    out = array("h")
    out.frombytes(b"".join(map(pairs.__getitem__, data)))
    return out


def ulaw_encode(samples: Iterable[int]) -> bytes:
    return encode(samples, "ulaw")


def ulaw_decode(data: bytes) -> array[int]:
    return decode(data, "ulaw")


def alaw_encode(samples: Iterable[int]) -> bytes:
    return encode(samples, "alaw")


def alaw_decode(data: bytes) -> array[int]:
    return decode(data, "alaw")


def silence_byte(codec: Codec) -> int:
    return ULAW_SILENCE if codec == "ulaw" else ALAW_SILENCE

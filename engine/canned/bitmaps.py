"""Sets of canned messages as bitmaps: an ``int`` whose bit ``n`` stands for the message in slot
``n`` (see `engine.canned.index`), and posting lists that map index keys to such bitmaps.

Pure: no I/O, no trio, no clocks.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

__all__ = ["add_bit", "bitmap_of", "remove_bit", "slots_desc"]


def bitmap_of(slots: list[int]) -> int:
    """The bitmap of ``slots``, which must be in increasing order."""
    buf = bytearray((slots[-1] >> 3) + 1)
    for slot in slots:
        buf[slot >> 3] |= 1 << (slot & 7)
    return int.from_bytes(buf, "little")


def slots_desc(bitmap: int) -> Iterator[int]:
    """The slots of ``bitmap``, highest (newest) first."""
    bits = bin(bitmap)  # "0b" then the bits, most significant first
    top = len(bits) - 1
    at = bits.find("1", 2)
    while at != -1:
        yield top - at
        at = bits.find("1", at + 1)


def add_bit(postings: dict[str, int], keys: Iterable[str], bit: int) -> None:
    """Add ``bit`` to the bitmap of every key of ``keys``."""
    for key in keys:
        postings[key] = postings.get(key, 0) | bit


def remove_bit(postings: dict[str, int], keys: Iterable[str], bit: int) -> None:
    """Take ``bit`` out of the bitmap of every key of ``keys``; a bitmap left empty goes."""
    for key in keys:
        left = postings[key] & ~bit
        if left:
            postings[key] = left
        else:
            del postings[key]

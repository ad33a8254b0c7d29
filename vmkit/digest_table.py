"""The target side of full verification in 17 bytes a record (about 33 at the peak of building
it): a 64-bit hash of every key and the first 64 bits of its content digest, in two numpy
arrays sorted by key hash, and one "seen" flag per record.

The source side streams past it batch by batch (``match``: a binary search per record), so
memory does not grow with the source. Keys themselves are not kept: a target key no source
record claimed is found again by its hash in a second pass over the target (``extra_keys``),
which only a failing verification needs.

Two different keys share a 64-bit hash with probability about n**2 / 2**65 (3e-6 for 10M
records); two different contents share a 64-bit digest head with probability 2**-64 per
compared record. A shared key hash is handled (every entry with it is looked at).
"""

from __future__ import annotations

from itertools import islice
from typing import Iterable, Iterator, Sequence

import numpy as np
import xxhash

from vmkit.records import RecordId

Key = tuple[str, RecordId]
MATCHED, DIFFERS, ABSENT = 0, 1, 2
_CHUNK = 1 << 16


def key_hashes(keys: Sequence[Key]) -> np.ndarray:
    """64-bit hash of each (namespace, id); int 7 and string "7" differ."""
    h = xxhash.xxh3_64_intdigest
    return np.fromiter((h(f"{ns}\x1f{'i' if isinstance(rid, int) else 's'}:{rid}".encode()) for ns, rid in keys),
                       dtype=np.uint64, count=len(keys))


def digest_heads(digests: Sequence[bytes]) -> np.ndarray:
    """The first 8 bytes of each 16-byte content digest, as uint64."""
    if not digests:
        return np.zeros(0, np.uint64)
    return np.frombuffer(b"".join(digests), dtype="<u8").reshape(len(digests), -1)[:, 0].astype(np.uint64)


class DigestTable:
    """Key hash -> digest head for every target record; build with ``add``, then ``freeze``."""

    def __init__(self) -> None:
        self._key_parts: list[np.ndarray] = []
        self._digest_parts: list[np.ndarray] = []
        self.keys = np.zeros(0, np.uint64)
        self.digests = np.zeros(0, np.uint64)
        self.seen = np.zeros(0, bool)

    @classmethod
    def from_digests(cls, pairs: Iterable[tuple[Key, bytes]]) -> "DigestTable":
        """A frozen table from ((namespace, id), digest) pairs, read in chunks."""
        table = cls()
        it = iter(pairs)
        while chunk := list(islice(it, _CHUNK)):
            table.add([k for k, _ in chunk], [d for _, d in chunk])
        table.freeze()
        return table

    def add(self, keys: Sequence[Key], digests: Sequence[bytes]) -> None:
        if keys:
            self._key_parts.append(key_hashes(keys))
            self._digest_parts.append(digest_heads(digests))

    def freeze(self) -> None:
        """One sorted pair of arrays. Parts are joined and freed one column at a time and the
        columns reordered one at a time, so the peak stays at 32 bytes a record."""
        keys = _join(self._key_parts)
        digests = _join(self._digest_parts)
        order = np.argsort(keys, kind="stable")
        self.keys = keys[order]
        del keys
        self.digests = digests[order]
        del digests, order
        self.seen = np.zeros(len(self.keys), bool)

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def nbytes(self) -> int:
        return int(self.keys.nbytes + self.digests.nbytes + self.seen.nbytes)

    def match(self, keys: np.ndarray, digests: np.ndarray) -> np.ndarray:
        """Per source record: MATCHED, DIFFERS (the key is there with another digest) or
        ABSENT. Every entry looked at is marked seen, so what is unseen at the end is extra."""
        status = np.full(len(keys), ABSENT, np.int8)
        if not len(self.keys) or not len(keys):
            return status
        left = np.searchsorted(self.keys, keys, "left")
        width = np.searchsorted(self.keys, keys, "right") - left
        one = np.flatnonzero(width == 1)
        at = left[one]
        status[one] = np.where(self.digests[at] == digests[one], MATCHED, DIFFERS)
        self.seen[at] = True
        for row in np.flatnonzero(width > 1):  # a shared key hash: look at every entry
            span = slice(int(left[row]), int(left[row] + width[row]))
            same = np.flatnonzero(self.digests[span] == digests[row])
            if len(same):
                status[row] = MATCHED
                self.seen[span.start + int(same[0])] = True
            else:
                status[row] = DIFFERS
                self.seen[span] = True
        return status

    def unseen(self) -> np.ndarray:
        """Key hashes of target records no source record claimed."""
        return self.keys[~self.seen]


def extra_keys(unseen: np.ndarray, keys: Iterable[Sequence[Key]]) -> list[Key]:
    """The keys (given in chunks, e.g. a second pass over the target) whose hash is unseen."""
    if not len(unseen):
        return []
    wanted = np.unique(unseen)
    out: list[Key] = []
    for chunk in keys:
        if not len(chunk):
            continue
        hashes = key_hashes(chunk)
        pos = np.minimum(np.searchsorted(wanted, hashes), len(wanted) - 1)
        out += [chunk[int(i)] for i in np.flatnonzero(wanted[pos] == hashes)]
    return out


def chunked(pairs: Iterable[tuple[Key, bytes]], size: int = _CHUNK) -> Iterator[list[Key]]:
    """Keys of ((namespace, id), digest) pairs in lists of ``size``."""
    it = iter(pairs)
    while chunk := [k for k, _ in islice(it, size)]:
        yield chunk


def _join(parts: list[np.ndarray]) -> np.ndarray:
    """Concatenate and empty ``parts`` (the list given), freeing each part once copied."""
    out = np.empty(sum(len(p) for p in parts), np.uint64)
    pos = 0
    while parts:
        part = parts.pop(0)
        out[pos : pos + len(part)] = part
        pos += len(part)
    return out

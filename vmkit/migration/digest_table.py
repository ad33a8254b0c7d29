"""The target side of full verification in 17 bytes a record (24 at the peak of building it): a 64-bit hash of every key and the first 64 bits of its content digest, in two numpy
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
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import xxhash

from vmkit.core.records import RecordId

Key = tuple[str, RecordId]
MATCHED, DIFFERS, ABSENT = 0, 1, 2
_CHUNK = 1 << 16
_BLOCK = 1 << 22  # 32 MiB of uint64: at malloc's largest mmap threshold, so always mapped


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
        # Built in blocks of _BLOCK entries: large enough that malloc maps each one on its
        # own, so a freed block leaves the process (small parts would stay in the heap), and
        # pages of a block not yet written are not resident.
        self._key_blocks: list[np.ndarray] = []
        self._digest_blocks: list[np.ndarray] = []
        self._size = 0
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
        hashes, heads = key_hashes(keys), digest_heads(digests)
        done = 0
        while done < len(hashes):
            at = self._size % _BLOCK
            if at == 0:
                self._key_blocks.append(np.empty(_BLOCK, np.uint64))
                self._digest_blocks.append(np.empty(_BLOCK, np.uint64))
            step = min(len(hashes) - done, _BLOCK - at)
            self._key_blocks[-1][at : at + step] = hashes[done : done + step]
            self._digest_blocks[-1][at : at + step] = heads[done : done + step]
            done += step
            self._size += step

    def freeze(self) -> None:
        """One sorted pair of arrays. Parts are joined and freed one column at a time (24 bytes
        a record at the peak), then sorted together in place (numba; without it, through an
        argsort: 32 bytes a record)."""
        self.keys = _join(self._key_blocks, self._size)
        self.digests = _join(self._digest_blocks, self._size)
        sort_pairs(self.keys, self.digests)
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


def sort_pairs(keys: np.ndarray, digests: np.ndarray) -> None:
    """Sort ``keys`` in place, ``digests`` moved alike, with no extra memory (heapsort)."""
    if HAVE_NUMBA:
        _heapsort_pairs(keys, digests)
        return
    order = np.argsort(keys)  # pragma: no cover - without numba
    keys.sort()
    digests[:] = digests[order]


try:
    from numba import njit

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - numba is a dependency; kept like vmkit.core.kernels
    HAVE_NUMBA = False

    def njit(*args: Any, **kwargs: Any) -> Any:  # type: ignore[no-redef]
        return args[0] if args and callable(args[0]) else (lambda f: f)


@njit(cache=True)
def _heapsort_pairs(keys: np.ndarray, values: np.ndarray) -> None:  # pragma: no cover - compiled
    n = keys.shape[0]

    def sift(start: int, end: int) -> None:
        root = start
        while True:
            child = 2 * root + 1
            if child >= end:
                return
            if child + 1 < end and keys[child] < keys[child + 1]:
                child += 1
            if keys[root] >= keys[child]:
                return
            keys[root], keys[child] = keys[child], keys[root]
            values[root], values[child] = values[child], values[root]
            root = child

    for start in range(n // 2 - 1, -1, -1):
        sift(start, n)
    for end in range(n - 1, 0, -1):
        keys[0], keys[end] = keys[end], keys[0]
        values[0], values[end] = values[end], values[0]
        sift(0, end)


def _join(blocks: list[np.ndarray], size: int) -> np.ndarray:
    """The first ``size`` entries of ``blocks`` in one array; empties the list given, freeing
    each block once copied."""
    if len(blocks) == 1:  # a view: the block's pages past ``size`` were never written
        return blocks.pop()[:size]
    if not blocks:
        return np.zeros(0, np.uint64)
    out = np.empty(size, np.uint64)
    pos = 0
    while blocks:
        block = blocks.pop(0)
        step = min(len(block), size - pos)
        out[pos : pos + step] = block[:step]
        pos += step
        del block
    return out

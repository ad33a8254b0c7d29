"""msgspec's decoding information built before threads decode, for SDKs that use msgspec
(the Pinecone SDK decodes every response with it).

msgspec (0.22) builds a Struct type's decoding information on that type's first decode, and
two threads doing so at once can crash the interpreter: a segfault in the Pinecone SDK's list
decode, in 24 of 80 fresh processes where six threads decoded a list page for the first time
with the GIL handed over every 0.5 ms (as vmkit's runs do, see ``vmkit.core.interpreter``), none in
150 at CPython's default 5 ms. A scan's first listings and fetches are exactly that. Building a
Decoder for each of the SDK's Struct types first, on one thread, takes about 2 ms.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

_lock = threading.Lock()
_prepared: set[type] = set()


def prepare_struct_types(package: str) -> int:
    """Builds a msgspec JSON Decoder for every Struct type defined in ``package`` (and its
    modules imported so far) not built before in this process; returns how many it built."""
    import msgspec

    built = 0
    with _lock:
        for cls in [c for c in _subclasses(msgspec.Struct)
                    if c.__module__.split(".")[0] == package and c not in _prepared]:
            _prepared.add(cls)
            try:
                msgspec.json.Decoder(cls)
                built += 1
            except TypeError:  # a type msgspec cannot decode (the SDK does not decode it whole)
                continue
        return built


def _subclasses(cls: Any) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)

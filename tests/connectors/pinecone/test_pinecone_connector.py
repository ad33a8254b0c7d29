"""PineconeConnector through the real ``pinecone`` SDK against the local emulator."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import orjson
import pytest
from emulators.pinecone_emulator import EMU_KEY, PineconeEmulator

from vmkit.connectors import connect
from vmkit.connectors.base import TargetSpec
from vmkit.core.errors import (
    ConfigError,
    InvalidData,
    MissingDependency,
    SecretInURI,
    TerminalError,
    TransientError,
)
from vmkit.core.records import RecordBatch, SparseVector

pytest.importorskip("pinecone")

DIM = 8
SPACES = {"": 130, "alpha": 75, "beta": 101}


def _rows(ns: str, n: int, seed: int = 0) -> list[tuple]:
    rng = np.random.default_rng(seed + len(ns))
    vecs = rng.standard_normal((n, DIM)).astype(np.float32)
    return [(f"{ns or 'dflt'}-{i:04d}", vecs[i], {"n": i, "tag": ns, "tags": ["x", ns]},
             ([i, i + 7], [0.5, 1.5]) if i % 3 else None) for i in range(n)]


@pytest.fixture
def src(pinecone_emu: PineconeEmulator) -> dict[str, dict[str, tuple]]:
    """Index 'src' (dotproduct) with three namespaces, the default one included."""
    pinecone_emu.create_index("src", DIM, "dotproduct")
    data = {}
    for ns, n in SPACES.items():
        rows = _rows(ns, n)
        pinecone_emu.seed("src", rows, namespace=ns)
        data[ns] = {r[0]: r for r in rows}
    return data


def _scan_all(uri: str, limit: int, cursor: str | None = None) -> tuple[list, list[tuple]]:
    """Every (namespace, id) a scan yields, and (cursor, records read so far) after each batch."""
    conn, seen, cursors = connect(uri), [], []
    while True:
        batch, cursor = conn.scan(cursor, limit)
        assert len(batch) <= limit
        seen += [(batch.namespace, rid) for rid in batch.ids]
        cursors.append((cursor, len(seen)))
        if cursor is None:
            conn.close()
            return seen, cursors


def _batch(ids: list[str], ns: str = "", dim: int = DIM, seed: int = 1, meta: dict | None = None,
           sparse: bool = False) -> RecordBatch:
    vecs = np.random.default_rng(seed).standard_normal((len(ids), dim)).astype(np.float32)
    sp = [SparseVector.of([i, i + 100], [0.25, 4.0]) for i in range(len(ids))] if sparse else None
    return RecordBatch(list(ids), vecs, [dict(meta or {"k": "v"}) for _ in ids], sp, ns)


# -- describe, count, capabilities -------------------------------------------------------------
def test_describe_count_and_capabilities(src: dict) -> None:
    conn = connect("pinecone://src")
    info = conn.describe()
    assert (info.name, info.dimension, info.metric, info.sparse) == ("src", DIM, "dot", True)
    assert info.namespaces == SPACES and info.count == sum(SPACES.values()) == conn.count()
    assert connect("pinecone://src?namespace=alpha").count() == 75
    assert connect("pinecone://src?namespace=").describe().namespaces == {"": 130}
    assert connect("pinecone://nope").describe() is None
    # A URI pinned to one namespace reconciles counts with that namespace alone.
    assert connect("pinecone://src?namespace=alpha").namespace_counts() == {"alpha": 75}
    assert connect("pinecone://src?namespace=").namespace_counts() == {"": 130}
    caps = conn.capabilities
    assert (caps.max_batch_records, caps.id_kinds, caps.max_id_length) == \
        (1000, frozenset({"string", "uuid"}), 512)
    assert caps.max_batch_bytes <= 2 * 1024 * 1024 and caps.wire_bytes_per_float >= 20
    assert caps.metrics == frozenset({"cosine", "euclidean", "dot"})
    assert caps.eventually_consistent and caps.rejects_zero_vectors and caps.can_list
    assert not (caps.metadata_nested or caps.metadata_null or caps.metadata_mixed_lists)
    assert caps.max_metadata_bytes == 40 * 1024 and caps.sparse and caps.namespaces


# -- scan --------------------------------------------------------------------------------------
def _in_turns(src: dict, limit: int, streams: int) -> list[tuple[str, str]]:
    """The documented read order: up to ``streams`` namespaces open at once, started in
    bytewise order, each giving one batch of up to ``limit`` ids (bytewise) per turn."""
    waiting = sorted(src, key=str.encode)
    open_: list[list] = []
    order = []
    while waiting or open_:
        while waiting and len(open_) < streams:
            ns = waiting.pop(0)
            open_.append([ns, sorted(src[ns], key=str.encode)])
        ns, ids = open_.pop(0)
        order += [(ns, rid) for rid in ids[:limit]]
        if ids[limit:]:
            open_.append([ns, ids[limit:]])
    return order


@pytest.mark.parametrize("limit", [7, 100, 250, 1000])
@pytest.mark.parametrize("streams", [1, 2, 4])
def test_scan_reads_every_namespace_once(src: dict, limit: int, streams: int) -> None:
    seen, _ = _scan_all(f"pinecone://src?list_streams={streams}", limit)
    assert sorted(seen) == sorted((ns, rid) for ns in SPACES for rid in src[ns])  # each once
    assert seen == _in_turns(src, limit, streams)  # namespaces in turn, ids bytewise
    if streams == 1:
        assert seen == [(ns, rid) for ns in sorted(SPACES) for rid in sorted(src[ns])]


@pytest.mark.parametrize("streams", [1, 2, 4])
def test_scan_resumes_from_any_persisted_cursor(src: dict, streams: int) -> None:
    uri = f"pinecone://src?list_streams={streams}"
    full, cursors = _scan_all(uri, 37)
    states = [orjson.loads(c) for c, _ in cursors[:-1]]
    assert any(token for s in states for _, _, token in s["open"])  # mid-namespace
    assert any(len(s["open"]) < streams and s["after"] == "beta" for s in states)  # some finished
    for cursor, done in cursors[:-1]:
        # a fresh connector (new SDK client) from the stored cursor reads exactly the rest
        rest, _ = _scan_all(uri, 37, cursor)
        assert rest == full[done:]


def _most_namespaces_listed_at_once(pinecone_emu: PineconeEmulator, since: float) -> int:
    lists = [r for r in pinecone_emu.requests("list") if r.started >= since]
    return max(len({o.namespace for o in lists if o.started <= r.started < o.ended}) for r in lists)


def test_namespaces_are_listed_at_once(pinecone_emu: PineconeEmulator) -> None:
    pinecone_emu.create_index("many", DIM, "dotproduct")
    for ns in ("a", "b", "c", "d", "e"):
        pinecone_emu.seed("many", _rows(ns, 250), namespace=ns)
    pinecone_emu.faults.latency_ms = 15
    for streams, most in ((1, 1), (4, 4)):
        since = time.monotonic()
        seen, _ = _scan_all(f"pinecone://many?list_streams={streams}", 100)
        assert sorted(seen) == sorted((ns, f"{ns}-{i:04d}") for ns in "abcde" for i in range(250))
        assert _most_namespaces_listed_at_once(pinecone_emu, since) == most


def test_requests_keep_within_the_rate_limits(pinecone_emu: PineconeEmulator, pinecone_sdk_sleeps: list) -> None:
    """Each request first waits for room under the index's limits (here lowered on both sides
    so that the test is short): a scan on 4 streams and 8 fetch threads is never refused, and
    the same scan unpaced is."""
    pinecone_emu.create_index("many", DIM, "dotproduct")
    for ns in ("a", "b", "c", "d", "e"):
        pinecone_emu.seed("many", _rows(ns, 250), namespace=ns)
    pinecone_emu.rates.limits.update(fetch=15, list=30)
    seen, _ = _scan_all("pinecone://many?rate_limits=fetch:15,list:30", 50)
    assert sorted(seen) == sorted((ns, f"{ns}-{i:04d}") for ns in "abcde" for i in range(250))
    assert pinecone_emu.rates.refused == 0
    fetches = sorted(r.started for r in pinecone_emu.requests("fetch"))
    assert len(fetches) >= 25 and all(b - a >= 1.0 for a, b in zip(fetches, fetches[15:]))
    try:  # the SDK retries some 429s itself; whether it gives up in the end does not matter
        _scan_all("pinecone://many?rate_limits=off", 50)
    except TransientError as exc:
        assert "429" in str(exc)
    assert pinecone_emu.rates.refused > 0


def test_a_request_held_up_after_its_permit_still_arrives_within_the_limit() -> None:
    """A request can be held up between its permit and the service: a full garbage collection
    in a process with a large heap stops every thread for 100 ms or more (94-111 ms measured
    during a migration; more in this test process). The requests after it must still not pass
    the limit where the service counts them, on arrival."""
    from emulators.pinecone_rates import RateLimits

    from vmkit.connectors.pinecone.rates import Pacer

    pacer, service = Pacer({"fetch": 5}), RateLimits()
    service.limits = {"fetch": 5}
    pacer.wait("fetch")
    time.sleep(0.2)  # the first request stalls before it leaves
    service.admit("idx", "fetch", "", 1)
    for _ in range(5):  # the next window's first request is the sixth
        pacer.wait("fetch")
        service.admit("idx", "fetch", "", 1)  # raises the 429 the service would answer
    assert service.refused == 0


def test_rate_limits_option(pinecone_emu: PineconeEmulator) -> None:
    one, two = connect("pinecone://idx"), connect("pinecone://idx?namespace=x")
    assert one._pacer is two._pacer  # one budget per index in a process
    assert connect("pinecone://idx?rate_limits=off")._pacer is not one._pacer
    for bad in ("fetch:0", "fetch", "scan:5", "list:many"):
        with pytest.raises(ConfigError, match="rate_limits takes op:N pairs"):
            connect(f"pinecone://idx?rate_limits={bad}")


# Ids whose first characters cover hex digits and characters URLs and JSON treat specially.
ODD_FIRSTS = "0123456789abcdef #%&+/?~\x01\x7f"


def _split_src(pinecone_emu: PineconeEmulator) -> dict[str, dict[str, tuple]]:
    """Index 'split': namespace "" big enough to split (10,400 ids over 26 first characters,
    so its probe budget, two per list page, pays for its first split: 126 first characters
    above its smallest id's, or a level further down), namespace "small" not. The service's rate limits are lifted, and the
    tests' URIs do not pace: these tests are about order, and scan thousands of ids."""
    pinecone_emu.rates.limits = {}
    pinecone_emu.create_index("split", DIM, "dotproduct")
    rng = np.random.default_rng(7)
    data: dict[str, dict[str, tuple]] = {"": {}, "small": {}}
    for ns, ids in (("", [f"{c}{rng.integers(1 << 32):08x}" for c in ODD_FIRSTS for i in range(400)]),
                    ("small", [f"s{i:03d}" for i in range(30)])):
        rows = [(rid, rng.standard_normal(DIM).astype(np.float32), {"i": i}, None) for i, rid in enumerate(ids)]
        pinecone_emu.seed("split", rows, namespace=ns)
        data[ns] = {r[0]: r for r in rows}
    return data


def _in_turns_split(src: dict, limit: int, streams: int, split_above: int) -> list[tuple[str, str]]:
    """The documented order with prefixes: a namespace holding at least ``split_above`` ids is
    one stream per first character (in code order), all open at once, and streams take turns
    as namespaces do."""
    units = []
    for ns in sorted(src, key=str.encode):
        ids = sorted(src[ns], key=str.encode)
        if streams > 1 and len(ids) >= split_above:
            units += [(ns, [i for i in ids if i[0] == c]) for c in sorted({i[0] for i in ids})]
        else:
            units.append((ns, ids))
    return _rotation(units, limit, streams)


def _rotation(units: list[tuple[str, list[str]]], limit: int, streams: int) -> list[tuple[str, str]]:
    """Streams (namespace, its ids in order) opened in the given order, each giving up to
    ``limit`` ids per turn: all of a namespace's at once, and the next namespace's while fewer
    than ``streams`` are open."""
    units = list(units)
    open_: list = []
    order = []
    while units or open_:
        while units and len(open_) < streams:
            ns = units[0][0]
            while units and units[0][0] == ns:
                open_.append(list(units.pop(0)))
        ns, ids = open_.pop(0)
        order += [(ns, rid) for rid in ids[:limit]]
        if ids[limit:]:
            open_.append([ns, ids[limit:]])
    return order


@pytest.mark.parametrize("streams, limit", [(1, 300), (4, 300), (4, 1000), (3, 230)])
def test_a_big_namespace_is_listed_by_first_character_at_once(pinecone_emu: PineconeEmulator, streams: int,
                                                              limit: int) -> None:
    src = _split_src(pinecone_emu)
    uri = f"pinecone://split?list_streams={streams}&split_above=100&rate_limits=off"
    pinecone_emu.faults.latency_ms = 10  # long enough for listings to overlap when they run at once
    since = time.monotonic()
    full, cursors = _scan_all(uri, limit)
    pinecone_emu.faults.latency_ms = 0
    assert sorted(full) == sorted((ns, rid) for ns in src for rid in src[ns])  # each once
    assert full == _in_turns_split(src, limit, streams, 100)
    lists = [r for r in pinecone_emu.requests("list") if r.started >= since]
    busiest = max(sum(o.started <= r.started < o.ended for o in lists) for r in lists)
    assert (busiest >= 3) if streams > 1 else (busiest == 1)
    probes = sorted(r.prefix for r in lists if r.limit == 1)
    if streams > 1:  # the smallest id, then a limit=1 probe per character above its first
        assert probes == [chr(c) for c in range(2, 128)]
    else:
        assert probes == []
    for cursor, done in _spread(cursors[:-1]):  # a fresh connector resumes exactly the rest
        assert _scan_all(uri, limit, cursor)[0] == full[done:]


def _spread(cursors: list, most: int = 25) -> list:
    """Up to ``most`` of ``cursors``, evenly spread, the first and last included."""
    step = max(1, -(-len(cursors) // most))
    return cursors[::step] + ([cursors[-1]] if (len(cursors) - 1) % step else [])


def test_connections_are_kept_alive_for_every_request_in_flight(pinecone_emu: PineconeEmulator) -> None:
    """Probes (32 at once), listings and fetches overlap; each keeps a connection between its
    requests. Past the SDK's keep-alive count a connection is closed after each request: a
    TLS handshake a request on the service, and answers left unread until a 30 s timeout."""
    _split_src(pinecone_emu)
    pinecone_emu.faults.latency_ms = 20  # the probes' waves overlap 32 requests at a time
    since = time.monotonic()
    seen, _ = _scan_all("pinecone://split?list_streams=4&split_above=100&rate_limits=off", 1000)
    pinecone_emu.faults.latency_ms = 0
    data = [r for r in pinecone_emu.requests() if r.plane != "control" and r.started >= since]
    busiest = max(sum(o.started <= r.started < o.ended for o in data) for r in data)
    assert len(seen) == 10_430 and len(data) > 300 and busiest > 10  # past the SDK default keep-alive
    in_flight = 3 * 4 + 32 + 8 + 8 + 8  # streams' listings and fetches, probes, queries, sampled namespaces, writers
    assert len({r.peer for r in data}) <= in_flight


def test_a_namespace_below_split_above_is_not_probed(pinecone_emu: PineconeEmulator) -> None:
    src = _split_src(pinecone_emu)
    since = time.monotonic()
    full, _ = _scan_all("pinecone://split?list_streams=4&split_above=10401&rate_limits=off", 1000)
    assert full == _in_turns_split(src, 1000, 4, 10401)
    lists = [r for r in pinecone_emu.requests("list") if r.started >= since]
    assert len(lists) <= 104 + 1 + 2  # pages of 10,400 + 30 ids, at most one empty last page each:
    assert all(r.limit != 1 for r in lists)  # no limit=1 probes (the split would take 100+)
    one, _ = _scan_all("pinecone://split?namespace=&list_streams=4&split_above=10400&rate_limits=off", 500)
    assert one == _in_turns_split({"": src[""]}, 500, 4, 10400)  # a URI's one namespace splits too


@pytest.mark.parametrize("limit, lists", [(1000, 61), (64, 1 + 95)])
def test_an_unsplit_namespace_starts_from_the_page_its_split_looked_at(pinecone_emu: PineconeEmulator, limit: int,
                                                                        lists: int) -> None:
    """A namespace big enough to be looked at for a split, whose ids part too late to split,
    is listed from the first page fetched for that look: each page once (61 for 6,050 ids). A
    batch smaller than that page lists afresh, in pages of its own size."""
    ids = [f"doc-{i:07d}" for i in range(6050)]
    pinecone_emu.create_index("docs", DIM, "dotproduct")
    pinecone_emu.rates.limits = {}
    vecs = np.random.default_rng(5).standard_normal((len(ids), DIM)).astype(np.float32)
    pinecone_emu.seed("docs", [(rid, vecs[i], None, None) for i, rid in enumerate(ids)])
    since = time.monotonic()
    full, cursors = _scan_all("pinecone://docs?rate_limits=off", limit)
    assert full == [("", rid) for rid in ids]
    listed = [r for r in pinecone_emu.requests("list") if r.started >= since]
    assert len(listed) == lists and all(r.limit != 1 for r in listed)
    for cursor, done in _spread(cursors[:-1], 5):
        assert _scan_all("pinecone://docs?rate_limits=off", limit, cursor)[0] == full[done:]


def _hex_ids(prefix: str, n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [f"{prefix}{rng.integers(1 << 32):08x}" for _ in range(n)]


_D_ABC = [i for c in "abc" for i in _hex_ids(f"d{c}", 4000, ord(c))]  # budget: 240 probes


@pytest.mark.parametrize("ids, streams, prefixes, probes", [
    # nothing above d (27 probes); b and c above a (30)
    (_D_ABC, 3, ["da", "db", "dc"], 57),
    # the next level would cost 3 x 79 probes, past the budget (two per list page)
    (_D_ABC, 4, ["da", "db", "dc"], 57),
    # an id equal to a shared prefix cannot be refined: its extensions would miss it
    (_D_ABC + ["d"], 4, ["d"], 27),
    # a small second branch is refined along with the big one
    (_hex_ids("d", 9500, 1) + ["zz"], 4, [f"d{h:x}" for h in range(16)] + ["zz"], 27 + (79 + 5)),
    # UUID-like ids part at the first character
    (_hex_ids("", 8000, 2), 4, [f"{h:x}" for h in range(16)], 79),
    # ids sharing a long prefix part too late: their first split (469 probes) is past the budget
    ([f"doc-{i:07d}" for i in range(20000)], 4, [""], 0),
])
def test_split_refines_prefixes_from_the_smallest_id(pinecone_emu: PineconeEmulator, ids: list, streams: int,
                                                      prefixes: list, probes: int) -> None:
    """A namespace is split from its smallest id down, probing only characters above that
    id's at each level, until there are ``list_streams`` prefixes, none can be refined, or the
    next level would pass the budget of two probes per list page. No probe is made unless the
    first page shows the first split within the budget."""
    pinecone_emu.create_index("deep", DIM, "dotproduct")
    pinecone_emu.rates.limits = {}
    vecs = np.random.default_rng(3).standard_normal((len(ids), DIM)).astype(np.float32)
    pinecone_emu.seed("deep", [(rid, vecs[i], None, None) for i, rid in enumerate(ids)])
    uri = f"pinecone://deep?list_streams={streams}&split_above=1000&rate_limits=off"
    conn = connect(uri)
    since = time.monotonic()
    assert conn._list_scan._prefixes("") == prefixes
    lists = [r for r in pinecone_emu.requests("list") if r.started >= since]
    assert (lists[0].prefix, lists[0].limit) == ("", 100)  # the first page: the smallest ids
    assert len(lists) == 1 + probes and all(r.limit == 1 for r in lists[1:])
    conn.close()
    full, cursors = _scan_all(uri, 1000)
    assert sorted(r for _, r in full) == sorted(ids)
    assert full == _rotation([("", sorted((i for i in ids if i.startswith(p)), key=str.encode))
                              for p in prefixes], 1000, streams)
    for cursor, done in _spread(cursors[:-1], 10):
        assert _scan_all(uri, 1000, cursor)[0] == full[done:]


def test_a_split_namespace_lists_all_its_prefixes_in_turn(pinecone_emu: PineconeEmulator) -> None:
    """Five prefixes and four streams: all five take turns from the start, so they finish
    together (the fifth does not wait for a free slot and then go alone, a fifth of the
    namespace in sequence), and still no more than four listings run at once."""
    pinecone_emu.create_index("five", DIM, "dotproduct")
    pinecone_emu.rates.limits = {}
    ids = [rid for c in "abcde" for rid in _hex_ids(c, 2000, ord(c))]  # parts at the first character
    vecs = np.random.default_rng(11).standard_normal((len(ids), DIM)).astype(np.float32)
    pinecone_emu.seed("five", [(rid, vecs[i], None, None) for i, rid in enumerate(ids)])
    pinecone_emu.faults.latency_ms = 10  # long enough for listings to overlap when they run at once
    since = time.monotonic()
    full, _ = _scan_all("pinecone://five?list_streams=4&split_above=1000&rate_limits=off", 500)
    pinecone_emu.faults.latency_ms = 0
    assert sorted(r for _, r in full) == sorted(ids)
    first = {c: min(k for k, (_, r) in enumerate(full) if r[0] == c) for c in "abcde"}
    last = {c: max(k for k, (_, r) in enumerate(full) if r[0] == c) for c in "abcde"}
    assert max(first.values()) < min(last.values())  # every prefix started before any finished
    pages = [r for r in pinecone_emu.requests("list") if r.started >= since and r.limit != 1]
    assert {r.prefix for r in pages} >= set("abcde")
    busiest = max(sum(o.started <= r.started < o.ended for o in pages) for r in pages)
    assert 3 <= busiest <= 4


def test_a_cursor_with_waiting_prefixes_still_resumes(pinecone_emu: PineconeEmulator) -> None:
    """Cursors written before every prefix took turns kept the ones not yet started in a
    "queue": resumed now, those join the rotation, and every id still comes exactly once."""
    src = _split_src(pinecone_emu)
    uri = "pinecone://split?list_streams=4&split_above=100&rate_limits=off"
    full, cursors = _scan_all(uri, 300)
    cursor, done = cursors[0]
    state = orjson.loads(cursor)
    waiting = [s[:2] for s in state["open"][4:] if s[2] is None]
    assert len(waiting) > 10  # the first page's turn: most prefixes not started
    old = {"open": [s for s in state["open"] if s[:2] not in waiting], "queue": waiting, "after": state["after"]}
    rest, _ = _scan_all(uri, 300, orjson.dumps(old).decode())
    assert sorted(rest) == sorted(full[done:]) and len(rest) == len(set(rest))
    assert len(full) == sum(len(v) for v in src.values())


def test_scan_resumes_cursors_of_earlier_forms(src: dict) -> None:
    """State files written before namespaces (one at a time) or prefixes (streams without
    one) were listed at once still resume."""
    full, cursors = _scan_all("pinecone://src?list_streams=1", 37)
    (ns, prefix, token), = orjson.loads(cursors[0][0])["open"]
    assert prefix == ""
    old = orjson.dumps({"ns": ns, "token": token}).decode()
    assert _scan_all("pinecone://src?list_streams=1", 37, old)[0] == full[37:]
    pairs = orjson.dumps({"open": [[ns, token]], "after": ns}).decode()
    assert _scan_all("pinecone://src?list_streams=1", 37, pairs)[0] == full[37:]
    finished = orjson.dumps({"ns": "", "done": True}).decode()
    rest, _ = _scan_all("pinecone://src", 37, finished)
    assert sorted(rest) == sorted(r for r in full if r[0] != "")


def test_one_connector_scans_any_cursor_order(src: dict) -> None:
    """The next batch is listed ahead: a retried cursor, a restart and a jump back on the same
    connector still read exactly the records after the cursor they give."""
    full, cursors = _scan_all("pinecone://src", 37)
    start = {None: 0, **{c: done for c, done in cursors[:-1]}}
    conn = connect("pinecone://src")
    for cursor in [None, cursors[0][0], cursors[0][0], None, cursors[4][0], cursors[1][0], cursors[2][0]]:
        batch, _ = conn.scan(cursor, 37)
        assert len(batch) and [(batch.namespace, r) for r in batch.ids] == full[start[cursor]:start[cursor] + len(batch)]
    conn.close()


def test_scan_one_namespace_and_the_default_one(src: dict) -> None:
    seen, _ = _scan_all("pinecone://src?namespace=beta", 40)
    assert seen == [("beta", rid) for rid in sorted(src["beta"])]
    seen, _ = _scan_all("pinecone://src?namespace=", 1000)
    assert seen == [("", rid) for rid in sorted(src[""])]
    assert _scan_all("pinecone://src?namespace=empty", 10)[0] == []


def test_scan_batches_carry_values_sparse_and_metadata(src: dict) -> None:
    batch, _ = connect("pinecone://src?namespace=alpha").scan(None, 10)
    for rid, vec, meta, sparse in batch.rows():
        ref = src["alpha"][rid]
        assert np.array_equal(vec, ref[1])
        assert meta == {"n": float(ref[2]["n"]), "tag": "alpha", "tags": ["x", "alpha"]}
        assert sparse == (None if ref[3] is None else SparseVector.of(*ref[3]))


def test_scan_skips_ids_deleted_between_list_and_fetch(src: dict, pinecone_emu: PineconeEmulator) -> None:
    conn = connect("pinecone://src?namespace=alpha")
    _, cursor = conn.scan(None, 10)
    doomed = sorted(src["alpha"])[10:30]
    conn.delete(doomed, "alpha")
    rest, _ = _scan_all("pinecone://src?namespace=alpha", 20, cursor)
    assert [r for _, r in rest] == sorted(src["alpha"])[30:]


# -- fetch, upsert, delete ---------------------------------------------------------------------
def test_fetch_in_chunks_of_1000(pinecone_emu: PineconeEmulator) -> None:
    pinecone_emu.create_index("big", 4, "cosine")
    pinecone_emu.seed("big", [(f"r{i:05d}", [1.0, i, 0, 0], None, None) for i in range(1500)])
    conn = connect("pinecone://big")
    wanted = [f"r{i:05d}" for i in range(1499, -1, -1)] + ["absent"]
    batch = conn.fetch(wanted)
    assert batch.ids == wanted[:-1]  # request order, missing ids simply absent
    assert batch.vectors[0, 1] == 1499.0 and batch.sparse is None
    assert [r.records for r in pinecone_emu.requests("fetch")] == [1000, 501]
    assert len(conn.fetch([])) == 0


def test_a_scan_fetches_two_list_pages_a_request(pinecone_emu: PineconeEmulator) -> None:
    """Fetch is limited to half the requests a second that list is: one fetch per two pages
    (and one for a batch's odd last page) keeps fetching from capping a read."""
    pinecone_emu.create_index("pages", 4, "cosine")
    pinecone_emu.seed("pages", [(f"r{i:05d}", [1.0, i, 0, 0], None, None) for i in range(1350)])
    seen, _ = _scan_all("pinecone://pages", 1000)
    assert seen == [("", f"r{i:05d}") for i in range(1350)]
    # a batch of 1000 ids: 5 fetches of two pages; then 350: two pages, and the last 150 at its end
    assert sorted(r.records for r in pinecone_emu.requests("fetch")) == [150] + [200] * 6


def test_fetch_keeps_urls_short_for_long_ids(pinecone_emu: PineconeEmulator) -> None:
    pinecone_emu.create_index("long", 4, "cosine")
    ids = [f"{i:0200d}" for i in range(1000)]  # in one GET: a 200 KB URL (httpx stops at 64)
    pinecone_emu.seed("long", [(rid, [1.0, 0, 0, 0], None, None) for rid in ids])
    assert connect("pinecone://long").fetch(ids).ids == ids
    fetches = pinecone_emu.requests("fetch")
    assert len(fetches) > 5 and {r.status for r in fetches} == {200}
    assert sum(r.records for r in fetches) == 1000


def test_upsert_splits_by_bytes_and_records(pinecone_emu: PineconeEmulator) -> None:
    conn = connect("pinecone://wide")
    conn.create(TargetSpec("wide", 768, "cosine"))
    batch = _batch([f"w{i}" for i in range(1000)], "docs", dim=768, meta={"title": "t" * 200})
    conn.upsert(batch)
    ups = pinecone_emu.requests("upsert")
    assert len(ups) >= 9 and all(r.status == 200 for r in ups)
    assert all(r.nbytes <= 2 * 1024 * 1024 and r.records <= 1000 for r in ups)
    assert sum(r.records for r in ups) == 1000 and {r.namespace for r in ups} == {"docs"}
    back = conn.fetch(batch.ids, "docs")
    assert back.ids == batch.ids and np.array_equal(back.vectors, batch.vectors)
    assert back.metadata == batch.metadata


def test_upsert_respects_the_record_cap(pinecone_emu: PineconeEmulator) -> None:
    conn = connect("pinecone://narrow")
    conn.create(TargetSpec("narrow", 4, "euclidean"))
    conn.upsert(_batch([f"n{i}" for i in range(2500)], dim=4))
    assert [r.records for r in pinecone_emu.requests("upsert")] == [1000, 1000, 500]
    assert conn.count() == 2500


def test_sparse_heavy_records_stay_under_2mb(pinecone_emu: PineconeEmulator) -> None:
    conn = connect("pinecone://hybrid")
    conn.create(TargetSpec("hybrid", 4, "dot", sparse=True))
    rng = np.random.default_rng(3)
    sparse = [SparseVector.of(rng.choice(2**32 - 1, 1000, replace=False), rng.random(1000))
              for _ in range(150)]
    batch = RecordBatch([f"h{i}" for i in range(150)], rng.standard_normal((150, 4)),
                        [{}] * 150, sparse, "ns")
    conn.upsert(batch)
    ups = pinecone_emu.requests("upsert")
    assert all(r.status == 200 and r.nbytes <= 2 * 1024 * 1024 for r in ups) and len(ups) >= 3
    back = conn.fetch(["h7"], "ns")
    assert back.sparse[0] == sparse[7]


def test_delete_removes_only_the_given_ids(src: dict) -> None:
    conn = connect("pinecone://src")
    gone = sorted(src["beta"])[:60]
    conn.delete(gone + ["never-existed"], "beta")
    assert conn.count() == sum(SPACES.values()) - 60
    assert len(conn.fetch(gone, "beta")) == 0
    assert len(conn.fetch(sorted(src["beta"])[60:], "beta")) == 41


SPECIAL = ["with space", "a&b", "k=v", "path/to/x", "100%", "#hash", "a+b", "q?x", "semi;colon",
           "~tilde", "quote'\"", "..", "."]


def test_special_character_ids_round_trip(pinecone_emu: PineconeEmulator) -> None:
    conn = connect("pinecone://ids")
    conn.create(TargetSpec("ids", 4, "cosine"))
    conn.upsert(_batch(SPECIAL, "ns/with space", dim=4))
    assert conn.fetch(SPECIAL, "ns/with space").ids == SPECIAL
    seen, _ = _scan_all("pinecone://ids", 5)
    assert seen == [("ns/with space", rid) for rid in sorted(SPECIAL, key=str.encode)]
    conn.delete(SPECIAL[:6], "ns/with space")
    assert conn.fetch(SPECIAL, "ns/with space").ids == SPECIAL[6:]


# -- create / drop -----------------------------------------------------------------------------
def test_create_waits_until_ready_then_drop(pinecone_emu: PineconeEmulator) -> None:
    pinecone_emu.polls_until_ready = 3
    conn = connect("pinecone://fresh?cloud=gcp&region=us-central1")
    conn.create(TargetSpec("fresh", 16, "euclidean"))
    state = pinecone_emu.indexes["fresh"]
    assert state.polls_until_ready <= 0  # create returned only once describe said Ready
    assert (state.dimension, state.metric, state.pod) == (16, "euclidean", False)
    assert state.deployment == {"deployment_type": "managed", "cloud": "gcp",
                                "region": "us-central1"}
    assert conn.describe().metric == "euclidean"
    with pytest.raises(TerminalError, match="409"):
        conn.create(TargetSpec("fresh", 16, "euclidean"))
    conn.drop()
    assert conn.describe() is None and "fresh" not in pinecone_emu.indexes
    conn.drop()  # idempotent
    with pytest.raises(TerminalError, match="manhattan"):
        conn.create(TargetSpec("fresh", 16, "manhattan"))


# -- errors ------------------------------------------------------------------------------------
def test_429_with_retry_after_is_transient(pinecone_emu: PineconeEmulator, pinecone_sdk_sleeps: list) -> None:
    pinecone_emu.create_index("idx", 4)
    conn = connect("pinecone://idx")
    pinecone_emu.faults.inject(429, retry_after=7, times=20)
    with pytest.raises(TransientError) as err:
        conn.count()
    assert err.value.retry_after == 7.0 and "429" in str(err.value)
    pinecone_emu.faults.clear()
    pinecone_emu.faults.rate_429 = 1.0  # no Retry-After header
    with pytest.raises(TransientError) as err:
        conn.fetch(["a"])
    assert err.value.retry_after is None
    pinecone_emu.faults.clear()
    pinecone_emu.faults.rate_5xx = 1.0
    with pytest.raises(TransientError, match="50[03]"):
        conn.upsert(_batch(["a"], dim=4))


def test_refused_records_are_invalid_data_and_named(pinecone_emu: PineconeEmulator) -> None:
    pinecone_emu.create_index("idx", 4)
    conn = connect("pinecone://idx")
    good = _batch(["ok1", "ok2"], dim=4)
    zero = RecordBatch(["ok", "zero-vec"], np.array([[1, 0, 0, 0], [0, 0, 0, 0]], np.float32),
                       [{}, {}])
    # InvalidData (a TerminalError): the runner bisects the batch and dead-letters culprits
    with pytest.raises(InvalidData) as err:
        conn.upsert(zero)
    assert "400" in str(err.value) and "'zero-vec' [vector]" in str(err.value)
    with pytest.raises(InvalidData) as err:
        conn.upsert(_batch(["d1", "d2"], dim=6))
    assert "dimension" in str(err.value) and "'d1' [vector]" in str(err.value)
    with pytest.raises(InvalidData) as err:  # refused by the SDK before sending
        conn.upsert(RecordBatch(["ok", "bad"], good.vectors, [{}, {"nested": {"a": 1}}]))
    assert "'bad' [metadata.nested]" in str(err.value)
    with pytest.raises(InvalidData, match="'café'"):
        conn.upsert(_batch(["café"], dim=4))
    with pytest.raises(InvalidData, match="strings"):
        conn.upsert(RecordBatch([7], good.vectors[:1], [{}]))
    assert conn.count() == 0
    pinecone_emu.faults.inject(400, "namespace refused", op="upsert")
    with pytest.raises(InvalidData, match="namespace refused"):
        conn.upsert(good)
    pinecone_emu.faults.inject(404, "index gone", op="upsert")  # not about the data: plain terminal
    with pytest.raises(TerminalError) as err:
        conn.upsert(good)
    assert not isinstance(err.value, InvalidData)


def test_401_is_terminal_and_never_shows_the_key(pinecone_emu: PineconeEmulator,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    pinecone_emu.create_index("idx", 4)
    wrong = "pcsk_wrong-secret-99ab"
    monkeypatch.setenv("OTHER_KEY", wrong)
    conn = connect(f"pinecone://idx?api_key_env=OTHER_KEY&host={pinecone_emu.host('idx')}")
    with pytest.raises(TerminalError) as err:
        conn.count()
    text = f"{err.value} {err.value!r} {err.value.__cause__!r}"
    assert "401" in text and "OTHER_KEY" in text
    assert wrong not in text and EMU_KEY not in text
    with pytest.raises(TerminalError):
        connect("pinecone://idx?api_key_env=OTHER_KEY").describe()


def test_missing_key_names_the_variable(pinecone_emu: PineconeEmulator,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PINECONE_API_KEY")
    with pytest.raises(ConfigError, match="PINECONE_API_KEY") as err:
        connect("pinecone://idx").count()
    assert EMU_KEY not in str(err.value)
    monkeypatch.setenv("MY_PC_KEY", EMU_KEY)
    pinecone_emu.create_index("idx", 4)
    assert connect("pinecone://idx?api_key_env=MY_PC_KEY").count() == 0
    with pytest.raises(ConfigError):
        connect("pinecone://idx?api_key_env=not a name")
    for bad in ("0", "65", "two"):
        with pytest.raises(ConfigError, match="list_streams"):
            connect(f"pinecone://idx?list_streams={bad}")
    with pytest.raises(ConfigError, match="split_above must be a whole number at least 1, got '0'"):
        connect("pinecone://idx?split_above=0")


def test_unreachable_host_is_transient(pinecone_emu: PineconeEmulator, pinecone_sdk_sleeps: list) -> None:
    pinecone_emu.create_index("idx", 4)
    host = pinecone_emu.host("idx")
    conn = connect(f"pinecone://idx?host={host}")
    assert conn.count() == 0
    pinecone_emu._stop("idx")  # the data plane goes away
    dead = connect(f"pinecone://idx?host={host}")
    with pytest.raises(TransientError):
        dead.count()


def test_secrets_in_the_uri_are_refused() -> None:
    for uri in ("pinecone://idx?api_key=pcsk_123", "pinecone://user:pw@idx",
                "pinecone://idx?token=abc"):
        with pytest.raises(SecretInURI) as err:
            connect(uri)
        assert "pcsk_123" not in str(err.value) and "pw" not in str(err.value).split("://")[-1]


def test_missing_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pinecone", None)  # import pinecone -> ImportError
    monkeypatch.setenv("PINECONE_API_KEY", "anything")
    with pytest.raises(MissingDependency) as err:
        connect("pinecone://idx").count()
    assert (err.value.package, err.value.extra) == ("pinecone", "pinecone")


# -- pod indexes and ids files -----------------------------------------------------------------
def test_pod_index_scan_explains_the_ids_file(pinecone_emu: PineconeEmulator) -> None:
    pinecone_emu.create_index("pods", 4, pod=True)
    conn = connect("pinecone://pods")
    assert conn.capabilities.can_list is False
    with pytest.raises(ConfigError) as err:
        conn.scan(None, 10)
    assert isinstance(err.value, TerminalError)  # never retried either
    assert "pod-based" in str(err.value) and "ids_file=" in str(err.value)


def test_ids_file_scan_and_resume(pinecone_emu: PineconeEmulator, tmp_path: Path) -> None:
    pinecone_emu.create_index("pods", 4, pod=True)
    pinecone_emu.seed("pods", [(f"d{i}", [1.0, i, 0, 0], {"i": i}, None) for i in range(25)])
    pinecone_emu.seed("pods", [(f"p{i}", [2.0, i, 0, 0], None, None) for i in range(12)], namespace="prod")
    lines = [f"d{i}" for i in range(25)] + ["", "missing-id"] + \
        [f"prod\tp{i}" for i in range(12)] + ["__default__\td0"]
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(lines) + "\n")
    uri = f"pinecone://pods?ids_file={path}&refetch_wait=0"
    assert connect(uri).capabilities.can_list
    seen, cursors = _scan_all(uri, 10)
    assert seen == [("", f"d{i}") for i in range(25)] + [("prod", f"p{i}") for i in range(12)] \
        + [("", "d0")]
    # an id the file names and the index lacks is handed over as unreadable, not skipped
    conn = connect(uri)
    batch, _ = conn.scan(orjson.dumps({"offset": len("\n".join(lines[:26])) + 1, "line": 26}).decode(), 10)
    assert [(r.namespace, r.record_id, r.field) for r in batch.rejected] == \
        [("", "missing-id", "source_unreadable")]
    assert batch.ids == [] and "5 fetches" in batch.rejected[0].reason
    for cursor, done in cursors[:-1]:
        assert _scan_all(uri, 10, cursor)[0] == seen[done:]
    only, _ = _scan_all(uri + "&namespace=prod", 5)
    assert only == [("prod", f"p{i}") for i in range(12)]
    with pytest.raises(ConfigError, match="absolute"):
        connect("pinecone://pods?ids_file=relative/ids.txt")
    with pytest.raises(ConfigError):
        connect(f"pinecone://pods?ids_file={tmp_path / 'nope.txt'}").scan(None, 5)


def test_reads_see_writes_only_after_the_lag(pinecone_emu: PineconeEmulator) -> None:
    pinecone_emu.create_index("idx", 4)
    conn = connect("pinecone://idx")
    assert conn.capabilities.eventually_consistent
    pinecone_emu.faults.lag_ms = 5000
    conn.upsert(_batch(["late"], dim=4))  # acknowledged ...
    assert len(conn.fetch(["late"])) == 0 and conn.count() == 0  # ... not yet visible
    pinecone_emu.faults.lag_ms = 0
    conn.upsert(_batch(["now"], dim=4))
    assert conn.fetch(["late", "now"]).ids == []  # visibility keeps write order


# -- live --------------------------------------------------------------------------------------
@pytest.mark.live
@pytest.mark.skipif(not (os.environ.get("PINECONE_API_KEY")
                         and os.environ.get("VMKIT_PINECONE_LIVE_INDEX")),
                    reason="needs PINECONE_API_KEY and VMKIT_PINECONE_LIVE_INDEX (a serverless "
                           "index vmkit may write to)")
def test_live_round_trip() -> None:
    import time
    import uuid

    name = os.environ["VMKIT_PINECONE_LIVE_INDEX"]
    ns = f"vmkit-live-{uuid.uuid4().hex[:8]}"
    conn = connect(f"pinecone://{name}?namespace={ns}")
    info = conn.describe()
    assert info is not None and info.dimension > 0
    ids = ["live a&b=c", "live/2", "live#3"]
    batch = _batch(ids, ns, dim=info.dimension)
    conn.upsert(batch)
    try:
        deadline = time.monotonic() + 60
        while len(conn.fetch(ids, ns)) < 3 and time.monotonic() < deadline:
            time.sleep(1)
        back = conn.fetch(ids, ns)
        assert sorted(back.ids) == sorted(ids)
        seen, _ = _scan_all(f"pinecone://{name}?namespace={ns}", 2)
        assert sorted(r for _, r in seen) == sorted(ids)
    finally:
        conn.delete(ids, ns)

"""Ids and namespaces with characters a query string can garble (space, ``+``, ``%``, ``&``,
``#``), and a namespace that does not exist.

The emulator reads query strings as the service does (``+`` a plus, ``%20`` a space; see
``parse_query`` in emulators/pinecone_emulator.py for where that comes from) and answers 404
``{"code": 5, "message": "Namespace not found"}`` for a namespace that does not exist."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest
from emulators.pinecone_emulator import EMU_KEY, PineconeEmulator

from vmkit.connectors import connect
from vmkit.connectors.pinecone.wire import encode_query
from vmkit.core.errors import TerminalError

pinecone = pytest.importorskip("pinecone")
from pinecone.errors.exceptions import NotFoundError  # noqa: E402 - after the importorskip

DIM = 4
ODD_NS = "ns +%&# x"
# every character a query string can garble, alone, leading, trailing and twice
ODD_IDS = ["doc 1", "doc+1", "doc%201", "doc%1", "a&b", "a&ids=b", "#frag", "x#y", " lead",
           "trail ", "+", "%", "&", "#", "a  b", "a++b", "50% off", "k=v&w", "plain"]


def _vec(i: int) -> list[float]:
    return [float(i + 1), 0.5, 0.25, 0.125]


def _raw(pinecone_emu: PineconeEmulator, index: str, method: str, target: str, **kw: Any) -> httpx.Response:
    """A request whose query string goes on the wire exactly as written in ``target``."""
    headers = {"Api-Key": EMU_KEY, "X-Pinecone-Api-Version": "2026-07"}
    with httpx.Client() as client:
        return client.request(method, pinecone_emu.host(index) + target, headers=headers, **kw)


@pytest.fixture
def odd(pinecone_emu: PineconeEmulator) -> PineconeEmulator:
    """Index 'odd': ODD_IDS in ODD_NS and in the default namespace."""
    pinecone_emu.create_index("odd", DIM)
    for ns in (ODD_NS, ""):
        pinecone_emu.seed("odd", [(rid, _vec(i), {"i": i}, None) for i, rid in enumerate(ODD_IDS)],
                 namespace=ns)
    return pinecone_emu


# -- the emulator -----------------------------------------------------------------------------
def test_emulator_reads_plus_as_a_plus_and_percent_20_as_a_space(odd: PineconeEmulator) -> None:
    def fetched(query: str) -> list[str]:
        r = _raw(odd, "odd", "GET", "/vectors/fetch?" + query)
        assert r.status_code == 200, r.text
        return sorted(r.json()["vectors"])

    assert fetched("ids=doc+1") == ["doc+1"]
    assert fetched("ids=doc%201") == ["doc 1"]
    assert fetched("ids=doc%25201") == ["doc%201"]
    assert fetched("ids=a%26b&ids=%23&ids=%2B") == ["#", "+", "a&b"]
    assert fetched("ids=a&ids=b") == []  # '&' unencoded splits the value: "a" and "b"
    assert fetched("ids=doc%201&namespace=ns%20%2B%25%26%23%20x") == ["doc 1"]
    listed = _raw(odd, "odd", "GET", "/vectors/list?namespace=ns%20%2B%25%26%23%20x&prefix=a%20")
    assert [v["id"] for v in listed.json()["vectors"]] == ["a  b"]
    assert odd.requests("list")[-1].prefix == "a "
    # the SDK writes a space as '+': the emulator, like the service, reads other ids and
    # another namespace (what lost records when vmkit read through the SDK's fetch)
    idx = pinecone.Pinecone().index(host=odd.host("odd"))
    assert sorted(idx.fetch(ids=["doc 1", " lead"]).vectors) == ["doc+1"]  # not what was asked
    assert sorted(idx.fetch(ids=["doc+1"]).vectors) == ["doc+1"]
    with pytest.raises(NotFoundError):
        idx.fetch(ids=["plain"], namespace=ODD_NS)


@pytest.mark.parametrize("op", ["fetch", "list", "query", "delete"])
def test_emulator_answers_404_code_5_for_a_missing_namespace(odd: PineconeEmulator, op: str) -> None:
    idx = pinecone.Pinecone().index(host=odd.host("odd"))
    call = {"fetch": lambda: idx.fetch(ids=["plain"], namespace="nowhere"),
            "list": lambda: idx.list_paginated(namespace="nowhere"),
            "query": lambda: idx.query(vector=_vec(0), top_k=3, namespace="nowhere"),
            "delete": lambda: idx.delete(ids=["plain"], namespace="nowhere")}[op]
    with pytest.raises(NotFoundError) as err:
        call()
    assert err.value.status_code == 404
    assert err.value.body == {"code": 5, "message": "Namespace not found", "details": []}
    assert odd.requests(op, 404)[-1].namespace == "nowhere"
    call_existing = {"fetch": lambda: idx.fetch(ids=["nope"]).vectors,
                     "list": lambda: idx.list_paginated(prefix="zz").vectors,
                     "query": lambda: idx.query(vector=_vec(0), top_k=1, namespace=ODD_NS).matches[1:],
                     "delete": lambda: idx.delete(ids=["nope"], namespace=ODD_NS)}[op]
    assert not call_existing()  # a namespace that exists answers 200, empty or not


# -- the connector ----------------------------------------------------------------------------
def test_encode_query_leaves_nothing_to_misread() -> None:
    assert encode_query([("ids", "doc 1"), ("ids", "a+b"), ("namespace", "x%&#=y")]) == \
        "ids=doc%201&ids=a%2Bb&namespace=x%25%26%23%3Dy"


def _scan(conn: Any, limit: int) -> list[tuple[str, str]]:
    seen, cursor = [], None
    while True:
        batch, cursor = conn.scan(cursor, limit)
        assert batch.rejected == []
        seen += [(batch.namespace, rid) for rid in batch.ids]
        if cursor is None:
            return seen


def test_odd_ids_and_namespace_round_trip(odd: PineconeEmulator) -> None:
    """fetch, a whole-index scan, a one-namespace scan, and delete."""
    conn = connect("pinecone://odd")
    got = conn.fetch(ODD_IDS, ODD_NS)
    assert got.ids == ODD_IDS and got.namespace == ODD_NS
    assert [m["i"] for m in got.metadata] == list(range(len(ODD_IDS)))
    assert conn.fetch(ODD_IDS).ids == ODD_IDS
    seen = _scan(conn, 7)
    assert sorted(seen) == sorted((ns, rid) for ns in (ODD_NS, "") for rid in ODD_IDS)
    assert len(seen) == len(set(seen))
    assert {r.status for r in odd.requests()} == {200}
    one = connect("pinecone://odd?namespace=ns%20%2B%25%26%23%20x")  # the URI's own encoding
    assert one.namespace == ODD_NS
    assert sorted(_scan(one, 100)) == sorted((ODD_NS, rid) for rid in ODD_IDS)
    conn.delete(ODD_IDS[:10], ODD_NS)
    assert conn.fetch(ODD_IDS, ODD_NS).ids == ODD_IDS[10:]
    assert conn.fetch(ODD_IDS).ids == ODD_IDS  # the default namespace kept all


def test_a_big_namespace_splits_on_odd_first_characters(pinecone_emu: PineconeEmulator) -> None:
    """A namespace big enough to be listed as id prefixes at once: the probes and listings
    of the prefixes ' ', '#', '%', '&', '+' read exactly those ids."""
    pinecone_emu.create_index("big", DIM)
    firsts = " #%&+a"  # few ids start with ' ', so the first page parts at the first character
    ids = [f"{' ' if i < 10 else firsts[1 + i % 5]}{i:04d} +%&#" for i in range(5000)]
    pinecone_emu.seed("big", [(rid, _vec(i), None, None) for i, rid in enumerate(ids)], namespace="b x")
    seen = _scan(connect("pinecone://big?list_streams=6&split_above=1000"), 1000)
    assert sorted(seen) == sorted(("b x", rid) for rid in ids) and len(seen) == len(set(seen))
    probes = {r.prefix for r in pinecone_emu.requests("list") if r.limit == 1}
    assert set("#%&+a") <= probes  # refined from the smallest id, which starts with ' '
    listed = {r.prefix for r in pinecone_emu.requests("list") if r.limit != 1}
    assert set(firsts) <= listed  # every first character was listed as a prefix of its own
    assert {r.status for r in pinecone_emu.requests()} == {200}


def test_a_missing_namespace_is_empty_to_reads_and_deletes(odd: PineconeEmulator) -> None:
    conn = connect("pinecone://odd?namespace=nowhere")
    assert len(conn.fetch(["plain", "doc 1"], "nowhere")) == 0
    conn.delete(["plain"], "nowhere")  # nothing to delete: no error
    assert conn.nearest("nowhere", np.asarray(_vec(0)), 5, True) == []
    assert conn._list_scan.list_ids("nowhere", "", None, 100) == ([], None)
    batch, cursor = conn.scan(None, 10)
    assert len(batch) == 0 and batch.rejected == [] and cursor is None
    assert len(odd.requests(status=404)) >= 4  # the service said so each time
    odd.indexes.pop("odd")  # a missing index is still an error, not an empty namespace
    with pytest.raises(TerminalError, match="404"):
        connect("pinecone://odd?host=" + odd.host("odd")).fetch(["plain"])


def test_without_the_sdk_seam_a_space_is_refused_not_misread() -> None:
    """Should a later SDK lose ``Index._http``/``_adapter``, its public methods serve values
    they encode soundly, and a value with a space raises rather than read another record."""
    from vmkit.connectors.pinecone import wire as pinecone_wire

    class PublicOnly:
        def fetch(self, ids: list, namespace: str) -> tuple:
            return ("fetch", ids, namespace)

        def list_paginated(self, **kw: Any) -> tuple:
            return ("list", kw)

    idx = PublicOnly()
    assert pinecone_wire.fetch_vectors(idx, ["a+b", "c%d", "e&f", "#"], "n&s") == \
        ("fetch", ["a+b", "c%d", "e&f", "#"], "n&s")
    assert pinecone_wire.list_page(idx, "ns", "p+", 5, None)[0] == "list"
    for call in (lambda: pinecone_wire.fetch_vectors(idx, ["doc 1"], ""),
                 lambda: pinecone_wire.fetch_vectors(idx, ["doc"], "ns x"),
                 lambda: pinecone_wire.list_page(idx, "ns x", None, 5, None),
                 lambda: pinecone_wire.list_page(idx, "", "a ", 5, None)):
        with pytest.raises(TerminalError, match="space"):
            call()

"""SochDBConnector on the real embedded engine (the ``sochdb`` wheel), one directory per test."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

pytest.importorskip("sochdb")

from vmkit.connectors import connect
from vmkit.connectors.base import TargetSpec
from vmkit.connectors.sochdb import connector as mod
from vmkit.core.errors import (
    ConfigError,
    InvalidData,
    MissingDependency,
    TerminalError,
    TransientError,
)
from vmkit.core.records import RecordBatch

DIM = 8


def batch(n: int, start: int = 0, meta: Any = None) -> RecordBatch:
    rng = np.random.default_rng(start)
    ids = [str(uuid.UUID(int=i * 7919 + 3)) if i % 2 else str(i) for i in range(start, start + n)]
    metas = [meta(i) if meta else {"n": i, "title": f"doc {i}"} for i in range(start, start + n)]
    return RecordBatch(ids, rng.standard_normal((n, DIM)).astype(np.float32), metas)


@pytest.fixture
def uri(tmp_path: Path) -> str:
    return f"sochdb://{tmp_path}/db?collection=docs"


@pytest.fixture
def conn(uri: str) -> Iterator[mod.SochDBConnector]:
    c = connect(uri)
    assert isinstance(c, mod.SochDBConnector)
    c.create(TargetSpec("docs", DIM, "cosine"))
    yield c
    c.close()


def scan_all(c: Any, size: int = 300, cursor: str | None = None) -> list[str]:
    ids: list[str] = []
    while True:
        b, cursor = c.scan(cursor, size)
        assert b.rejected == []  # e.g. keys deleted in an earlier session are absent, not broken
        ids += b.ids
        if cursor is None:
            return ids


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "dot"])
def test_create_describe_count(uri: str, metric: str) -> None:
    with connect(uri) as c:
        assert c.describe() is None
        c.create(TargetSpec("docs", DIM, metric))
        assert c.describe() == mod.CollectionInfo("docs", DIM, metric, 0)
        c.upsert(batch(30))
        assert c.count() == 30 and c.describe().count == 30  # type: ignore[union-attr]
        with pytest.raises(TerminalError, match="already exists"):
            c.create(TargetSpec("docs", DIM, metric))
        with pytest.raises(TerminalError, match="manhattan"):
            connect(uri.replace("=docs", "=other")).create(TargetSpec("other", DIM, "manhattan"))


def test_cursor_persisted_midway_resumes_in_a_fresh_process_state(uri: str, conn: Any) -> None:
    src = batch(2500)
    conn.upsert(src)
    conn.delete(src.ids[:100])  # deleted keys come back as empty values after a reopen
    seen, cursor = [], None
    for _ in range(3):
        b, cursor = conn.scan(cursor, 400)
        seen += b.ids
    assert isinstance(cursor, str) and len(seen) == 1200
    conn.close()
    assert conn._key not in mod._HANDLES  # the database is really closed: the next open replays the WAL
    with connect(uri) as fresh:
        rest = scan_all(fresh, 400, cursor)
    assert set(seen).isdisjoint(rest) and len(seen) + len(rest) == 2400
    assert sorted(seen + rest, key=str.encode) == seen + rest  # byte order of keys
    assert set(seen + rest) == set(src.ids[100:])


def test_read_ahead_sees_writes_made_between_pages(conn: Any) -> None:
    conn.upsert(batch(50))
    first, cursor = conn.scan(None, 10)
    conn.upsert(RecordBatch(["99999"], np.ones((1, DIM), np.float32), [{}]))  # sorts after all
    conn.delete([first.ids[0], "8"])  # "8" is still ahead of the cursor
    b, cur = conn.scan(cursor, 1000)  # served from the buffer only if nothing was written
    rest = b.ids
    assert cur is None and "99999" in rest and "8" not in rest and len(first) + len(rest) == 50


def test_fetch_returns_only_existing_ids(conn: Any) -> None:
    src = batch(20)
    conn.upsert(src)
    got = conn.fetch([src.ids[3], "missing", 3, src.ids[0]])
    assert got.ids == [src.ids[3], src.ids[0]]
    assert np.array_equal(got.vectors, src.vectors[[3, 0]])
    assert got.metadata == [src.metadata[3], src.metadata[0]]
    assert len(conn.fetch([])) == 0 and len(conn.fetch([src.ids[3]], namespace="other")) == 0


def test_upsert_is_idempotent_and_overwrites(conn: Any) -> None:
    src = batch(200)
    conn.upsert(src)
    conn.upsert(src)
    assert conn.count() == 200
    changed = src.take([5])
    changed.metadata[0] = {"n": -1}
    changed.vectors[0] *= 2
    conn.upsert(changed)
    got = conn.fetch([src.ids[5]])
    assert got.metadata == [{"n": -1}] and np.array_equal(got.vectors[0], src.vectors[5] * 2)
    assert conn.count() == 200


def test_delete_survives_a_reopen(uri: str, conn: Any) -> None:
    src = batch(40)
    conn.upsert(src)
    conn.delete(src.ids[:10] + ["never-there"])
    assert conn.count() == 30
    conn.close()
    with connect(uri) as again:
        assert again.count() == 30 and len(again.fetch(src.ids[:10])) == 0


def test_drop_then_create_again_in_a_later_session(uri: str, conn: Any) -> None:
    conn.upsert(batch(25))
    conn.drop()
    assert conn.describe() is None
    conn.drop()  # dropping what is gone is a no-op
    with pytest.raises(TerminalError, match="does not exist"):
        conn.scan(None, 10)
    conn.close()
    with connect(uri) as again:  # the SDK sees the dropped config as present (empty value)
        assert again.describe() is None
        again.create(TargetSpec("docs", 4, "dot"))
        assert again.describe() == mod.CollectionInfo("docs", 4, "dot", 0)
        assert scan_all(again) == []


def test_metadata_types_round_trip(uri: str, conn: Any) -> None:
    meta = {"s": "ünïcödé ✓", "i": 2**63 + 5, "neg": -(2**62), "f": 0.1, "whole": 2.0, "t": True,
            "none": None, "list": [1, "a", None, {"k": [2.5]}], "nested": {"a": {"b": [True]}},
            "empty": {}, "_content": "text"}
    src = RecordBatch(["m"], np.full((1, DIM), 1 / 3, np.float32), [meta])
    conn.upsert(src)
    conn.close()
    with connect(uri) as again:
        got = again.fetch(["m"])
        assert got.metadata == [meta] and type(got.metadata[0]["whole"]) is float
        assert got.vectors.tobytes() == src.vectors.tobytes()


def test_unstorable_records_are_invalid_data(conn: Any) -> None:
    with pytest.raises(InvalidData, match="'big'"):
        conn.upsert(RecordBatch(["big"], np.ones((1, DIM), np.float32), [{"x": 2**70}]))
    nan = np.ones((2, DIM), np.float32)
    nan[1, 3] = np.nan
    with pytest.raises(InvalidData, match="'b'"):
        conn.upsert(RecordBatch(["a", "b"], nan, [{}, {}]))
    with pytest.raises(InvalidData, match="strings"):
        conn.upsert(RecordBatch([7], np.ones((1, DIM), np.float32), [{}]))  # the transform maps ints
    with pytest.raises(TerminalError, match="dimension"):
        conn.upsert(RecordBatch(["w"], np.ones((1, DIM + 1), np.float32), [{}]))
    assert conn.count() == 0


def test_native_log_lines_stay_off_stderr(conn: Any, capfd: pytest.CaptureFixture[str]) -> None:
    conn.upsert(batch(2000))
    assert conn.count() == 2000 and len(scan_all(conn, 1000)) == 2000
    assert capfd.readouterr().err == ""


def test_quiet_guard_routes_engine_lines_to_the_log(capfd: pytest.CaptureFixture[str],
                                                    caplog: pytest.LogCaptureFixture) -> None:
    import sochdb

    vecs = np.random.default_rng(0).standard_normal((300, DIM)).astype(np.float32)
    sochdb.VectorIndex(dimension=DIM).insert_batch(np.arange(300, dtype=np.uint64), vecs)
    assert "[HNSW]" in capfd.readouterr().err  # the engine does write to fd 2 ...
    with caplog.at_level(logging.DEBUG, "vmkit.connectors.sochdb.connector.native"), mod._quiet():
        sochdb.VectorIndex(dimension=DIM).insert_batch(np.arange(300, dtype=np.uint64), vecs)
        os.write(2, b"not from the engine\n")
    assert capfd.readouterr().err == "not from the engine\n"  # ... but not inside the guard
    assert any("[HNSW]" in r.getMessage() for r in caplog.records)


def test_quiet_is_thread_safe_and_restores_fd2(uri: str, conn: Any,
                                              capfd: pytest.CaptureFixture[str]) -> None:
    import sochdb

    other = connect(uri.replace("collection=docs", "collection=other"))
    other.create(TargetSpec("other", DIM, "dot"))
    before = os.fstat(2)
    chatter = [f"line {i} from another thread\n" for i in range(300)]
    vecs = np.random.default_rng(0).standard_normal((200, DIM)).astype(np.float32)

    def talk() -> None:
        for line in chatter:
            os.write(2, line.encode())

    def engine() -> None:  # native [HNSW] lines, concurrently with the other threads' SDK calls
        for _ in range(5):
            with mod._quiet():
                sochdb.VectorIndex(dimension=DIM).insert_batch(np.arange(200, dtype=np.uint64), vecs)

    def write(c: Any) -> None:
        for j in range(10):
            c.upsert(batch(100, start=j * 100))

    threads = [threading.Thread(target=f) for f in (talk, engine, engine)]
    threads += [threading.Thread(target=write, args=(c,)) for c in (conn, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.close()
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
    assert conn.count() == 1000
    err = capfd.readouterr().err
    assert sorted(err.splitlines(keepends=True)) == sorted(chatter)  # no engine line, none lost


def test_documents_match_the_sdk_and_sochdb_can_search_them(uri: str, conn: Any) -> None:
    src = batch(50)
    conn.upsert(src)
    db = conn._call(lambda db: db)
    with mod._quiet():
        ns = db.namespace("default")
        ns.create_collection("sdk", dimension=DIM).insert_batch(
            ids=src.ids, vectors=src.vectors.tolist(), metadatas=src.metadata)
        ours = dict(db.scan_prefix(b"default/collections/docs/vectors/"))
        theirs = dict(db.scan_prefix(b"default/collections/sdk/vectors/"))
    assert len(ours) == len(theirs) == 50
    for key, value in ours.items():
        mine, sdk = orjson.loads(value), orjson.loads(theirs[key.replace(b"/docs/", b"/sdk/")])
        assert np.array_equal(np.float32(mine.pop("vector")), np.float32(sdk.pop("vector")))
        assert mine == sdk
    conn.close()
    import sochdb

    with mod._quiet():  # a SochDB user opening the migrated collection finds the records
        db = sochdb.Database.open(uri.split("://")[1].split("?")[0])
        hits = db.namespace("default").collection("docs").vector_search(src.vectors[7].tolist(), k=1)
        db.close()
    assert [h.id for h in hits] == [src.ids[7]]


def test_one_shared_handle_per_directory(uri: str, conn: Any) -> None:
    other = connect(uri.replace("collection=docs", "collection=other"))
    other.create(TargetSpec("other", DIM, "dot"))  # a second Database.open would fail
    assert mod._HANDLES.refs(conn._key) == 2 and other._handle is conn._handle
    other.close()
    conn.upsert(batch(3))
    assert conn.count() == 3


def test_directory_held_by_another_process_is_a_config_error(uri: str, tmp_path: Path) -> None:
    code = "import sys, sochdb; db = sochdb.Database.open(sys.argv[1]); print('open', flush=True); input()"
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "db")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"open\n"
        with pytest.raises(ConfigError, match="in use by another process"):
            connect(uri).describe()
    finally:
        holder.communicate(b"\n")
    with connect(uri) as c:  # released when the holder exits
        assert c.describe() is None


def test_uri_and_sdk_errors(uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for bad in ("sochdb:///x", "sochdb:///x?collection=a/b", "sochdb:///x?collection=c&sync=maybe"):
        with pytest.raises(ConfigError):
            connect(bad)
    assert isinstance(mod._classify(type("TransactionConflictError", (Exception,), {})()), TransientError)
    assert isinstance(mod._classify(type("DimensionMismatchError", (Exception,), {})()), InvalidData)
    assert type(mod._classify(RuntimeError("Database is closed"))) is TerminalError
    monkeypatch.setitem(sys.modules, "sochdb", None)
    with pytest.raises(MissingDependency, match=r"vmkit\[sochdb\]"):
        connect(uri).describe()

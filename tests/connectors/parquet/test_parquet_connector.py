"""The Parquet connector (vmkit layout) on real files written and read by pyarrow: every
feature round-trips exactly, a scan resumes in a new connector, a replayed batch is not
duplicated, a crash mid-write leaves a readable directory, and bad files are a plan error or
dead-lettered rows naming the file and row, never a partial silent read."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xxhash
from matrix.matrix_corpus import DIM, METRIC, TITLE_DIM, corpus_batch

from vmkit import Migration, TargetSpec, connect
from vmkit.core.errors import ConfigError, PlanError, TerminalError
from vmkit.core.records import SOURCE_UNREADABLE, RecordBatch

SPEC = TargetSpec("c", DIM, METRIC, sparse=True, vector_name="default",
                  extra_vectors={"title": {"dimension": TITLE_DIM, "metric": METRIC}})


def _open(root: Path, create: bool = True):
    conn = connect(f"parquet://{root}")
    if create:
        conn.create(SPEC)
    return conn


def _scan_all(conn, limit=97, cursor=None) -> tuple[RecordBatch, list]:
    batches, rejected = [], []
    while True:
        b, cursor = conn.scan(cursor, limit)
        batches.append(b)
        rejected += b.rejected
        if cursor is None:
            return RecordBatch.concat(batches), rejected


def _corpus_in(root: Path, n: int = 600, parts: int = 3):
    """The matrix corpus (ints up to 2**64-1, UUIDs, odd strings, big ints, nested metadata,
    nulls, sparse and a named vector) in ``parts`` batches over namespaces "" and "ns"."""
    full = corpus_batch(n)
    conn = _open(root)
    for k, rows in enumerate(np.array_split(np.arange(n), parts)):
        b = full.take(rows)
        b.namespace = "ns" if k == parts - 1 else ""
        conn.upsert(b)
    return conn, full


def _same(got: RecordBatch, want: RecordBatch) -> None:
    order = {(type(r), r): i for i, r in enumerate(want.ids)}
    rows = [order[(type(r), r)] for r in got.ids]
    want = want.take(rows)
    assert got.ids == want.ids and [type(i) for i in got.ids] == [type(i) for i in want.ids]
    assert np.array_equal(got.vectors, want.vectors)
    assert np.array_equal(got.named["title"], want.named["title"])
    assert got.metadata == want.metadata  # big ints, unicode, nesting and nulls exact
    assert got.sparse == want.sparse


def test_every_feature_round_trips_exactly(tmp_path):
    conn, full = _corpus_in(tmp_path / "d")
    info = conn.describe()
    assert (info.count, info.namespaces, info.sparse, info.vector_name) == (600, {"": 400, "ns": 200}, True, "default")
    assert info.extra_vectors == SPEC.extra_vectors
    got, rejected = _scan_all(connect(f"parquet://{tmp_path}/d"))
    assert not rejected and len(got) == 600
    _same(got, full)
    assert 2**64 - 1 in got.ids and "18446744073709551615" in got.ids  # int and string apart
    manifest = orjson.loads((tmp_path / "d" / "vmkit-manifest.json").read_bytes())
    assert manifest["namespaces"] == ["", "ns"] and manifest["id_kinds"] == ["string", "uint"]
    assert [p["records"] for p in manifest["parts"]] == [200, 200, 200]
    for p in manifest["parts"]:  # the digest is xxh3-128 of the file's bytes
        assert xxhash.xxh3_128_hexdigest((tmp_path / "d" / p["file"]).read_bytes()) == p["digest"]
    fetched = conn.fetch([full.ids[5], full.ids[1], "no such id"], "")
    assert fetched.ids == [full.ids[5], full.ids[1]]
    _same(fetched, full)
    assert len(conn.fetch([full.ids[5]], "ns")) == 0  # ids live in their own namespace


def test_scan_resumes_in_a_new_connector(tmp_path):
    conn, full = _corpus_in(tmp_path / "d")
    first, cursor = conn.scan(None, 150)
    second, cursor = conn.scan(cursor, 150)
    assert (len(first), len(second)) == (150, 50) and cursor == "[1,0]"  # a page ends with its part
    conn.close()
    rest, _ = _scan_all(connect(f"parquet://{tmp_path}/d"), 61, cursor)  # as after a restart
    ids = first.ids + second.ids + rest.ids
    assert len(ids) == 600 and len({(type(i), i) for i in ids}) == 600


def test_a_replayed_batch_is_not_duplicated(tmp_path):
    conn, full = _corpus_in(tmp_path / "d")
    last = full.take(range(400, 600))
    last.namespace = "ns"
    conn.upsert(last)  # a resumed migration writes its last batch again
    fresh = connect(f"parquet://{tmp_path}/d")
    assert fresh.count() == 600
    assert len(list((tmp_path / "d").glob("*.parquet"))) == 3  # replaced its own part
    changed = full.take([0, 1])
    changed.vectors[:] = 7.0
    conn.upsert(changed)  # the same ids in another batch (a repair): the newest copy wins
    fresh = connect(f"parquet://{tmp_path}/d")
    got, _ = _scan_all(fresh)
    assert len(got) == 600 and fresh.count() == 600
    assert np.all(fresh.fetch([full.ids[0]]).vectors == 7.0)


def test_a_big_upsert_is_written_as_files_side_by_side_and_replayed_whole(tmp_path, monkeypatch):
    import vmkit.connectors.parquet.write as parquet_write

    conn = connect(f"parquet://{tmp_path}/big")
    conn.create(TargetSpec("big", 4, "dot"))
    batch = RecordBatch([f"r{i}" for i in range(9000)], np.random.default_rng(1).standard_normal((9000, 4)),
                        [{"i": i} for i in range(9000)])
    files = lambda: sorted(p.name for p in (tmp_path / "big").glob("*.parquet"))  # noqa: E731
    monkeypatch.setattr(parquet_write.os, "cpu_count", lambda: 3)
    conn.upsert(batch)
    first = files()
    assert len(first) == 2  # 9,000 rows: two files of at least PIECE_ROWS (4,096)
    conn.upsert(batch)  # a replay replaces both
    assert files() == first
    monkeypatch.setattr(parquet_write.os, "cpu_count", lambda: 1)
    conn.upsert(batch)  # replayed on a machine of one core: one file replaces the two
    assert len(files()) == 1
    fresh = connect(f"parquet://{tmp_path}/big")
    got, rejected = _scan_all(fresh)
    assert fresh.count() == 9000 and sorted(got.ids) == sorted(batch.ids) and not rejected
    assert np.array_equal(fresh.fetch(["r8999", "r0"]).vectors, batch.vectors[[8999, 0]].astype(np.float32))


def test_finish_load_leaves_each_record_once_on_disk_for_importers(tmp_path):
    """An id written again by another batch (a repair) leaves an older row in its first part
    until finish_load rewrites that part: an importer reading every file must see it once."""
    conn, full = _corpus_in(tmp_path / "d")
    changed = full.take([0, 1])
    changed.vectors[:] = 7.0
    conn.upsert(changed)

    def on_disk() -> list:  # (namespace, id, int or not) of every row of every file
        tables = [pq.read_table(f, columns=["namespace", "id", "id_uint"]) for f in (tmp_path / "d").glob("*.parquet")]
        return [(ns, rid, u is None) for t in tables for ns, rid, u in
                zip(*(t.column(c).to_pylist() for c in ("namespace", "id", "id_uint")))]

    assert len(on_disk()) == 602  # the two older rows are still in their part
    conn.finish_load()
    conn.finish_load()  # idempotent
    rows = on_disk()
    assert len(rows) == len(set(rows)) == 600
    fresh = connect(f"parquet://{tmp_path}/d")
    assert fresh.count() == 600 and np.all(fresh.fetch([full.ids[0], full.ids[1]]).vectors == 7.0)
    got, rejected = _scan_all(fresh)
    assert len(got) == 600 and not rejected  # digests of the rewritten part are in the manifest


def test_delete_removes_records_and_count_follows(tmp_path):
    conn, full = _corpus_in(tmp_path / "d")
    conn.delete([full.ids[0], full.ids[450], full.ids[3]], "")  # 450 lives in "ns": kept
    fresh = connect(f"parquet://{tmp_path}/d")
    assert fresh.count() == 598 and fresh.describe().namespaces == {"": 398, "ns": 200}
    assert len(fresh.fetch([full.ids[0], full.ids[3]])) == 0
    got, _ = _scan_all(fresh)
    assert full.ids[0] not in got.ids and len(got) == 598


def test_a_crash_between_writes_leaves_a_readable_directory(tmp_path, monkeypatch):
    conn, full = _corpus_in(tmp_path / "d")
    (tmp_path / "d" / ".tmp-crashed").write_bytes(b"PAR1 half a part")  # stray tmp part
    (tmp_path / "d" / ".tmp-manifest").write_bytes(b'{"format": "vmkit-')  # and a stray manifest
    real = os.replace

    def crash_on_manifest(src, dst):
        if str(dst).endswith("vmkit-manifest.json"):
            raise OSError("killed before the manifest was renamed")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_manifest)
    extra = corpus_batch(700).take(range(600, 700))
    with pytest.raises(OSError):
        conn.upsert(extra)  # the part was renamed into place, the manifest was not
    monkeypatch.setattr(os, "replace", real)
    fresh = connect(f"parquet://{tmp_path}/d")
    assert fresh.describe().count == 600  # the old manifest and the parts it lists
    got, rejected = _scan_all(fresh)
    assert len(got) == 600 and not rejected
    assert len(list((tmp_path / "d").glob("*.parquet"))) == 4  # the unlisted part is on disk
    fresh.finish_load()  # what the runner calls once the copy is done (and after a resume)
    assert len(list((tmp_path / "d").glob("*.parquet"))) == 3
    assert not list((tmp_path / "d").glob(".tmp-*")) and fresh.count() == 600


def _rewrite(path: Path, table: pa.Table) -> None:
    pq.write_table(table, path)


def test_a_part_with_a_wrong_schema_is_a_plan_error_and_never_read(tmp_path):
    conn, _ = _corpus_in(tmp_path / "d")
    part = sorted((tmp_path / "d").glob("*.parquet"))[0]
    _rewrite(part, pa.table({"id": ["a"] * 200, "values": pa.array([[1.0]] * 200, pa.list_(pa.float64()))}))
    with pytest.raises(PlanError, match=part.name):
        connect(f"parquet://{tmp_path}/d").describe()
    with pytest.raises(PlanError, match=part.name):  # before any write
        Migration.create(f"parquet://{tmp_path}/d", "memory://t", state=tmp_path / "s.db")
    got, rejected = _scan_all(connect(f"parquet://{tmp_path}/d"))  # a scan without describe
    assert len(got) == 400 and len(rejected) == 200
    assert all(r.field == SOURCE_UNREADABLE and part.name in r.reason for r in rejected)


def test_a_truncated_part_is_a_plan_error_or_dead_lettered_by_row(tmp_path):
    conn, full = _corpus_in(tmp_path / "d")
    part = sorted((tmp_path / "d").glob("*.parquet"))[1]
    data = part.read_bytes()
    part.write_bytes(data[: len(data) // 2])
    with pytest.raises(PlanError, match=f"{part.name}.*truncated"):
        connect(f"parquet://{tmp_path}/d").describe()
    got, rejected = _scan_all(connect(f"parquet://{tmp_path}/d"), 64)
    assert len(got) + len(rejected) == 600 and len(rejected) > 0  # every record accounted for
    rows = sorted(int(r.reason.split(" row ")[1].split(":")[0]) for r in rejected)
    assert rows == list(range(len(rejected)))  # each dead letter names its row
    assert all(str(r.record_id).startswith(f"{part.name}#") for r in rejected)


def test_a_part_changed_after_the_manifest_is_dead_lettered_with_its_ids(tmp_path):
    conn, full = _corpus_in(tmp_path / "d")
    part = sorted((tmp_path / "d").glob("*.parquet"))[0]
    table = pq.read_table(part)
    values = pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(200 * DIM, np.float32)), DIM)
    _rewrite(part, table.set_column(table.schema.get_field_index("values"), "values", values))
    fresh = connect(f"parquet://{tmp_path}/d")
    assert fresh.describe() is not None  # the footer is fine: only the bytes tell
    got, rejected = _scan_all(fresh)
    assert len(got) == 400 and len(rejected) == 200
    assert all("digest" in r.reason and part.name in r.reason for r in rejected)


def test_create_drop_and_layout_options(tmp_path):
    with pytest.raises(ConfigError, match="layout must be vmkit, pinecone or weaviate"):
        connect(f"parquet://{tmp_path}/w?layout=lance")
    with pytest.raises(ConfigError, match="absolute"):
        connect("parquet://rel/dir")
    other = tmp_path / "mine"
    other.mkdir()
    (other / "keep.txt").write_text("not vmkit's")
    conn = connect(f"parquet://{other}")
    assert conn.describe() is None
    with pytest.raises(TerminalError, match="not empty"):
        conn.create(SPEC)
    with pytest.raises(TerminalError, match="no vmkit manifest"):
        conn.drop()
    assert (other / "keep.txt").exists()
    conn, _ = _corpus_in(tmp_path / "d")
    with pytest.raises(ConfigError, match="layout=vmkit"):
        connect(f"parquet://{tmp_path}/d?layout=pinecone").describe()
    conn.drop()
    assert not (tmp_path / "d").exists() and connect(f"parquet://{tmp_path}/d").describe() is None


def test_a_fresh_process_reads_the_directory(tmp_path):
    """Resuming a scan in another interpreter: nothing the reader needs is left imported by
    the writer (pyarrow.compute and pyarrow.parquet are loaded by the connector itself)."""
    import subprocess
    import sys

    conn, full = _corpus_in(tmp_path / "d")
    _, cursor = conn.scan(None, 150)
    code = ("import sys; from vmkit import connect; c = connect(sys.argv[1]); n, cur = 0, sys.argv[2]\n"
            "while cur is not None:\n    b, cur = c.scan(cur, 100); n += len(b)\n"
            "print(n, c.count())")
    out = subprocess.run([sys.executable, "-c", code, f"parquet://{tmp_path}/d", cursor], check=True,
                         capture_output=True, text=True, cwd=Path(__file__).resolve().parents[3]).stdout
    assert out.split() == ["450", "600"]

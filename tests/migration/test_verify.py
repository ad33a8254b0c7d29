"""Full verification catches, by id, each planted corruption (reliability.md, "Validation strength").

The scaling case needs a dot-product collection: a cosine collection stores unit vectors, so a
vector scaled by 1.01 is the same record there.
"""

from __future__ import annotations

import numpy as np
import pytest

from vmkit import Migration, connect
from vmkit.core.records import RecordBatch


@pytest.fixture
def migrated(tmp_path):
    from vmkit.connectors.datasets import fill

    src = f"qdrant://{tmp_path}/src?collection=docs"
    dst = f"qdrant://{tmp_path}/dst?collection=docs"
    fill(src, 300, 16, metric="dot")
    m = Migration.create(src, dst, migration_id="v", state=tmp_path / "s.db", batch_size=100)
    status = m.run()
    assert status.state == "completed" and status.verification == "passed"
    yield m, dst
    m.close()


def _rewrite(dst: str, rid, change) -> None:
    with connect(dst) as conn:
        rec = conn.fetch([rid])
        assert len(rec) == 1
        change(rec)
        conn.upsert(rec)


CORRUPTIONS = {
    "scaled by 1.01": lambda r: r.vectors.__imul__(np.float32(1.01)),
    "sign flip": lambda r: r.vectors[0].__setitem__(3, -r.vectors[0][3]),
    "type change": lambda r: r.metadata[0].__setitem__("lang", 1),
    "string to int": lambda r: r.metadata[0].__setitem__("views", str(r.metadata[0]["views"])),
    "dropped key": lambda r: r.metadata[0].pop("title"),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_mismatch_is_caught_by_id(migrated, name):
    m, dst = migrated
    _rewrite(dst, 42, CORRUPTIONS[name])
    result = m.verify()
    assert not result.passed
    assert [k for k, _ in result.mismatched] == [("", 42)]
    assert result.missing == [] and result.extra == []
    assert m.status().verification == "failed"


def test_deleted_record_is_missing(migrated):
    m, dst = migrated
    with connect(dst) as conn:
        conn.delete([8])
    result = m.verify()
    assert result.missing == [("", 8)] and not result.extra and not result.mismatched


def test_extra_record_is_reported(migrated):
    m, dst = migrated
    with connect(dst) as conn:
        conn.upsert(RecordBatch([999_999], np.ones((1, 16), np.float32), [{"x": 1}]))
    result = m.verify()
    assert result.extra == [("", 999_999)] and not result.missing and not result.mismatched


def test_untouched_copy_passes_and_reports_counts(migrated):
    m, _ = migrated
    result = m.verify()
    assert result.passed and result.matched == 300 and result.source_records == 300


def test_cosine_target_compares_after_normalizing(tmp_path):
    """Under cosine the target keeps unit vectors: a scaled copy is equal, a rotated one is not."""
    from vmkit.connectors.datasets import fill

    src = f"qdrant://{tmp_path}/src?collection=docs"
    dst = f"qdrant://{tmp_path}/dst?collection=docs"
    fill(src, 50, 8, metric="cosine")
    m = Migration.create(src, dst, migration_id="c", state=tmp_path / "s.db")
    assert m.run().verification == "passed"
    _rewrite(dst, 4, CORRUPTIONS["scaled by 1.01"])
    assert m.verify().passed
    _rewrite(dst, 4, CORRUPTIONS["sign flip"])
    assert [k for k, _ in m.verify().mismatched] == [("", 4)]
    m.close()


def test_cosine_copy_verifies_by_hash_alone_after_a_reopen(tmp_path, monkeypatch):
    """The embedded Qdrant engine keeps the raw vectors on disk and hands them back after a
    reopen (unit vectors only until then): they are normalized as the source side is, so equal
    records match by hash, with none left for the slow exact re-check (all 400 before)."""
    import vmkit.migration.verification as verification
    from vmkit.connectors.datasets import fill

    src = f"qdrant://{tmp_path}/src?collection=docs"
    dst = f"qdrant://{tmp_path}/dst?collection=docs"
    fill(src, 400, 16, metric="cosine")
    m = Migration.create(src, dst, migration_id="n", state=tmp_path / "s.db", verify=False)
    m.run()
    m.close()
    rechecked: list[int] = []
    real = verification.recheck
    monkeypatch.setattr(verification, "recheck", lambda suspects, *a: (rechecked.append(len(suspects)), real(suspects, *a))[1])
    reopened = Migration.open("n", tmp_path / "s.db")  # a new connector: the engine reloads from disk
    result = reopened.verify()
    assert result.passed and result.matched == 400 and rechecked == [0], (str(result), rechecked)
    with connect(dst) as conn:  # a changed direction is still a mismatch
        rec, _ = conn.scan(None, 1)
        rec.vectors[0, 0] = -rec.vectors[0, 0] + 1
        conn.upsert(rec)
    assert [k for k, _ in reopened.verify().mismatched] == [("", rec.ids[0])]
    reopened.close()

"""The bad-input corpus (``resilience/corpus.py``, 40+ cases): every record is either migrated
exactly or rejected into the dead-letter table with its reason, and the counts balance
(read = written + rejected), on targets with different capabilities: memory (every id kind,
vectors as given), memory with Qdrant's rules (uuid/uint ids, unit vectors), memory with
Pinecone's id rules (strings of at most 512 characters, no zero vectors), and the embedded
Qdrant engine. ``vmkit status`` shows the rejections by reason and ``vmkit rejections`` lists
the rejected ids (the CLI runs in this process, where the memory stores live).

What the target holds is read back with plain scans and mapped back to source ids through
the documented id mapping (original id kept in ``_vmkit_source_id``, int ids travelling as
strings marked ``_vmkit_id_kind: "uint"``, a folded namespace kept in ``namespace``).
"""

from __future__ import annotations

import datetime
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from resilience import corpus
from resilience.corpus import EXACT, NORMALIZING, SKIP, Case, one
from typer.testing import CliRunner

from vmkit import Migration
from vmkit.cli import app
from vmkit.connectors import connect

pytestmark = pytest.mark.filterwarnings("ignore:Local mode is not recommended:UserWarning")

TARGETS = {
    "mem": "memory://dst",
    "json": "json://dst",
    "qlike": "memory://dst?ids=uuid,uint&normalize=1&max_bytes=16777216",
    "strs": "strs://dst",
    "qdrant": "qdrant://{dir}/q?collection=dst",
}
VMKIT_KEYS = ("_vmkit_source_id", "_vmkit_id_kind")



@pytest.fixture
def shm_dir():
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    d = Path(tempfile.mkdtemp(prefix="vmkit-bad-", dir=base))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(autouse=True)
def _corpus_connectors(monkeypatch):
    corpus.install(monkeypatch)


def target_view(uri: str, kind: str) -> dict[tuple[str, object], tuple[np.ndarray, dict, object]]:
    """(source namespace, source id) -> (vector, metadata without vmkit's keys, sparse)."""
    out: dict[tuple[str, object], tuple[np.ndarray, dict, object]] = {}
    with connect(uri) as conn:
        cursor = None
        while True:
            batch, cursor = conn.scan(cursor, 1000)
            for rid, v, meta, sp in batch.rows():
                meta = dict(meta)
                original = meta.pop("_vmkit_source_id", rid)
                if meta.pop("_vmkit_id_kind", None) == "uint":
                    original = int(original)
                ns = meta.pop("namespace", "") if kind == "qdrant" else batch.namespace
                key = (ns, original)
                assert key not in out, f"two target records claim {key!r}"
                out[key] = (np.asarray(v, np.float32), meta, sp)
            if cursor is None:
                return out


def same_vector(want: np.ndarray, got: np.ndarray, normalized: bool) -> bool:
    if not normalized:
        return want.tobytes() == got.tobytes()
    w = want.astype(np.float64)
    w = w / np.linalg.norm(w)
    return bool(np.all(np.abs(w - got.astype(np.float64) / np.linalg.norm(got.astype(np.float64))) <= 1e-6))


def migrate(case_list: list[Case], kind: str, state: Path, target: str, mid: str = "bad"):
    uri = corpus.register(f"corpus-{kind}", [c.batch() for c in case_list])
    # A corpus of nothing but bad cases: the breaker (its own tests) would rightly stop it.
    m = Migration.create(uri, target, migration_id=mid, state=state, sample_rate=1.0, max_reject_rate=0)
    return m, m.run()


def cli(*args: str) -> str:
    """The CLI in this process (where the memory stores live); its logging set-up undone."""
    logger = logging.getLogger("vmkit")
    handlers, level = list(logger.handlers), logger.level
    try:
        result = CliRunner().invoke(app, list(args))
    finally:
        logger.handlers, logger.level = handlers, level
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("kind", ["mem", "qlike", "strs", "qdrant"])
def test_corpus_each_record_migrated_exactly_or_rejected(kind, shm_dir):
    case_list = [c for c in corpus.cases() if c.outcome(kind) != SKIP]
    assert len(case_list) >= 30
    target = TARGETS[kind].format(dir=shm_dir)
    state = shm_dir / "state.db"
    m, st = migrate(case_list, kind, state, target)

    assert st.state == "completed" and st.verification == "passed", str(st)
    view = target_view(target, kind)
    rejections = m.store.query("SELECT namespace, record_id, field, reason FROM rejections")
    rejected: dict[tuple[str, str], list[str]] = {}
    for ns, rid, _, reason in rejections:
        rejected.setdefault((ns, rid), []).append(reason)

    expected_keys, n_rejected, n_read = set(), 0, 0
    for c in case_list:
        want = c.outcome(kind)
        batch = c.batch()
        n_read += len(batch) + len(batch.rejected)
        for r in batch.rejected:  # the source could not represent these
            assert any(want in why for why in rejected.get((batch.namespace, str(r.record_id)), [])), c.name
            n_rejected += 1
        last = {rid: i for i, rid in enumerate(batch.ids)}
        for i, rid in enumerate(batch.ids):
            key = (batch.namespace, rid)
            if c.name == "duplicate ids in one batch" and i != last[rid]:
                reasons = rejected.get((batch.namespace, str(rid)), [])
                assert any("duplicate id in batch" in why for why in reasons), reasons
                n_rejected += 1
                continue
            if want == EXACT:
                assert key in view, f"{c.name}: {rid!r} is not on the target"
                got_vec, got_meta, got_sparse = view[key]
                assert same_vector(batch.vectors[i], got_vec, kind in NORMALIZING), c.name
                assert got_meta == batch.metadata[i], c.name
                assert type_tree(got_meta) == type_tree(batch.metadata[i]), c.name
                want_sparse = None if batch.sparse is None else batch.sparse[i]
                assert got_sparse == want_sparse, c.name
                expected_keys.add(key)
            else:
                assert key not in view, f"{c.name}: {rid!r} should have been rejected"
                reasons = rejected.get((batch.namespace, str(rid)), [])
                assert any(want in why for why in reasons), f"{c.name}: {reasons} lacks {want!r}"
                n_rejected += 1
    assert set(view) == expected_keys  # nothing else on the target
    # every record accounted for, exactly once
    assert st.records_read == n_read == st.records_written + st.records_rejected
    assert st.records_written == len(view) and st.records_rejected == n_rejected == len(rejections)

    # the operator's view of the same dead letters, through the CLI
    status = cli("status", "--id", "bad", "--state", str(state))
    assert "rejections by reason:" in status
    for reason, count in st.rejections_by_reason.items():
        assert any(line.strip() == f"{count}  {reason}" for line in status.splitlines()), reason
    listed = cli("rejections", "--id", "bad", "--state", str(state)).splitlines()
    assert listed[0] == "namespace\tid\tfield\treason" and len(listed) == 1 + len(rejections)
    assert sorted(line.split("\t")[1] for line in listed[1:]) == sorted(r[1] for r in rejections)


def type_tree(value):
    """The JSON types of a value, at every depth (1 and 1.0 and True differ)."""
    if isinstance(value, dict):
        return {k: type_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [type_tree(v) for v in value]
    return type(value).__name__


def single(case: Case, kind: str, shm_dir: Path):
    target = TARGETS[kind].format(dir=shm_dir)
    m, st = migrate([case], kind, shm_dir / "state.db", target)
    return m, st, target_view(target, kind) if st.records_written else {}


# -- cases tested one at a time, beside the corpus ----------------------------------------------



def test_a_batch_whose_records_are_all_rejected_is_verified(shm_dir):
    nan = one("nan", "v-nan", v=(float("nan"), 1, 2, 3), default=corpus.NONFINITE)
    m, st = migrate([one("good", "g"), nan, one("good too", "h")], "mem", shm_dir / "s.db",
                    "memory://dst")
    assert st.state == "completed" and st.records_rejected == 1



@pytest.mark.parametrize("meta", [
    {"x": 2**64 + 1}, {"x": np.float32(1.5)}, {"x": b"bytes"}, {"x": {1, 2}},
    {1: "int key", "s": 1}],
    ids=["int-past-2**64", "numpy-scalar", "bytes", "set", "int-key"])
@pytest.mark.parametrize("kind", ["mem", "qdrant"])
def test_unencodable_metadata_is_dead_lettered_not_fatal(meta, kind, shm_dir):
    """Values JSON cannot carry (what a custom source may hand over) are refused per record;
    the rest of the batch is migrated."""
    case = Case("unencodable", ["ok", "bad"], corpus.vec((1, 2, 3, 4), (4, 3, 2, 1)), [{"n": 1}, meta])
    m, st, view = single(case, kind, shm_dir)
    assert st.state == "completed" and st.verification == "passed", str(st)
    assert set(view) == {("", "ok")} and view[("", "ok")][1] == {"n": 1}
    rows = m.store.query("SELECT record_id, field, reason FROM rejections")
    assert len(rows) == 1 and rows[0][:2] == ("bad", "metadata") and "JSON" in rows[0][2], rows
    assert st.records_read == 2 == st.records_written + st.records_rejected


def test_int_id_past_2_64_is_rejected(shm_dir):
    m, st, view = single(one("uint overflow", 2**64), "mem", shm_dir)
    assert st.records_rejected == 1 and not view


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_nonfinite_metadata_number_is_kept_or_rejected(value, shm_dir):
    """On ``json://`` (memory that keeps metadata as JSON text, as REST services do)."""
    m, st, view = single(one("nan meta", "m-nan", {"x": value}), "json", shm_dir)
    if st.records_rejected == 1:
        return
    got = view[("", "m-nan")][1]["x"]
    assert got is not None and (got != got or got == value), f"stored {got!r}; {st.verification}"


@pytest.mark.parametrize("kind", ["mem", "qlike"])
def test_ids_differing_only_in_case_stay_two_records(kind, shm_dir):
    upper, lower = corpus.UPPER_UUID, corpus.UPPER_UUID.lower()
    case_list = [one("upper", upper, {"case": "upper"}), one("lower", lower, {"case": "lower"},
                                                              v=(4, 3, 2, 1))]
    target = TARGETS[kind].format(dir=shm_dir)
    m, st = migrate(case_list, kind, shm_dir / "state.db", target)
    view = target_view(target, kind)
    assert st.state == "completed", str(st)
    assert {k[1] for k in view} == {upper, lower}


def test_int_and_string_twins_stay_two_records_on_a_string_only_target(shm_dir):
    case_list = [one("int", 7, {"k": "int"}), one("str", "7", {"k": "str"}, v=(4, 3, 2, 1))]
    m, st = migrate(case_list, "strs", shm_dir / "state.db", "strs://dst")
    assert st.state == "completed" and st.verification == "passed", str(st)


@pytest.mark.parametrize("kind,big", [("qlike", 1e20), ("qlike", 3.0e38), ("qdrant", 1e20)])
def test_vector_with_overflowing_norm_is_rejected_on_normalizing_targets(kind, big, shm_dir):
    m, st, view = single(one("huge", "v-huge", v=(big, big, 1, 1)), kind, shm_dir)
    if st.records_rejected == 1:
        return
    assert st.state == "completed", str(st)
    got = view[("", "v-huge")][0]
    assert np.abs(got).max() > 0, f"stored {got}"


# -- dates: what happens, documented --------------------------------------------------------------

WHEN = datetime.datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=datetime.timezone.utc)
DATES = {"at": WHEN, "naive": WHEN.replace(tzinfo=None), "day": WHEN.date(), "nested": {"when": [WHEN]}}


def test_datetimes_in_metadata_on_a_target_that_keeps_objects(shm_dir):
    """memory:// keeps the objects themselves: the same instants come back, verified."""
    m, st, view = single(one("dates", "d-1", DATES), "mem", shm_dir)
    assert st.state == "completed" and st.verification == "passed"
    assert view[("", "d-1")][1] == DATES


@pytest.mark.parametrize("kind", ["json", "qdrant"])
def test_datetimes_in_metadata_arrive_as_iso_strings(kind, shm_dir):
    """A source can hand vmkit datetime objects (Weaviate's date properties do). JSON targets
    store ISO-8601 text; the text parses back to the same instant, and verification (which
    hashes canonical JSON) treats the two as equal."""
    m, st, view = single(one("dates", "d-1", DATES), kind, shm_dir)
    assert st.state == "completed" and st.verification == "passed", str(st)
    got = view[("", "d-1")][1]
    assert datetime.datetime.fromisoformat(got["at"]) == WHEN
    assert datetime.datetime.fromisoformat(got["naive"]) == DATES["naive"]
    assert datetime.date.fromisoformat(got["day"]) == WHEN.date()
    assert datetime.datetime.fromisoformat(got["nested"]["when"][0]) == WHEN


def test_datetimes_are_announced_by_the_plan(shm_dir):
    from vmkit.planning.planner import plan

    uri = corpus.register("dates", [one("dates", "d-1", {"at": WHEN}).batch()])
    with connect(uri) as src, connect("memory://dst") as dst:
        p = plan(src, dst)
    assert any("at" in w.field for w in p.warnings), [str(w) for w in p.warnings]

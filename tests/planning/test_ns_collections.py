"""namespace_policy="collections": the namespace -> collection map (names fit the target's rules,
deterministic), the plan that carries it (shown, hashed, checked against existing collections),
map_batch routing by namespace, and the refusals (no such capability, bad template, sync)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

from vmkit import TargetSpec, connect
from vmkit.core.errors import PlanError
from vmkit.core.naming import collection_names
from vmkit.core.records import RecordBatch
from vmkit.planning.plan import Plan
from vmkit.planning.planner import plan as make_plan
from vmkit.planning.transform import map_batch

pytest.importorskip("qdrant_client")
pytestmark = pytest.mark.filterwarnings("ignore:Local mode is not recommended:UserWarning")

QDRANT_FORBIDDEN = '<>:"/\\|?*'
SPACES = ("", "alpha", "b/c")


def mem_source(namespaces=SPACES, n: int = 4, dim: int = 8) -> str:
    conn = connect("memory://src")
    conn.create(TargetSpec("src", dim, "cosine"))
    rng = np.random.default_rng(0)
    for ns in namespaces:
        conn.upsert(RecordBatch([f"r{i}" for i in range(n)], rng.standard_normal((n, dim)),
                                [{"i": i} for i in range(n)], namespace=ns))
    return "memory://src"


def qdrant(tmp_path: Path, collection: str = "docs") -> str:
    return f"qdrant:///{tmp_path}/q?collection={collection}"


def plan_for(source: str, target: str, **kw) -> Plan:
    with connect(source) as src, connect(target) as dst:
        return make_plan(src, dst, **kw)


# -- names ------------------------------------------------------------------------------------

def test_names_fit_the_target_rules_and_are_deterministic():
    spaces = ["", "alpha", "a/b", "a_b", "x" * 300, "..", "tab\there", "é"]
    names = collection_names(spaces, "docs", "{collection}_{namespace}", QDRANT_FORBIDDEN, 255)
    assert names[""] == "docs"  # the default namespace keeps the URI's collection
    assert names["alpha"] == "docs_alpha" and names["é"] == "docs_é"
    assert names["a_b"] == "docs_a_b"  # a name valid as it is keeps itself...
    assert names["a/b"] == "docs_a_b_2"  # ...and the one that had to change gets the suffix
    assert names["tab\there"] == "docs_tab_here" and names[".."] == "docs_.."
    assert len(names["x" * 300]) == 255
    assert len(set(names.values())) == len(spaces)
    assert all(not set(n) & set(QDRANT_FORBIDDEN) for n in names.values())
    assert collection_names(reversed(spaces), "docs", "{collection}_{namespace}", QDRANT_FORBIDDEN,
                            255) == names  # input order does not matter
    assert collection_names([".", ""], "", "{namespace}", "", None) == {"": "_", ".": "_."}


# -- the plan ---------------------------------------------------------------------------------

def test_plan_maps_shows_and_hashes_the_collections(tmp_path):
    src = mem_source()
    p = plan_for(src, qdrant(tmp_path), namespace_policy="collections")
    assert p.namespace_policy == "collections" and p.errors == []
    assert p.namespace_collections == {"": "docs", "alpha": "docs_alpha", "b/c": "docs_b_c"}
    assert p.create_target is True
    text = str(p)
    assert "namespaces: 3 -> one collection each" in text
    assert "namespace 'b/c' -> collection 'docs_b_c'" in text
    assert any(w.field == "namespace" and "'b/c' -> 'docs_b_c'" in w.policy for w in p.warnings)
    assert Plan.from_json(p.to_json()) == p

    field = plan_for(src, qdrant(tmp_path))
    assert field.namespace_policy == "field" and field.namespace_collections == {}  # the default
    other = plan_for(src, qdrant(tmp_path), namespace_policy="collections",
                     namespace_collection="{namespace}-of-{collection}")
    assert other.namespace_collections["alpha"] == "alpha-of-docs"
    assert len({p.hash, field.hash, other.hash}) == 3


def test_plans_from_before_the_option_keep_their_hash(tmp_path):
    p = plan_for(mem_source(), qdrant(tmp_path))
    old = orjson.loads(p.to_json())
    del old["namespace_collections"]
    assert Plan.from_json(orjson.dumps(old).decode()).hash == p.hash


def test_a_target_without_collections_is_a_plan_error():
    p = plan_for(mem_source(), "memory://dst", namespace_policy="collections")
    assert [w.field for w in p.errors] == ["namespace"]
    assert "collections of their own" in p.errors[0].message


@pytest.mark.parametrize("template", ["{collection}_x", "{collection}_{tenant}", "{0}"])
def test_a_template_without_the_namespace_is_refused(tmp_path, template):
    with pytest.raises(PlanError, match="namespace_collection template"):
        plan_for(mem_source(), qdrant(tmp_path), namespace_policy="collections",
                 namespace_collection=template)


def test_existing_collections_must_all_exist_and_fit(tmp_path):
    src = mem_source()
    with connect(qdrant(tmp_path, "docs_alpha")) as q:
        q.create(TargetSpec("docs_alpha", 8, "cosine"))
    p = plan_for(src, qdrant(tmp_path), namespace_policy="collections")
    assert any("1 of the 3 namespace collections exist already (docs_alpha)" in w.message for w in p.errors)
    for name, dim in (("docs", 8), ("docs_b_c", 4)):
        with connect(qdrant(tmp_path, name)) as q:
            q.create(TargetSpec(name, dim, "cosine"))
    p = plan_for(src, qdrant(tmp_path), namespace_policy="collections")
    assert p.create_target is False
    assert [w.message for w in p.errors] == [
        "collection 'docs_b_c' has dimension 4 and metric 'cosine', the source 8 and 'cosine'"]


# -- the transform ------------------------------------------------------------------------------

def test_map_batch_keeps_the_namespace_and_no_field(tmp_path):
    src = mem_source()
    p = plan_for(src, qdrant(tmp_path), namespace_policy="collections")
    with connect(src) as s:
        alpha = map_batch(s.fetch(["r1", "r2"], "alpha"), p)
        default = map_batch(s.fetch(["r1", "r2"], ""), p)
    assert alpha.batch.namespace == "alpha" and not alpha.rejected
    assert all("namespace" not in m for m in alpha.batch.metadata)
    assert alpha.batch.ids == default.batch.ids  # ids are not scoped: each collection is its own space


def test_a_namespace_unknown_to_the_plan_is_rejected(tmp_path):
    src = mem_source()
    p = plan_for(src, qdrant(tmp_path), namespace_policy="collections")
    with connect(src) as s:
        batch = s.fetch(["r1", "r2"], "alpha")
    batch.namespace = "late"
    out = map_batch(batch, p)
    assert len(out.batch) == 0 and out.read == 2
    assert [(r.record_id, r.field) for r in out.rejected] == [("r1", "namespace"), ("r2", "namespace")]
    assert "namespace 'late' has no collection in the plan" in out.rejected[0].reason


def test_sync_refuses_collections_before_storing_anything(tmp_path):
    from vmkit.state.store import StateStore
    from vmkit.sync.engine import Sync

    with pytest.raises(PlanError, match="sync does not support namespace_policy='collections'"):
        Sync.create(mem_source(), qdrant(tmp_path), migration_id="s", state=tmp_path / "s.db",
                    namespace_policy="collections")
    assert not StateStore(tmp_path / "s.db").exists("s")


# -- a whole run ----------------------------------------------------------------------------------

def test_report_reads_back_and_rollback_drops_every_collection(tmp_path):
    from vmkit import Migration
    from vmkit.notebook.report import report

    src = mem_source(n=30)
    m = Migration.create(src, qdrant(tmp_path), migration_id="m", state=tmp_path / "s.db",
                         namespace_policy="collections", batch_size=20)
    st = m.run()
    assert st.state == "completed" and st.verification == "passed" and st.records_written == 90
    rep = report(m, sample=60)
    assert rep.cosine_sample is not None and len(rep.cosine_sample) == 60  # found in their collections
    assert float(rep.cosine_sample.min()) > 0.9999

    m2 = Migration.create(src, qdrant(tmp_path, "other"), migration_id="m2",
                          state=tmp_path / "s.db", namespace_policy="collections", batch_size=20)
    m2.run(max_batches=2)
    m2.rollback(drop_target=True)
    with connect(qdrant(tmp_path)) as q:
        names = q.list_collections()
    assert names == ["docs", "docs_alpha", "docs_b_c"]  # m2's three are gone, m's stay

"""Child process for the real-SIGKILL sync test: the application (a writer thread going through
the JournalingWriter) and the bulk copier in ONE process, because embedded Qdrant allows one
process per directory. A SIGKILL therefore kills both, as a crash of a service that embeds
the migration would; a write cut between its source write and its journal append is the
"change without an event" that the verification passes must repair.

    python qdrant_child.py STATE MID N OPLOG GENERATION

Crash points come from VMKIT_CRASH_AT (real SIGKILL). With SYNC_WINDOW_WRITES=1 every 3rd
watermark window also gets updates of rows of the chunk just read, before the crash point.
Without a crash it runs to the freeze point and prints one JSON line: the verification result.
"""

from __future__ import annotations

import json
import os
import sys

import orjson

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import vmkit.sync.engine  # noqa: E402
from sync.helpers import Workload  # noqa: E402
from vmkit import connect, verify  # noqa: E402
from vmkit.core import crashpoints  # noqa: E402
from vmkit.planning.plan import Plan  # noqa: E402
from vmkit.state.journal import read_row  # noqa: E402
from vmkit.state.store import StateStore  # noqa: E402
from vmkit.sync.engine import Sync  # noqa: E402
from vmkit.sync.writer import JournalingWriter  # noqa: E402


def main() -> None:
    state, mid, n, oplog, gen = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
    store = StateStore(state)
    writer = JournalingWriter(mid, store)

    def copied_upto() -> int:
        row = read_row(store, mid)
        if row.scan_done:
            return n
        return -1 if row.cursor is None else int(orjson.loads(row.cursor)) - 1  # qdrant: next offset

    with open(oplog, "a") as log:
        work = Workload(writer.upsert, writer.delete, n, copied_upto, seed=gen, rate=80,
                        id_base=10**6 * (gen + 1), oplog=log)
        real_hit, windows = crashpoints.hit, [0]

        def hit(name: str) -> None:
            if name == "sync_window" and os.environ.get("SYNC_WINDOW_WRITES"):
                windows[0] += 1
                if windows[0] % 3 == 0:
                    last = copied_upto()
                    for rid in (last + 1, last + 50, last + 150):
                        if rid < n:
                            work.update(rid)
            real_hit(name)

        vmkit.sync.engine.crashpoints.hit = hit  # type: ignore[attr-defined]
        work.start()
        sync = Sync.open(mid, store)
        sync.bulk_copy()
        sync.catch_up()
        st = sync.verify()
        while work.ops < 200:  # enough writes for the parent's checks, however fast the copy was
            work.stop.wait(0.01)
        work.join()  # the freeze point
        sync.catch_up()
        plan = Plan.from_json(store.get(mid).plan_json)
        rec = store.get(mid)
        with connect(rec.source_uri) as src, connect(rec.target_uri) as dst:
            result = verify(src, dst, plan)
        writer.close()
        print(json.dumps({"passed": result.passed, "summary": next(iter(result.lines())),
                          "phase": st.phase, "ops": work.ops, "seconds": work.seconds,
                          "status": str(sync.status())}))


if __name__ == "__main__":
    main()

"""vmkit: move vectors between vector databases without downtime, loss or corruption, and
prove it. The public API, re-exported (SDKs are imported only by the connectors that need them).
"""

from vmkit.connectors import connect
from vmkit.connectors.base import Capabilities, CollectionInfo, Connector, TargetSpec
from vmkit.core.errors import VmkitError
from vmkit.core.options import MigrationOptions
from vmkit.core.records import RecordBatch, Rejection, SparseVector
from vmkit.migration.runner import Migration, Progress
from vmkit.migration.status import Status
from vmkit.migration.verification import Verification, verify
from vmkit.notebook.controller import MigrationController
from vmkit.planning.dryrun import DryRun, dry_run
from vmkit.planning.plan import Plan
from vmkit.planning.planner import plan
from vmkit.planning.schema import Schema, infer_schema
from vmkit.planning.transform import map_batch
from vmkit.state.store import StateStore
from vmkit.sync.engine import JournalingWriter, Sync, sync_status

__version__ = "0.1.0"

__all__ = [
    "Capabilities", "CollectionInfo", "Connector", "DryRun", "Migration", "MigrationController", "MigrationOptions",
    "Plan", "Progress", "RecordBatch", "Rejection", "Schema", "SparseVector", "StateStore",
    "Status", "Sync", "JournalingWriter", "TargetSpec", "Verification", "VmkitError", "connect", "dry_run", "infer_schema",
    "map_batch", "plan", "sync_status", "verify",
]

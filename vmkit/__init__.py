"""vmkit: move vectors between vector databases without downtime, loss or corruption, and
prove it. The public API, re-exported (SDKs are imported only by the connectors that need them).
"""

from vmkit.connectors import connect
from vmkit.connectors.base import Capabilities, CollectionInfo, Connector, TargetSpec
from vmkit.controller import MigrationController
from vmkit.dryrun import DryRun, dry_run
from vmkit.errors import VmkitError
from vmkit.options import MigrationOptions
from vmkit.plan import Plan, plan
from vmkit.records import RecordBatch, Rejection, SparseVector
from vmkit.runner import Migration, Progress
from vmkit.schema import Schema, infer_schema
from vmkit.state import StateStore
from vmkit.status import Status
from vmkit.sync import JournalingWriter, Sync, sync_status
from vmkit.transform import map_batch
from vmkit.verification import Verification, verify

__version__ = "0.1.0"

__all__ = [
    "Capabilities", "CollectionInfo", "Connector", "DryRun", "Migration", "MigrationController", "MigrationOptions",
    "Plan", "Progress", "RecordBatch", "Rejection", "Schema", "SparseVector", "StateStore",
    "Status", "Sync", "JournalingWriter", "TargetSpec", "Verification", "VmkitError", "connect", "dry_run", "infer_schema",
    "map_batch", "plan", "sync_status", "verify",
]

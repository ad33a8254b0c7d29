"""Id kinds across systems and the deterministic, reversible id mapping.

Pinecone ids are strings, Qdrant takes unsigned 64-bit ints or UUIDs, Weaviate UUIDs only.
An id the target cannot take becomes ``uuid5(VMKIT_NAMESPACE, "s:" + id)`` (``"i:" + str(id)``
for ints, so 7 and "7" stay apart), and the original is kept in metadata so a re-run maps it
to the same target id (idempotent) and the way back restores it.

An int id on a target that takes strings but not ints (Pinecone) travels as its decimal text,
int 7 as "7" marked ``_vmkit_id_kind: "uint"``: the id users expect to see there, and the way
back into Qdrant restores the int. A string id "7" would take the same text, so when the plan
finds the source holding both int and string ids it chooses ``uint_ids="uuid5"``: ints then
become ``uuid5("i:7")`` with the original kept, and string ids stay as they are. A string id
is never rewritten for this: on Pinecone-to-Pinecone copies "7" must stay "7".
"""

from __future__ import annotations

import uuid
from typing import Any, Iterable

from vmkit.core.records import RecordId

VMKIT_NAMESPACE = uuid.UUID("6f1d2c3a-8a3e-5b7c-9d42-7a6b5c4d3e2f")
ORIGINAL_ID_KEY = "_vmkit_source_id"  # the source id, when the target id differs
ID_KIND_KEY = "_vmkit_id_kind"  # "uint" when an int id had to travel as a string
UINT_MAX = 2**64 - 1


class BadId(ValueError):
    """The id cannot be stored anywhere as given; the message is the reason."""


def id_kind(rid: Any) -> str:
    """'uint', 'uuid' or 'string'; BadId for anything no target can hold."""
    if isinstance(rid, bool) or not isinstance(rid, (int, str)):
        raise BadId(f"id of type {type(rid).__name__} (ids are strings or unsigned ints)")
    if isinstance(rid, int):
        if not 0 <= rid <= UINT_MAX:
            raise BadId(f"integer id {rid} is outside 0..2**64-1")
        return "uint"
    if rid == "":
        raise BadId("empty id")
    if len(rid) == 36 and rid.count("-") == 4:
        try:
            if str(uuid.UUID(rid)) == rid:  # canonical form only: "ABC..." is another string
                return "uuid"
        except ValueError:
            pass
    return "string"


def ints_collide_with_strings(source_kinds: Iterable[str], accepted: frozenset[str]) -> bool:
    """True when int ids written as decimal text could meet string ids with the same digits:
    the source holds both kinds and the target takes strings but not ints."""
    kinds = set(source_kinds)
    return {"uint", "string"} <= kinds and "uint" not in accepted and "string" in accepted


def to_target_id(
    rid: RecordId, accepted: frozenset[str], scope: str = "", uint_ids: str = "decimal"
) -> tuple[RecordId, dict[str, Any]]:
    """The id to write and the metadata that keeps the original, for a target accepting
    ``accepted`` kinds. Pure and deterministic.

    ``scope`` is a source namespace folded into a target without namespaces: the same id may
    live in several namespaces, so the target id is derived from both. ``uint_ids`` is how an
    int travels to a target taking strings but not ints: "decimal" text or "uuid5".
    """
    kind = id_kind(rid)
    if scope:
        key = f"{scope}\x1f{_key(rid)}"
        if "uuid" in accepted:
            return str(uuid.uuid5(VMKIT_NAMESPACE, key)), _original(rid)
        return key, _original(rid)
    if kind in accepted or (kind == "uuid" and "string" in accepted):
        return rid, {}
    if kind == "uint" and "string" in accepted and uint_ids == "decimal":
        return str(rid), {ID_KIND_KEY: "uint"}
    if kind == "uint" and "string" in accepted:  # uuid5 text: a string the target takes
        return str(uuid.uuid5(VMKIT_NAMESPACE, _key(rid))), _original(rid)
    if "uuid" in accepted:
        return str(uuid.uuid5(VMKIT_NAMESPACE, _key(rid))), _original(rid)
    raise BadId(f"id kind '{kind}' is not accepted by the target ({', '.join(sorted(accepted))})")


def _original(rid: RecordId) -> dict[str, Any]:
    """The source id as metadata: always a string (typed targets need one type per field),
    with the kind kept for ints."""
    return {ORIGINAL_ID_KEY: str(rid), ID_KIND_KEY: "uint"} if isinstance(rid, int) else {ORIGINAL_ID_KEY: rid}


def _key(rid: RecordId) -> str:
    """uuid5 name for an id: the kind is part of it, so int 7 and string "7" stay apart."""
    return f"i:{rid}" if isinstance(rid, int) else f"s:{rid}"


def original_kind(metadata: dict[str, Any]) -> str | None:
    """The kind of id a record had before an earlier migration mapped it (kept in its
    metadata), or None when it carries no such trace."""
    original = metadata.get(ORIGINAL_ID_KEY)
    if original is None:
        return "uint" if metadata.get(ID_KIND_KEY) == "uint" else None
    if metadata.get(ID_KIND_KEY) == "uint" and isinstance(original, str) and original.isdigit():
        return "uint"
    try:
        return id_kind(original)
    except BadId:
        return None


def restore_source_id(rid: RecordId, metadata: dict[str, Any]) -> tuple[RecordId, dict[str, Any]]:
    """Undo ``to_target_id``: the id a record had before an earlier migration mapped it, and
    its metadata without the keys that kept it. ``to_target_id`` then maps that original for
    the next target, so a target id is always a function of the original id, whatever path
    the record took (a decimal "7" marked uint is the int 7, never the string "7")."""
    meta = metadata
    if ORIGINAL_ID_KEY in meta:
        original = meta[ORIGINAL_ID_KEY]
        if meta.get(ID_KIND_KEY) == "uint" and isinstance(original, str) and original.isdigit():
            original = int(original)
        try:
            id_kind(original)
        except BadId:
            return rid, meta
        meta = {k: v for k, v in meta.items() if k not in (ORIGINAL_ID_KEY, ID_KIND_KEY)}
        return original, meta
    if meta.get(ID_KIND_KEY) == "uint" and isinstance(rid, str) and rid.isdigit():
        meta = {k: v for k, v in meta.items() if k != ID_KIND_KEY}
        return int(rid), meta
    return rid, meta

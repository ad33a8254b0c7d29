"""The two data-plane reads that carry ids in a query string (fetch, list), sent so that the
service cannot misread them; and how a missing namespace is recognised.

The SDK (pinecone 10.2, ``pinecone/index/__init__.py``: ``Index.fetch`` and
``Index.list_paginated``) hands its ``params`` to httpx, which writes a space as ``+``:
``fetch(ids=["doc 1"], namespace="ns x")`` goes out as ``/vectors/fetch?ids=doc+1&namespace=ns+x``.
The service reads ``+`` in a query string as a literal plus (it did when an earlier SDK encoded
spaces that way, pinecone-io/python-sdk#372: "no results returned, even when vector exists"), so
such ids come back absent and a namespace or list prefix with a space names another one. A
``params`` given as a string or ``httpx.QueryParams`` is re-encoded by httpx the same way, so the
SDK's own route cannot be made to send ``%20``.

vmkit therefore writes the query string itself, every value percent-encoded with
``quote(value, safe="")`` (space ``%20``, ``+`` ``%2B``, ``%`` ``%25``, ``&`` ``%26``, ``#``
``%23``), and sends it in the path through the SDK's own HTTP client (``Index._http.get``):
httpx sends a query written into the path as it is, and the SDK's headers, retries, timeouts
and error decoding still apply; the answer is decoded by the SDK's own adapter
(``Index._adapter``), and the SDK's own checks of ids and prefixes run first. Should a later SDK
lose those attributes, its public methods are used for values without a space (which they
encode soundly), and a value with one raises TerminalError rather than read the wrong record.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from vmkit.core.errors import TerminalError

log = logging.getLogger("vmkit.connectors.pinecone.connector")


def encode_query(pairs: Sequence[tuple[str, str]]) -> str:
    """``k=v&k=v`` with every key and value percent-encoded (a space as ``%20``, never ``+``)."""
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)


def encoded_len(value: str) -> int:
    """Bytes ``value`` takes in a query string as ``encode_query`` writes it."""
    return len(quote(value, safe=""))


def fetch_vectors(index: Any, ids: list[str], namespace: str) -> Any:
    """``index.fetch(ids=ids, namespace=namespace)`` (the SDK's FetchResponse), with ids and
    namespace percent-encoded as the service reads them."""
    http, adapter = _seam(index)
    if http is None:
        _refuse_space("fetch", [*ids, namespace])
        return index.fetch(ids=ids, namespace=namespace)
    _check("require_valid_vector_ids", "ids", ids)
    pairs = [("ids", rid) for rid in ids] + ([("namespace", namespace)] if namespace else [])
    response = http.get("/vectors/fetch?" + encode_query(pairs))
    return adapter.to_fetch_response(response.content)


def list_page(index: Any, namespace: str, prefix: str | None, limit: int,
              token: str | None) -> Any:
    """``index.list_paginated(...)`` (the SDK's ListResponse), percent-encoded likewise."""
    http, adapter = _seam(index)
    if http is None:
        _refuse_space("list", [namespace, prefix or ""])
        return index.list_paginated(namespace=namespace, prefix=prefix, limit=limit,
                                    pagination_token=token)
    if prefix is not None:
        _check("require_valid_id_prefix", "prefix", prefix)
    _check("require_valid_list_limit", "limit", limit)
    pairs = [("namespace", namespace)]
    if prefix is not None:
        pairs.append(("prefix", prefix))
    pairs.append(("limit", str(limit)))
    if token is not None:
        pairs.append(("paginationToken", token))
    response = http.get("/vectors/list?" + encode_query(pairs))
    return adapter.to_list_response(response.content)


def namespace_missing(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised from) is the service's answer for a namespace
    that does not exist: 404 ``{"code": 5, "message": "Namespace not found"}``. That is an
    empty namespace to a read or a delete, not a failure. A 404 for anything else (the
    index) is not this."""
    cause: BaseException | None = exc
    while cause is not None:
        status = getattr(cause, "status_code", None)
        body = getattr(cause, "body", None)
        if status == 404 and isinstance(body, dict):
            message = str(body.get("message") or "")
            return body.get("code") == 5 and "namespace" in message.lower()
        cause = cause.__cause__
    return False


def _seam(index: Any) -> tuple[Any, Any]:
    http, adapter = getattr(index, "_http", None), getattr(index, "_adapter", None)
    if callable(getattr(http, "get", None)) and callable(getattr(adapter, "to_fetch_response", None)) \
            and callable(getattr(adapter, "to_list_response", None)):
        return http, adapter
    return None, None


def _refuse_space(op: str, values: list[str]) -> None:
    if any(" " in v for v in values):
        raise TerminalError(
            f"this pinecone SDK has no way for vmkit to send a {op} of an id or namespace with a "
            "space so that the service reads it (the SDK writes a space as '+', which the "
            "service reads as a plus): install pinecone 10.x"
        )


def _check(name: str, param: str, value: Any) -> None:
    """The SDK's own check of a value before it sends it (a PineconeValueError, which the
    connector's error mapping makes terminal), if the SDK still has it."""
    try:
        from pinecone._internal import validation
    except ImportError:  # pragma: no cover - a future SDK layout
        return
    check = getattr(validation, name, None)
    if check is not None:
        check(param, value)

"""The Pinecone SDK's msgspec types are prepared before vmkit's threads decode with them:
msgspec builds a type's decoding information on its first decode, and threads doing that at
once can crash the interpreter."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import msgspec
import pytest
from emulators.pinecone_emulator import PineconeEmulator

from vmkit.connectors import connect
from vmkit.connectors.pinecone import msgspec_types

pytest.importorskip("pinecone")

# Sixteen threads decode a list page for the first time at once, the GIL handed over every
# 0.5 ms: unprepared, 4 of 20 to 17 of 30 such processes crashed (msgspec 0.22).
FIRST_DECODES = """
import importlib.util, sys, threading
sys.setswitchinterval(0.0005)
import msgspec
from pinecone.models.vectors.responses import ListResponse
spec = importlib.util.spec_from_file_location("msgspec_types", sys.argv[1])  # not all of vmkit
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
assert module.prepare_struct_types("pinecone") > 10
page = b'{"vectors":[' + b",".join(b'{"id":"doc-%d"}' % i for i in range(100)) + b'],"pagination":{"next":"t"}}'
go = threading.Event()
def decode():
    go.wait()
    for _ in range(20):
        assert len(msgspec.json.decode(page, type=ListResponse).vectors) == 100
threads = [threading.Thread(target=decode) for _ in range(16)]
for t in threads:
    t.start()
go.set()
for t in threads:
    t.join()
"""


def _built(monkeypatch) -> list[type]:
    built: list[type] = []
    decoder = msgspec.json.Decoder

    def recording(cls, *args, **kwargs):
        built.append(cls)
        return decoder(cls, *args, **kwargs)

    monkeypatch.setattr(msgspec.json, "Decoder", recording)
    monkeypatch.setattr(msgspec_types, "_prepared", set())
    return built


def test_every_struct_type_of_the_sdk_is_prepared_once(monkeypatch):
    from pinecone.models.vectors.responses import FetchResponse, ListResponse, QueryResponse

    built = _built(monkeypatch)
    count = msgspec_types.prepare_struct_types("pinecone")
    assert 10 < count <= len(built)
    assert {ListResponse, FetchResponse, QueryResponse} <= set(built)
    assert all(cls.__module__.startswith("pinecone.") for cls in built)
    assert msgspec_types.prepare_struct_types("pinecone") == 0  # once a process


def test_the_connector_prepares_them_before_its_threads_use_the_sdk(pinecone_emu: PineconeEmulator, monkeypatch):
    from pinecone.models.vectors.responses import ListResponse

    pinecone_emu.create_index("src", 4, "cosine")
    built = _built(monkeypatch)
    conn = connect("pinecone://src")
    with ThreadPoolExecutor(4) as pool:  # the data plane asked for by several threads at once
        indexes = set(pool.map(lambda _: conn.data_plane(), range(4)))
    assert len(indexes) == 1 and ListResponse in built
    conn.close()


def test_prepared_types_are_decoded_by_many_threads_at_once_safely():
    for _ in range(20):
        run = subprocess.run([sys.executable, "-c", FIRST_DECODES, msgspec_types.__file__],
                             capture_output=True, text=True)
        assert run.returncode == 0, run.stderr

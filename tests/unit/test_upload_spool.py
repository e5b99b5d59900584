"""The NDJSON upload's spool gives back exactly the chunks it was given, in order, in memory
or spilled to a file, with or without per-item routing keys."""

import pytest

from ingest_api import upload


@pytest.mark.parametrize("in_memory_bytes", [1 << 20, 64])  # stays in memory / spills
@pytest.mark.parametrize("keyed", [False, True])
def test_the_spool_gives_back_every_item_in_order(monkeypatch, in_memory_bytes, keyed):
    monkeypatch.setattr(upload, "SPOOL_IN_MEMORY", in_memory_bytes)
    payloads = [b'{"device_id":"d\\t%d","label":"a\\nb"}' % n for n in range(23)]
    keys = [f'key\t"{n}"\n' for n in range(23)] if keyed else None
    spool = upload.Spool()
    try:
        for start in range(0, 23, 5):  # added in chunks of 5
            part = keys[start : start + 5] if keys is not None else None
            spool.add((payloads[start : start + 5], part))
        chunks = list(spool.chunks(7))  # read back in chunks of 7
    finally:
        spool.close()
    assert [len(p) for p, _ in chunks] == [7, 7, 7, 2]
    assert [p for chunk, _ in chunks for p in chunk] == payloads
    if keys is None:
        assert all(k is None for _, k in chunks)
    else:
        assert [k for _, chunk_keys in chunks for k in chunk_keys or []] == keys

"""core.io's JSON-lines appends: whole lines always, an fsync only where asked (durable, or sync_file)."""

from __future__ import annotations

import json
import os

from rmteach.core import io


def test_append_jsonl_fsyncs_only_when_durable_and_sync_file_does_later(tmp_path, monkeypatch):
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    path = tmp_path / "metrics.jsonl"
    io.append_jsonl(path, {"step": 1, "x": 0.5})
    assert len(synced) == 1
    io.append_jsonl(path, {"step": 2}, durable=False)
    assert len(synced) == 1  # appended, not yet synced
    assert [json.loads(line) for line in path.read_text().splitlines()] == [{"step": 1, "x": 0.5}, {"step": 2}]
    io.sync_file(path)
    assert len(synced) == 2
    io.sync_file(tmp_path / "absent.jsonl")  # nothing to sync: no error, no fsync
    assert len(synced) == 2

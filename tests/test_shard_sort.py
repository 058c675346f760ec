"""The shard writer's bounded-memory sort: exactly sorted(), spilling beyond the buffer."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest

from pipelines import shard_sort


def _items(n=300, seed=0):
    rng = np.random.default_rng(seed)
    keys = [f"S{rng.integers(0, 5)}\x00seq é\x00{rng.integers(0, 50):012d}" for _ in range(n)]
    return [(k, rng.bytes(int(rng.integers(0, 40)))) for k in keys]


def _tracked_mkdtemp(monkeypatch):
    made = []
    real = tempfile.mkdtemp

    def mkdtemp(*args, **kwargs):
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(shard_sort.tempfile, "mkdtemp", mkdtemp)
    return made


@pytest.mark.parametrize("buffer_bytes", [1, 500, 5000, 1 << 30])
def test_sorted_items_equals_sorted(monkeypatch, buffer_bytes):
    made = _tracked_mkdtemp(monkeypatch)
    items = _items()
    with shard_sort.sorted_items(iter(items), buffer_bytes) as ordered:
        got = list(ordered)
        if buffer_bytes < 1 << 30:
            # It really spilled: one run file per full buffer (a run holds >= buffer_bytes
            # and < buffer_bytes + one item).
            (directory,) = made
            sizes = [len(k.encode()) + len(v) for k, v in items]
            runs = len(os.listdir(directory))
            most = min(len(items), sum(sizes) // buffer_bytes)
            assert sum(sizes) // (buffer_bytes + max(sizes)) <= runs <= most and runs > 0
    assert got == sorted(items)
    if buffer_bytes >= 1 << 30:
        assert made == []  # small shards never touch the disk
    for directory in made:
        assert not os.path.exists(directory)  # removed afterwards


def test_abandoned_iteration_removes_the_runs(monkeypatch):
    made = _tracked_mkdtemp(monkeypatch)
    with shard_sort.sorted_items(_items(), 100) as ordered:
        first = next(ordered)
    assert first == min(_items())
    assert made and not os.path.exists(made[0])


def test_empty_and_bad_buffer():
    with shard_sort.sorted_items([], 10) as ordered:
        assert list(ordered) == []
    with (
        pytest.raises(ValueError, match="buffer_bytes must be >= 1"),
        shard_sort.sorted_items([], 0),
    ):
        pass


def test_failure_while_spilling_or_writing_removes_the_runs(monkeypatch):
    made = _tracked_mkdtemp(monkeypatch)

    def failing_source():
        yield from _items(100)
        raise OSError("worker lost its input")

    # The input fails after runs were spilled.
    with (
        pytest.raises(OSError, match="worker lost its input"),
        shard_sort.sorted_items(failing_source(), 100),
    ):
        pass
    assert made and not os.path.exists(made[0])
    # The consumer (the TFRecord writer) fails halfway through the merge.
    with (
        pytest.raises(RuntimeError, match="disk full"),
        shard_sort.sorted_items(_items(), 100) as ordered,
    ):
        next(ordered)
        assert os.listdir(made[1])  # runs on disk while merging
        raise RuntimeError("disk full")
    assert not os.path.exists(made[1])

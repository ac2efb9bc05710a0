"""The engine-independent logic of the GPU device: graph sizes, padding, stream assignment,
device-gather copy plans, configuration checks, which GPU is current. (The CUDA path itself:
tests/gpu/.)

Importing gpu_device here, where cuda-bindings is not installed, also shows it loads CUDA lazily.
"""

from __future__ import annotations

import threading
from contextlib import ExitStack

import numpy as np
import pytest

from backends.dell_trt.gpu_device import (
    SAMPLE_BYTES,
    GpuDevice,
    GpuDeviceConfig,
    bind_thread,
    default_graph_sizes,
    gather_copies,
    graph_size_for,
    inference_stream_for,
    row_runs,
)


def test_default_graph_sizes_are_dense_then_powers_of_two_then_capacity() -> None:
    assert default_graph_sizes(1) == (1,)
    assert default_graph_sizes(8) == (1, 2, 3, 4, 5, 6, 7, 8)
    sizes = default_graph_sizes(276)
    assert sizes[:64] == tuple(range(1, 65))
    assert sizes[64:] == (128, 256, 276)
    assert default_graph_sizes(2048)[64:] == (128, 256, 512, 1024, 2048)
    assert default_graph_sizes(100, dense_limit=4) == (1, 2, 3, 4, 8, 16, 32, 64, 100)


@pytest.mark.parametrize(
    ("batch", "expected"),
    [
        (1, 1),
        (63, 63),
        (64, 64),
        (65, 128),
        (128, 128),
        (129, 256),
        (256, 256),
        (257, 276),
        (276, 276),
    ],
)
def test_a_batch_runs_the_smallest_captured_size_that_holds_it(batch: int, expected: int) -> None:
    assert graph_size_for(batch, default_graph_sizes(276)) == expected


def test_no_graph_when_none_is_large_enough() -> None:
    assert graph_size_for(9, (1, 2, 4, 8)) is None
    assert graph_size_for(3, ()) is None


def test_slots_take_inference_streams_round_robin() -> None:
    assert [inference_stream_for(slot, 2) for slot in range(5)] == [0, 1, 0, 1, 0]
    assert [inference_stream_for(slot, 1) for slot in range(3)] == [0, 0, 0]
    # Every stream gets a slot and the counts differ by at most one.
    counts = np.bincount([inference_stream_for(slot, 3) for slot in range(7)])
    assert counts.tolist() == [3, 2, 2]


def test_row_runs_merge_consecutive_rows() -> None:
    assert row_runs([]) == []
    assert row_runs([5]) == [(0, 5, 1)]
    assert row_runs([3, 4, 5, 9, 10, 2]) == [(0, 3, 3), (3, 9, 2), (5, 2, 1)]
    assert row_runs(np.array([7, 6, 5])) == [(0, 7, 1), (1, 6, 1), (2, 5, 1)]


def test_gather_copies_reproduce_np_take() -> None:
    # Apply the copy plan to host memory and compare with the host gather.
    rng = np.random.default_rng(0)
    row_bytes = 16
    source = rng.integers(-128, 128, size=(32, row_bytes), dtype=np.int8)
    rows = np.array([4, 5, 6, 0, 31, 30, 12, 13], dtype=np.int64)
    target = np.zeros((len(rows), row_bytes), np.int8)
    dsts, srcs, sizes = gather_copies(rows, 1000, 5000, row_bytes)
    flat_source, flat_target = source.reshape(-1), target.reshape(-1)
    for dst, src, size in zip(dsts, srcs, sizes, strict=True):
        flat_target[dst - 1000 : dst - 1000 + size] = flat_source[src - 5000 : src - 5000 + size]
    np.testing.assert_array_equal(target, np.take(source, rows, axis=0))
    assert len(dsts) == 5  # [4,5,6] and [12,13] merged
    assert SAMPLE_BYTES == 150_528


def test_config_checks() -> None:
    config = GpuDeviceConfig(batch_size=64, copy_streams=4, inference_streams=2, use_graphs=True)
    assert config.captured_sizes() == tuple(range(1, 65))
    assert GpuDeviceConfig(batch_size=64).captured_sizes() == ()
    explicit = GpuDeviceConfig(batch_size=64, use_graphs=True, graph_sizes=(64, 8, 8, 1))
    assert explicit.captured_sizes() == (1, 8, 64)
    # the full batch is always captured: a batch above the largest named size runs in a graph
    assert GpuDeviceConfig(batch_size=64, use_graphs=True, graph_sizes=(8,)).captured_sizes() == (
        8,
        64,
    )
    with pytest.raises(ValueError, match="inference_streams"):
        GpuDeviceConfig(copy_streams=1, inference_streams=2)
    with pytest.raises(ValueError, match="graph_sizes"):
        GpuDeviceConfig(batch_size=8, use_graphs=True, graph_sizes=(16,))
    with pytest.raises(ValueError, match="batch_size"):
        GpuDeviceConfig(batch_size=0)
    with pytest.raises(ValueError, match="gather"):
        GpuDeviceConfig(gather="kernel")


class RecordingRuntime:
    """The one cuda_rt call bind_thread makes, recorded: the current device per thread."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.current = -1

    def set_device(self, device: int) -> None:
        self.calls.append(device)
        self.current = device


def test_bind_thread_switches_once_unless_forced() -> None:
    rt = RecordingRuntime()

    def on_a_new_thread() -> None:  # the record is per thread, as CUDA's current device is
        bind_thread(rt, 3)
        bind_thread(rt, 3)
        bind_thread(rt, 3, force=True)
        bind_thread(rt, 4)

    thread = threading.Thread(target=on_a_new_thread)
    thread.start()
    thread.join()
    assert rt.calls == [3, 3, 4]


def test_close_makes_its_own_gpu_current_before_releasing() -> None:
    """Several GPUs are opened and closed on one thread: each must be torn down as current."""
    rt = RecordingRuntime()
    released_on: list[int] = []
    devices = []
    for index in (0, 1):
        device = GpuDevice.__new__(GpuDevice)  # only what close() touches
        device.rt, device.config = rt, GpuDeviceConfig(device=index)
        device._stack = ExitStack()
        device._stack.callback(lambda: released_on.append(rt.current))
        devices.append(device)
    bind_thread(rt, 1)  # the last GPU opened is current
    for device in devices:
        device.close()
    assert released_on == [0, 1]

"""The engine-independent logic of the GPU device: graph sizes, padding, the batch sizes an
engine check feeds, stream assignment, device-gather copy plans, configuration checks (and the
one the container entry point builds from the settings), which GPU is current. (The CUDA path
itself: tests/gpu/.)

Importing gpu_device here, where cuda-bindings is not installed, also shows it loads CUDA lazily.
"""

from __future__ import annotations

import itertools
import threading
from contextlib import ExitStack

import numpy as np
import pytest

from backends.dell_trt.gpu_device import (
    MAX_PADDING,
    SAMPLE_BYTES,
    GpuDevice,
    GpuDeviceConfig,
    bind_thread,
    check_batch_sizes,
    default_graph_sizes,
    gather_copies,
    graph_size_for,
    inference_stream_for,
    row_runs,
)

CAPACITIES = (1, 2, 7, 8, 64, 65, 128, 255, 256, 276, 1024, 2048)


@pytest.mark.parametrize("capacity", CAPACITIES)
def test_padding_wastes_at_most_15_percent_at_any_batch(capacity: int) -> None:
    sizes = default_graph_sizes(capacity)
    assert MAX_PADDING == 1.15
    assert sizes[0] == 1
    assert sizes[-1] == capacity
    assert list(sizes) == sorted(set(sizes))
    for n in range(1, capacity + 1):
        size = graph_size_for(n, sizes)
        assert size is not None
        assert n <= size
        assert size / n <= 1.15, (n, size)


@pytest.mark.parametrize("capacity", CAPACITIES)
def test_graph_sizes_are_as_few_as_the_bound_allows(capacity: int) -> None:
    """Each next size is the largest that keeps its smallest batch within 15 %: one more sample
    would break the bound (so no rule with fewer graphs exists), unless it is the capacity."""
    sizes = default_graph_sizes(capacity)
    for previous, size in itertools.pairwise(sizes):
        assert size / (previous + 1) <= 1.15
        assert size == capacity or (size + 1) / (previous + 1) > 1.15


def test_graph_sizes_dense_while_one_sample_of_padding_costs_more() -> None:
    assert default_graph_sizes(1) == (1,)
    assert default_graph_sizes(8) == (1, 2, 3, 4, 5, 6, 8)
    assert default_graph_sizes(64) == (
        (1, 2, 3, 4, 5, 6, 8, 10, 12, 14, 17, 20, 24, 28, 33, 39, 46, 54, 63, 64)
    )
    # 2048 (the published Offline batch): 44 graphs, where every size to 64 and powers of two
    # made 69 and ran a batch of 129 as 256.
    assert len(default_graph_sizes(2048)) == 44
    assert len(default_graph_sizes(256)) == 29
    assert default_graph_sizes(2048)[-3:] == (1667, 1918, 2048)
    # Looser bounds take fewer graphs; no padding at all is every size.
    assert default_graph_sizes(100, max_padding=2.0) == (1, 4, 10, 22, 46, 94, 100)
    assert default_graph_sizes(10, max_padding=1.0) == tuple(range(1, 11))
    with pytest.raises(ValueError, match="capacity"):
        default_graph_sizes(0)
    with pytest.raises(ValueError, match="max_padding"):
        default_graph_sizes(8, max_padding=0.9)


@pytest.mark.parametrize(
    ("batch", "expected"),
    [
        (1, 1),
        (6, 6),
        (7, 8),
        (63, 63),
        (64, 73),
        (65, 73),
        (129, 131),
        (256, 267),
        (257, 267),
        (276, 276),
    ],
)
def test_a_batch_runs_the_smallest_captured_size_that_holds_it(batch: int, expected: int) -> None:
    assert graph_size_for(batch, default_graph_sizes(276)) == expected


def test_no_graph_when_none_is_large_enough() -> None:
    assert graph_size_for(9, (1, 2, 4, 8)) is None
    assert graph_size_for(3, ()) is None


@pytest.mark.parametrize(
    ("capacity", "graphs", "expected"),
    [
        # the default graphs of the published batches: the first padded run is 7 (as 8)
        (2048, default_graph_sizes(2048), (1, 7, 2039, 2048)),
        (256, default_graph_sizes(256), (1, 7, 251, 256)),
        (8, default_graph_sizes(8), (1, 7, 8)),
        # no graphs: 1, the largest prime, the full batch
        (8, (), (1, 7, 8)),
        (2048, (), (1, 2039, 2048)),
        # the largest prime is captured: the next one runs padded
        (16, (4, 13, 16), (1, 5, 11, 16)),
        # every prime ≤ capacity captured, every size captured: nothing runs padded
        (7, tuple(range(1, 8)), (1, 7)),
        (1, (1,), (1,)),
        (2, (1, 2), (1, 2)),
        (1, (), (1,)),
        # sizes outside 1..capacity are no graphs of this slot
        (10, (0, 4, 10, 12), (1, 5, 7, 10)),
    ],
)
def test_check_batch_sizes(
    capacity: int, graphs: tuple[int, ...], expected: tuple[int, ...]
) -> None:
    assert check_batch_sizes(capacity, graphs) == expected


@pytest.mark.parametrize("capacity", CAPACITIES)
def test_check_batch_sizes_cover_the_cases(capacity: int) -> None:
    graphs = default_graph_sizes(capacity)
    sizes = check_batch_sizes(capacity, graphs)
    assert list(sizes) == sorted(set(sizes))
    assert all(1 <= size <= capacity for size in sizes)
    assert sizes[0] == 1
    assert sizes[-1] == capacity
    primes = [n for n in range(2, capacity + 1) if all(n % d for d in range(2, n))]
    if primes:
        assert any(size in primes for size in sizes)
    padded = [n for n in range(1, capacity + 1) if n not in graphs]
    if padded:  # the smallest batch that runs in a larger graph is fed
        assert padded[0] in sizes
    with pytest.raises(ValueError, match="capacity"):
        check_batch_sizes(0, ())


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
    assert config.captured_sizes() == default_graph_sizes(64)
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


def test_the_entry_point_passes_every_device_setting() -> None:
    """`_gpu_config` turns a scenario's settings into the device configuration, blocking sync
    included (GPU profiles turn it on; `--set blocking_sync=false` turns it off)."""
    from backends.dell_trt.__main__ import _gpu_config
    from contract.dell_trt import settings as S

    server = S.select([S.GpuFacts("NVIDIA H100 80GB HBM3", 81_559)], cores=16).profile.scenarios
    config = _gpu_config(server["Server"], 1)
    assert config == GpuDeviceConfig(
        device=1,
        batch_size=256,
        copy_streams=2,
        inference_streams=1,
        use_graphs=True,
        start_from_device=False,
        blocking_sync=True,
    )
    spinning = S.apply_overrides(server, ["Server.blocking_sync=false", "start_from_device=1"])
    config = _gpu_config(spinning["Server"], 0)
    assert (config.blocking_sync, config.start_from_device) == (False, True)
    assert _gpu_config(spinning["Offline"], 0).blocking_sync is True

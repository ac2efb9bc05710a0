"""gpu_device's CUDA machinery on a real GPU, driven by the CuPy stand-in runner (no TensorRT):
gathers from pinned staging, H2D/D2H on copy streams, event hand-offs to shared inference
streams, CUDA graphs with padding, device-resident samples (batched and per-run gathers),
reloads, error surfacing, and real LoadGen driving the production LWIS harness (fast issue
path, Server coalescing).

Written without a GPU: these tests were never run where they were written. They skip unless
CuPy, cuda-bindings and a CUDA device are present (tests/gpu/conftest.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from backends.dell_trt.gpu_device import GpuDevice, GpuDeviceConfig
from contract.resnet50 import SAMPLE_SHAPE
from tests.gpu.standin import CupyProjectionRunner, reference_labels

SAMPLES = 96


class LoadedSamples:
    """The Int8Samples contract: `array` holds the loaded samples, `rows` maps QSL indices."""

    def __init__(self, dataset: np.ndarray) -> None:
        self.dataset = dataset
        self.array = np.empty((0, *SAMPLE_SHAPE), np.int8)
        self._row: dict[int, int] = {}

    def load(self, indices: Sequence[int]) -> None:
        self.array = np.ascontiguousarray(self.dataset[list(indices)])
        self._row = {int(index): row for row, index in enumerate(indices)}

    def rows(self, indices: Sequence[int]) -> np.ndarray:
        return np.fromiter((self._row[int(i)] for i in indices), np.int64, len(indices))


def make_dataset(seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(-128, 128, size=(SAMPLES, *SAMPLE_SHAPE), dtype=np.int8)


CONFIGS = [
    pytest.param({"batch_size": 8, "copy_streams": 2, "inference_streams": 1}, id="plain"),
    pytest.param(
        {"batch_size": 8, "copy_streams": 2, "inference_streams": 1, "gather": "loop"},
        id="pinned-per-run-gather",
    ),
    pytest.param(
        {"batch_size": 8, "copy_streams": 3, "inference_streams": 2, "use_graphs": True},
        id="graphs-every-size",
    ),
    pytest.param(
        {
            "batch_size": 16,
            "copy_streams": 2,
            "inference_streams": 2,
            "use_graphs": True,
            "graph_sizes": (4, 16),
            "start_from_device": True,
            "gather": "batch",
        },
        id="graphs-padded-device-batch-gather",
    ),
    pytest.param(
        {
            "batch_size": 8,
            "copy_streams": 2,
            "inference_streams": 1,
            "start_from_device": True,
            "gather": "loop",
            "blocking_sync": True,
        },
        id="device-per-run-gather-blocking-sync",
    ),
]


def _round(
    device: GpuDevice,
    loaded: np.ndarray,
    expected: np.ndarray,
    rng: np.random.Generator,
    contiguous: bool,
) -> int:
    """Every slot busy at once with a random batch; check each answer. Returns batches run."""
    batches: list[tuple[Any, np.ndarray]] = []
    for slot in device.slots:
        size = int(rng.integers(1, slot.capacity + 1))
        if contiguous:  # consecutive rows: the device gather merges them into one copy
            start = int(rng.integers(0, len(loaded) - size + 1))
            indices = loaded[start : start + size]
        else:
            indices = rng.choice(loaded, size, replace=False)
        slot.submit(indices.tolist())
        batches.append((slot, indices))
    for slot, indices in batches:
        got = slot.wait()
        assert got.dtype == np.int32
        assert got.shape == (len(indices),)
        np.testing.assert_array_equal(got, expected[indices])
    return len(batches)


@pytest.mark.parametrize("options", CONFIGS)
def test_slots_return_the_reference_labels(gpu_index: int, options: dict[str, Any]) -> None:
    config = GpuDeviceConfig(device=gpu_index, **options)
    dataset = make_dataset()
    rng = np.random.default_rng(7)
    store = LoadedSamples(dataset)
    loaded = rng.permutation(SAMPLES)[:64]
    store.load(loaded)
    runner = CupyProjectionRunner(config.copy_streams, config.batch_size, gpu_index)
    expected = reference_labels(dataset, runner.weights)
    assert len(set(expected.tolist())) > 4  # the labels actually discriminate samples
    device = GpuDevice(runner, store, config)
    try:
        assert device.name.startswith(f"gpu{gpu_index} ")
        device.samples_loaded()
        launches_after_warm_up = runner.launches
        batches = 0
        for round_index in range(8):
            batches += _round(device, loaded, expected, rng, contiguous=round_index % 2 == 1)
        # A new load replaces the samples (on the device too, with start_from_device).
        loaded = rng.permutation(SAMPLES)[:48]
        store.load(loaded)
        device.samples_loaded()
        for round_index in range(4):
            batches += _round(device, loaded, expected, rng, contiguous=round_index % 2 == 1)
        if config.use_graphs:  # every batch size has a graph: no direct enqueue after warm-up
            assert runner.launches == launches_after_warm_up
        else:
            assert runner.launches == launches_after_warm_up + batches
    finally:
        device.close()


def test_a_bad_batch_fails_in_wait_and_the_slot_recovers(gpu_index: int) -> None:
    dataset = make_dataset()
    store = LoadedSamples(dataset)
    store.load(range(SAMPLES))
    runner = CupyProjectionRunner(1, 4, gpu_index)
    expected = reference_labels(dataset, runner.weights)
    device = GpuDevice(runner, store, GpuDeviceConfig(device=gpu_index, batch_size=4))
    try:
        device.slots[0].submit([0])  # nothing staged yet: the failure surfaces in wait()
        with pytest.raises(RuntimeError, match="samples_loaded"):
            device.slots[0].wait()
        device.samples_loaded()
        slot = device.slots[0]
        slot.submit([0, 1, 2, 3, 4])
        with pytest.raises(ValueError, match="capacity 4"):
            slot.wait()
        slot.submit([5, 9])
        np.testing.assert_array_equal(slot.wait(), expected[[5, 9]])
    finally:
        device.close()


LOADGEN_SCRIPT = """
import json, os, sys
from pathlib import Path
from backends.common.loadgen_driver import TestRequest, run_test
from backends.dell_trt.gpu_device import GpuDevice, GpuDeviceConfig
from backends.dell_trt.sut import LwisSUT, fail_process
from tests.gpu.standin import CupyProjectionRunner, reference_labels
from tests.gpu.test_gpu_device import SAMPLES, LoadedSamples, make_dataset

scenario, out, conf = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
options = json.loads(sys.argv[4])
native = None
if sys.argv[5] == "native":  # the library the smoke built (MLORCH_NATIVE_LOADGEN)
    from backends.common.native import NativeLoadGen

    native = NativeLoadGen()
mode, timeout_us = options.pop("mode"), options.pop("deque_timeout_us")
config = GpuDeviceConfig(**options)
dataset = make_dataset()
store = LoadedSamples(dataset)
runner = CupyProjectionRunner(config.copy_streams, config.batch_size, config.device)
expected = reference_labels(dataset, runner.weights)
device = GpuDevice(runner, store, config)


class Qsl:  # as the SUT container wraps Int8Samples: every load is staged again
    total_count = SAMPLES
    performance_count = 32  # accuracy mode then loads three sets in turn

    def load(self, indices):
        store.load(indices)
        device.samples_loaded()

    def unload(self, indices):
        pass


# The production harness: LoadGen's fast issue path straight into the batcher, the batcher
# thread submitting to the slots, the completion thread waiting on them (another thread).
try:
    run_test(
        TestRequest(scenario, mode, conf, out), Qsl(),
        lambda: LwisSUT([device], config.batch_size, timeout_us, fail_process, native=native),
        coalesce_server=True,
        native=native,
    )
finally:
    device.close()
print(json.dumps({"labels": expected.tolist()}))
"""


@pytest.mark.parametrize(
    ("scenario", "mode", "options"),
    [
        ("Offline", "AccuracyOnly", {"batch_size": 16, "copy_streams": 2, "inference_streams": 1,
                                     "use_graphs": True, "deque_timeout_us": 0}),
        ("Offline", "AccuracyOnly", {"batch_size": 16, "copy_streams": 2, "inference_streams": 1,
                                     "start_from_device": True, "deque_timeout_us": 0}),
        ("SingleStream", "AccuracyOnly", {"batch_size": 1, "copy_streams": 1,
                                          "inference_streams": 1, "use_graphs": True,
                                          "deque_timeout_us": 0}),
        ("Server", "AccuracyOnly", {"batch_size": 8, "copy_streams": 2, "inference_streams": 2,
                                    "use_graphs": True, "deque_timeout_us": 2000}),
        ("Server", "PerformanceOnly", {"batch_size": 8, "copy_streams": 2,
                                       "inference_streams": 2, "use_graphs": True,
                                       "deque_timeout_us": 2000}),
    ],
)  # fmt: skip
@pytest.mark.parametrize("path", ["fast", "native"])
def test_real_loadgen_drives_the_lwis_harness_on_the_device(
    gpu_index: int, tmp_path: Path, scenario: str, mode: str, options: dict[str, Any], path: str
) -> None:
    import os

    if path == "native" and not os.environ.get("MLORCH_NATIVE_LOADGEN"):
        pytest.skip("no native issue path built here (scripts/gpu-smoke.sh builds one)")
    from orchestrator.results.accuracy import score_accuracy_log
    from orchestrator.results.loadgen_log import result_from_logs

    conf = tmp_path / "user.conf"
    conf.write_text(
        "*.*.min_duration = 100\n*.*.min_query_count = 1\n"
        "*.Offline.target_qps = 1000\n*.SingleStream.target_latency = 5\n"
        "*.Server.target_qps = 2000\n*.Server.target_latency = 15\n"
    )
    out = tmp_path / "logs"
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(LOADGEN_SCRIPT),
            scenario,
            str(out),
            str(conf),
            json.dumps({**options, "device": gpu_index, "mode": mode}),
            path,
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    if mode == "PerformanceOnly":  # every query answered within the run; LoadGen's verdict
        parsed = result_from_logs(out, scenario, mode)
        assert parsed.errors == ()
        assert parsed.valid, parsed
        return
    labels = json.loads(result.stdout.strip().splitlines()[-1])["labels"]
    accuracy = score_accuracy_log(out / "mlperf_log_accuracy.json", labels, dtype="int32")
    assert accuracy.total == SAMPLES
    assert accuracy.good == SAMPLES

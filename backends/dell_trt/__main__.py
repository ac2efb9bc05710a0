"""Container entry point of the Dell/NVIDIA recipe:
`python -m backends.dell_trt prepare|synthetic|model|engines|run|throughput ...`.

- `prepare`, `synthetic`: the shared commands (backends.common.cli); the dataset is cached as
  INT8 linear NCHW.
- `model`: NVIDIA's graph changes, one calibration, the S8S8 (TensorRT) and U8S8 (CPU twin)
  Q/DQ models, and the FP32 agreement guard of the CPU model, into the host's models/<key>.
- `engines` (cuda): the TensorRT engines of the run's scenarios, built once per key into the
  engine cache, each guarded against the FP32 labels; one `mlorch-guard {json}` line per engine.
- `run`: one LoadGen test (one per process) through the LWIS harness, on the TensorRT engines
  (cuda) or on onnxruntime's CPU provider (cpu, the twin).
- `throughput`: the raw engine's samples/s at the scenario's batch, no LoadGen (benchmarks).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from contract.dell_trt.artifact import METHODS
from contract.dell_trt.recipe import CALIBRATION_METHOD
from contract.protocol import GUARD_PREFIX, THROUGHPUT_PREFIX, json_line


def _log(line: str) -> None:
    print(line, flush=True)


def _model(args: argparse.Namespace) -> int:
    """Prepare the recipe's models into --out (the host's models/<key> folder)."""
    from backends.dell_trt import quantize
    from contract.dell_trt import artifact, recipe
    from contract.layout import read_val_map, val_map_digest

    if args.calibration_list is not None:
        calibration = artifact.official_calibration_set(args.dataset, args.calibration_list)
    else:
        calibration = artifact.synthetic_calibration_set(args.dataset)
    entries = read_val_map(args.dataset, args.val_map)[: args.guard_samples]
    tag = recipe.guard_tag(val_map_digest(args.dataset, args.val_map), len(entries))
    prepared = quantize.prepare_model(
        args.model,
        args.dataset,
        args.out,
        calibration,
        entries,
        tag,
        method=args.method,
        min_agreement=args.min_agreement,
        log=_log,
    )
    _log(f"prepared model in {prepared.directory}")
    return 0


def _settings(path: Path, scenario: str) -> Any:
    from contract.dell_trt.settings import from_json

    return from_json(path.read_text(), scenario)


def _gpu_config(settings: Any, device: int) -> Any:
    from backends.dell_trt.gpu_device import GpuDeviceConfig

    return GpuDeviceConfig(
        device=device,
        batch_size=settings.batch_size,
        copy_streams=settings.copy_streams,
        inference_streams=settings.inference_streams,
        use_graphs=settings.use_graphs,
        start_from_device=settings.start_from_device,
        blocking_sync=settings.blocking_sync,
    )


def _builder(settings: Any) -> Any:
    from backends.dell_trt.engine_cache import BuilderOptions

    return BuilderOptions(optimization_level=settings.builder_optimization_level)


def _engines(args: argparse.Namespace) -> int:
    """Build (or find) the engine of each scenario on each visible GPU, and guard each one on
    the path the scenario's tests take: its device configuration (every execution context, its
    CUDA graphs, its staging), fed through the slots as the harness feeds them."""
    from backends.common.dataset import Int8Samples
    from backends.dell_trt import cuda_rt, guard
    from backends.dell_trt.gpu_device import check_batch_sizes
    from backends.dell_trt.trt_engine import open_gpu_device
    from contract.dell_trt import recipe
    from contract.dell_trt.artifact import ENCODINGS, guard_files

    onnx_path = args.artifacts / ENCODINGS[recipe.TRT_ENCODING].file
    _, labels_file = guard_files(args.artifacts, args.guard_tag)
    indices, reference = guard.load_reference(labels_file)
    store = Int8Samples(args.cache, args.count, args.count)
    store.load(indices.tolist())
    for device in range(cuda_rt.device_count()):
        guarded: set[Any] = set()
        for scenario in args.scenarios.split(","):
            settings = _settings(args.settings, scenario)
            config, builder = _gpu_config(settings, device), _builder(settings)
            if (config, builder) in guarded:
                continue
            guarded.add((config, builder))
            gpu = open_gpu_device(
                onnx_path, args.engines, store, config, builder,
                on_wait=lambda: _log("waiting for another build of the same engine"),
            )  # fmt: skip
            try:
                gpu.samples_loaded()
                labels = guard.slot_labels(gpu.slots, indices.tolist())
                facts = dict(gpu.facts)
                sizes = check_batch_sizes(config.batch_size, facts["graph_sizes"])
                batch_check = guard.batch_size_check(
                    gpu.slots[0], indices.tolist(), sizes, labels.tolist()
                )
            finally:
                gpu.close()
            result = guard.compare(labels, reference, args.min_agreement)
            record = {
                "engine": str(facts["engine_key"])[:16],
                "gpu": f"{device} {facts['gpu']}",
                "scenario": scenario,
                "batch_size": config.batch_size,
                "profiles": config.copy_streams,
                "graphs": len(facts["graph_sizes"]),
                "staging": facts["staging"],
                "batch_check": batch_check,
                "layer_precisions": facts.get("layer_precisions"),
                "encoding": recipe.TRT_ENCODING,
                **result.as_dict(),
            }
            _log(f"engine {record['engine']} ({scenario}, gpu {device}): {result.summary()}")
            print(json_line(GUARD_PREFIX, record), flush=True)
    return 0


class _StoreWithDevices:
    """The INT8 store as LoadGen's sample library; after each load/unload every GPU device
    stages the loaded samples again (pinned host memory, or device memory)."""

    def __init__(self, store: Any, devices: Sequence[Any]) -> None:
        self.store = store
        self.devices = devices
        self.total_count = store.total_count
        self.performance_count = store.performance_count

    def load(self, indices: list[int]) -> None:
        self.store.load(indices)
        for device in self.devices:
            device.samples_loaded()

    def unload(self, indices: list[int]) -> None:
        self.store.unload(indices)
        for device in self.devices:
            device.samples_loaded()


def _open_devices(args: argparse.Namespace, settings: Any, store: Any) -> list[Any]:
    """The engines this test runs on: one TensorRT device per GPU, or the CPU twin."""
    from contract.dell_trt import recipe
    from contract.dell_trt.artifact import ENCODINGS

    if args.device == "cuda":
        from backends.dell_trt import cuda_rt
        from backends.dell_trt.trt_engine import open_gpu_device

        count = cuda_rt.device_count()
        if count == 0:
            raise RuntimeError("--device cuda but no GPU is visible inside the container")
        onnx_path = args.artifacts / ENCODINGS[recipe.TRT_ENCODING].file
        devices: list[Any] = []
        try:  # a test only reads the engines the engines step built and guarded
            for index in range(count):
                config = _gpu_config(settings, index)
                devices.append(
                    open_gpu_device(
                        onnx_path, args.engines, store, config, _builder(settings), build=False
                    )
                )
        except BaseException:
            for opened in devices:  # the GPUs already set up are released, not leaked
                opened.close()
            raise
        return devices
    from backends.dell_trt.ort_engine import OrtCpuDevice

    device = OrtCpuDevice(
        args.artifacts / ENCODINGS[recipe.CPU_ENCODING].file,
        store,
        slots=settings.copy_streams,
        threads_per_slot=settings.threads_per_slot,
        capacity=settings.batch_size,
    )
    device.warm_up((1, settings.batch_size))
    return [device]


def _run(args: argparse.Namespace) -> int:
    from backends.common.dataset import Int8Samples
    from backends.common.loadgen_driver import TestRequest, run_test
    from backends.dell_trt.sut import LwisSUT, fail_process

    native, native_note = _native()
    settings = _settings(args.settings, args.scenario)
    store = Int8Samples(args.cache, args.count, args.performance_count)
    devices = _open_devices(args, settings, store)
    qsl: Any = _StoreWithDevices(store, devices) if args.device == "cuda" else store
    facts = {
        "backend": "dell-trt",
        "engine": "tensorrt" if args.device == "cuda" else "onnxruntime-cpu (twin)",
        "device": args.device,
        "devices": [getattr(device, "name", "?") for device in devices],
        "settings": json.loads(args.settings.read_text()),
        "device_facts": [getattr(device, "facts", {}) for device in devices],
        **({"native_unavailable": native_note} if native is None else {}),
    }
    _log(
        f"dell-trt SUT: {args.scenario}/{args.mode} on {facts['engine']}, "
        f"{len(devices)} device(s), batch {settings.batch_size}, "
        f"{settings.copy_streams} copy / {settings.inference_streams} inference stream(s), "
        f"graphs {'on' if settings.use_graphs else 'off'}, samples={store.total_count}; "
        + (
            f"native issue path (LoadGen {native.record.loadgen_version} in C++)"
            if native is not None
            else f"Python issue path ({native_note})"
        )
    )
    request = TestRequest(
        scenario=args.scenario,
        mode=args.mode,
        user_conf=args.user_conf,
        output_dir=args.output,
        audit_config=args.audit_config,
        sizing=args.sizing,
    )
    try:
        run_test(
            request,
            qsl,
            lambda complete=None: LwisSUT(
                devices,
                settings.batch_size,
                settings.deque_timeout_us,
                fail_process,
                samples_complete=complete,
                native=native,
            ),
            facts,
            coalesce_server=True,
            native=native,
        )
    finally:
        for device in devices:
            device.close()
    _log("LoadGen test finished")
    return 0


def _native() -> tuple[Any, str]:
    """The native LoadGen issue path if the image has it, else None and why not."""
    from backends.common.native import NativeLoadGen, NativeUnavailable

    try:
        return NativeLoadGen(), ""
    except NativeUnavailable as exc:
        return None, str(exc)


def _concurrently(work: Sequence[Callable[[], Any]]) -> list[Any]:
    """Run every callable on its own thread at the same time (all GPUs busy together, as in a
    LoadGen test); their results in order, or the first error."""
    from concurrent.futures import ThreadPoolExecutor

    if len(work) == 1:
        return [work[0]()]
    with ThreadPoolExecutor(max_workers=len(work)) as pool:
        futures = [pool.submit(item) for item in work]
        return [future.result() for future in futures]


def _throughput(args: argparse.Namespace) -> int:
    """Raw samples/s of the engine at the scenario's batch size (no LoadGen)."""
    from backends.common.dataset import Int8Samples
    from backends.dell_trt.throughput import raw_throughput

    settings = _settings(args.settings, args.scenario)
    store = Int8Samples(args.cache, args.count, args.count)
    indices = list(range(args.count))
    store.load(indices)
    devices = _open_devices(args, settings, store)
    try:
        for device in devices:
            if hasattr(device, "samples_loaded"):  # GPU devices gather from their staged copy
                device.samples_loaded()
        results = _concurrently(
            [
                functools.partial(
                    raw_throughput, device, indices, settings.batch_size, args.seconds
                )
                for device in devices
            ]
        )
    finally:
        for device in devices:
            device.close()
    record = {
        "samples_per_second": sum(r.samples_per_s for r in results),
        "batch": settings.batch_size,
        "devices": len(devices),
        "results": [
            {"samples": r.samples, "seconds": r.seconds, "slots": r.slots} for r in results
        ],
        "device_facts": [getattr(device, "facts", {}) for device in devices],
    }
    print(json_line(THROUGHPUT_PREFIX, record), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    from backends.common.cli import add_common_commands, add_test_commands

    parser = argparse.ArgumentParser(prog="python -m backends.dell_trt")
    sub = parser.add_subparsers(dest="command", required=True)
    commands = add_common_commands(sub)

    model = sub.add_parser("model", help="prepare the INT8 models and guard them against FP32")
    model.add_argument("--model", type=Path, required=True)
    model.add_argument("--dataset", type=Path, required=True)
    model.add_argument("--val-map", type=Path, default=None)
    model.add_argument("--count", type=int, required=True)
    model.add_argument("--out", type=Path, required=True)
    model.add_argument("--calibration-list", type=Path, default=None)
    model.add_argument("--guard-samples", type=int, required=True)
    model.add_argument("--min-agreement", type=float, default=None)
    model.add_argument("--method", choices=METHODS, default=CALIBRATION_METHOD)

    engines = sub.add_parser("engines", help="build and guard the TensorRT engines (cuda)")
    engines.add_argument("--artifacts", type=Path, required=True)
    engines.add_argument("--settings", type=Path, required=True)
    engines.add_argument("--cache", type=Path, required=True)
    engines.add_argument("--count", type=int, required=True)
    engines.add_argument("--engines", type=Path, required=True)
    engines.add_argument("--scenarios", required=True)
    engines.add_argument("--guard-tag", required=True)
    engines.add_argument("--min-agreement", type=float, default=None)

    def engine_arguments(command: argparse.ArgumentParser, loadgen: bool) -> None:
        command.add_argument("--artifacts", type=Path, required=True)
        command.add_argument("--settings", type=Path, required=True)
        command.add_argument("--engines", type=Path, default=None)
        if loadgen:
            command.add_argument("--model", type=Path, default=None)  # provenance only
        else:  # the raw engine runs with the settings of one scenario
            command.add_argument("--scenario", default="Offline")

    add_test_commands(sub, "raw engine throughput (benchmark baseline)", engine_arguments)

    args = parser.parse_args(argv)
    needs_engines = args.command in ("run", "throughput") and args.device == "cuda"
    if needs_engines and args.engines is None:
        parser.error("--device cuda needs --engines")
    commands.update(model=_model, engines=_engines, run=_run, throughput=_throughput)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # onnxruntime manages its own threads
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())

"""CPU twin engine benchmarks (prints figures and ratios; no assertions, no containers).

Raw samples/s on this host, no LoadGen, all in one process with the configurations interleaved
round by round (the host is shared: compare figures of one run only). Each case reports the
median and the best round (the least disturbed by other load), and samples per CPU-second of
this process (insensitive to other load; spinning threads count against it):

  reference   FP32 model, float input, the reference backend's `OnnxRuntimeModel` and threading
              (one session, one worker thread per core)
  u8s8-float  U8S8 Q/DQ of the rewritten model, float input, same threading
  u8s8-int8   U8S8 with the INT8 input, same threading
  twin ...    the same model through `OrtCpuDevice` (slots × threads, sessions, spinning,
              optimization level, batch), driven by `raw_throughput`

`--latency` measures one sample at a time instead (what bounds Server): percentiles of the
twin model on 2 threads with and without spinning and on 1 thread, the same weights encoded
as uint8 with zero point 128 (identical outputs, other kernels), and onnxruntime's raw u8s8 GEMM
rate on one thread (AMX when the CPU has it) for scale.

Usage: python benchmarks/twin_engine.py [--seconds 6] [--rounds 3] [--quick] [--latency]
Models come from the synthetic assets of the test cache (`MLORCH_TEST_CACHE`, generated when
missing); nothing here is a LoadGen result.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from backends.common.dataset import Int8Samples, PreprocessedImagenet
from backends.common.preprocess import prepare_cache
from backends.common.synthetic import load_existing, make_synthetic_assets
from backends.dell_trt import guard
from backends.dell_trt.graph import rewrite_file
from backends.dell_trt.ort_engine import OrtCpuDevice, int8_dot_product
from backends.dell_trt.quantize import calibrate, calibration_batches, emit
from backends.dell_trt.throughput import raw_throughput
from backends.reference.sut import OnnxRuntimeModel
from contract.dell_trt.artifact import synthetic_calibration_set
from contract.layout import read_val_map, synthetic_root
from contract.resnet50 import SAMPLE_SHAPE

CORES = os.cpu_count() or 1


Timed = tuple[int, float, float]  # samples, wall seconds, CPU seconds of this process


def timed(work: Callable[[], int]) -> Timed:
    wall, cpu = time.perf_counter(), time.process_time()
    samples = work()
    return samples, time.perf_counter() - wall, time.process_time() - cpu


@dataclass
class Case:
    label: str
    run: Callable[[float], Timed]
    figures: list[float] = field(default_factory=list)  # samples/s per round
    per_cpu_s: list[float] = field(default_factory=list)  # samples per CPU-second per round

    def measure(self, seconds: float) -> None:
        samples, wall, cpu = self.run(seconds)
        self.figures.append(samples / wall)
        self.per_cpu_s.append(samples / cpu)


def loop(predict: Callable[[np.ndarray, int], object], batch: np.ndarray):
    """The reference backend's raw loop: one worker per core calling predict on one batch."""

    def run(seconds: float) -> Timed:
        predict(batch, 0)  # warm-up
        return timed(lambda: threads(seconds))

    def threads(seconds: float) -> int:
        done = [0] * CORES
        deadline = time.perf_counter() + seconds

        def work(worker: int) -> None:
            while time.perf_counter() < deadline:
                predict(np.ascontiguousarray(batch), worker)
                done[worker] += len(batch)

        pool = [threading.Thread(target=work, args=(w,)) for w in range(CORES)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        return sum(done)

    return run


def session(path: Path):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda batch, worker: sess.run(None, {name: batch})


def twin(model: Path, store: Int8Samples, batch: int, **options: object):
    def run(seconds: float) -> Timed:
        device = OrtCpuDevice(model, store, capacity=batch, **options)  # type: ignore[arg-type]
        try:
            device.warm_up((batch,))
            indices = store.loaded.tolist()
            return timed(lambda: raw_throughput(device, indices, batch, seconds).samples)
        finally:
            device.close()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="only the step-by-step cases")
    parser.add_argument("--latency", action="store_true", help="one-sample latency instead")
    parser.add_argument("--runs", type=int, default=300, help="--latency: samples per case")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="twin-bench-") as work:
        bench(args, Path(work))


def bench(args: argparse.Namespace, work: Path) -> None:
    cache_root = Path(os.environ.get("MLORCH_TEST_CACHE", Path.home() / ".cache/mlorch-tests"))
    root = synthetic_root(cache_root, 64, 0)
    assets = load_existing(root) or make_synthetic_assets(root, 64, 0)
    count = len(read_val_map(assets.dataset))
    recipe = work / "recipe_fp32.onnx"
    rewrite_file(assets.model, recipe)
    paths = synthetic_calibration_set(assets.dataset).paths(assets.dataset)
    ranges = calibrate(recipe, calibration_batches(paths))
    u8s8, u8s8_float = work / "u8s8.onnx", work / "u8s8_float.onnx"
    emit(recipe, ranges, "u8s8", u8s8)
    emit(recipe, ranges, "u8s8", u8s8_float, int8_input=False)
    emit(recipe, ranges, "s8s8", work / "s8s8.onnx")
    if args.latency:
        latency(u8s8, work, args.runs)
        return
    samples = guard.GuardSamples.from_dataset(assets.dataset)
    fp32_labels = guard.fp32_labels(recipe, samples.fp32)
    truth = [entry.label for entry in read_val_map(assets.dataset)[: len(fp32_labels)]]
    reference = guard.Reference(fp32_labels, np.asarray(truth, np.int32))
    for name, path in (("u8s8", u8s8), ("s8s8", work / "s8s8.onnx")):
        result = guard.check(guard.ort_labels_of(path, name), samples.int8, reference)
        print(f"guard on the synthetic model's own (random) head, {name}: {result.summary()}")
    for fmt in ("fp32", "int8"):
        prepare_cache(assets.dataset, work / fmt, count, CORES, fmt=fmt)
    fp32 = PreprocessedImagenet(work / "fp32", count, count)
    fp32.load(list(range(count)))
    store = Int8Samples(work / "int8", count, count)
    store.load(list(range(count)))
    first32 = list(range(32))
    fp32_batch = fp32.batch(first32)
    int8_batch = np.take(store.array, store.rows(first32), axis=0)

    reference = OnnxRuntimeModel(assets.model, "cpu")
    print(f"CPU int8 dot product: {int8_dot_product()}")
    one, per_core = {"slots": 1, "threads_per_slot": CORES}, {"slots": CORES, "threads_per_slot": 1}
    cases = [
        Case("reference FP32, float in, bs32", loop(reference.predict, fp32_batch)),
        Case("u8s8 float in, ref threading, bs32", loop(session(u8s8_float), fp32_batch)),
        Case("u8s8 int8 in, ref threading, bs32", loop(session(u8s8), int8_batch)),
        Case("twin 1 slot x all cores, bs32", twin(u8s8, store, 32, **one)),
        Case("twin 1 slot per core, own sessions, bs32", twin(u8s8, store, 32, **per_core)),
        Case(
            "twin 1 slot per core, exact_int8, bs32",
            twin(u8s8, store, 32, **per_core, exact_int8=True),
        ),
    ]
    if not args.quick:
        cases += [
            Case(
                "twin 1 slot per core, shared session, bs32",
                twin(u8s8, store, 32, **per_core, shared_session=True),
            ),
            Case("twin 1 slot, no spinning, bs32", twin(u8s8, store, 32, **one, spinning=False)),
            Case(
                "twin 1 slot, optimization extended, bs32",
                twin(u8s8, store, 32, **one, optimization="extended"),
            ),
            Case(
                "twin 1 slot, qdqisint8allowed=1, bs32",
                twin(u8s8, store, 32, **one, int8_qdq=True),
            ),
        ]
        for batch in (16, 64, 128):
            cases.append(
                Case(f"twin 1 slot x all cores, bs{batch}", twin(u8s8, store, batch, **one))
            )
            cases.append(
                Case(f"twin 1 slot per core, bs{batch}", twin(u8s8, store, batch, **per_core))
            )

    for round_ in range(args.rounds):
        for case in cases:
            case.measure(args.seconds)
            print(
                f"round {round_ + 1}: {case.label:45s} {case.figures[-1]:6.1f}/s "
                f"{case.per_cpu_s[-1]:6.1f}/CPU-s",
                flush=True,
            )
    print(f"\n{args.rounds} rounds x {args.seconds:.0f} s, {CORES} cores; x = vs reference")
    print(f"{'':45s} {'median/s':>9s} {'best/s':>7s} {'x med':>6s} {'x best':>6s} {'/CPU-s':>7s}")
    base, base_best = statistics.median(cases[0].figures), max(cases[0].figures)
    base_cpu = statistics.median(cases[0].per_cpu_s)
    for case in cases:
        median, best = statistics.median(case.figures), max(case.figures)
        cpu = statistics.median(case.per_cpu_s)
        print(
            f"{case.label:45s} {median:9.1f} {best:7.1f} {median / base:6.2f} "
            f"{best / base_best:6.2f} {cpu:7.1f} (x{cpu / base_cpu:.2f})"
        )


def as_uint8_weights(model: Path, out: Path) -> int:
    """The same model with every symmetric int8 weight stored as uint8 + 128 (zero point 128):
    the same values, so the same outputs; onnxruntime picks other convolution kernels."""
    import onnx
    from onnx import TensorProto, numpy_helper

    graph = onnx.load(str(model))
    initializers = {item.name: item for item in graph.graph.initializer}
    changed = 0
    for node in graph.graph.node:
        weight = initializers.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        point = initializers.get(node.input[2]) if weight and len(node.input) > 2 else None
        if weight is None or point is None or weight.data_type != TensorProto.INT8:
            continue
        zero = numpy_helper.to_array(point)
        if np.any(zero != 0):
            continue
        shifted = numpy_helper.to_array(weight).astype(np.int16) + 128
        weight.CopyFrom(numpy_helper.from_array(shifted.astype(np.uint8), weight.name))
        point.CopyFrom(numpy_helper.from_array(np.full(zero.shape, 128, np.uint8), point.name))
        changed += 1
    onnx.save(graph, str(out))
    return changed


def gemm_rate(size: int = 1024, repeats: int = 20) -> float:
    """GMAC/s of onnxruntime's u8s8 MatMulInteger on one thread."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    weights = np.random.default_rng(0).integers(-127, 127, (size, size), dtype=np.int8)
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "W"], ["Y"])], "gemm",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [size, size])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [size, size])],
        [helper.make_tensor("W", TensorProto.INT8, [size, size], weights.tobytes(), raw=True)],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), options, ["CPUExecutionProvider"])
    a = np.random.default_rng(1).integers(0, 255, (size, size), dtype=np.uint8)
    for _ in range(3):
        sess.run(None, {"A": a})
    started = time.perf_counter()
    for _ in range(repeats):
        sess.run(None, {"A": a})
    return size**3 * repeats / (time.perf_counter() - started) / 1e9


def latency(u8s8: Path, work: Path, runs: int) -> None:
    import onnxruntime as ort

    from backends.dell_trt.ort_engine import session_options

    u8u8 = work / "u8u8.onnx"
    print(f"uint8-encoded weights: {as_uint8_weights(u8s8, u8u8)} tensors")
    sample = np.zeros((1, *SAMPLE_SHAPE), np.int8)
    cases = [
        ("u8s8, 2 threads, spinning", u8s8, session_options(2, True)),
        ("u8s8, 2 threads, no spinning", u8s8, session_options(2, False)),
        ("u8s8, 1 thread", u8s8, session_options(1, True)),
        ("u8 weights + 128, 2 threads, spinning", u8u8, session_options(2, True)),
    ]
    print(f"CPU int8 dot product: {int8_dot_product()}; {runs} samples a case, 10 ms apart")
    for label, model, options in cases:
        sess = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        for _ in range(10):
            sess.run(None, {name: sample})
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            sess.run(None, {name: sample})
            times.append((time.perf_counter() - started) * 1000)
            time.sleep(0.01)
        p50, p90, p99 = np.percentile(times, [50, 90, 99])
        print(f"{label:40s} p50 {p50:6.2f} ms  p90 {p90:6.2f}  p99 {p99:6.2f}")
    print(f"onnxruntime u8s8 MatMulInteger 1024^3, 1 thread: {gemm_rate():.0f} GMAC/s")


if __name__ == "__main__":
    main()

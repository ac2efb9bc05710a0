"""Harness ceiling: how fast real LoadGen can drive the dell-trt harness with a null engine.

Compares, on this host, in one run (prints figures and ratios; no assertions):
  (a) a minimal null SUT: fast issue path, coalesced Server, one completion thread that completes
      each issued list in one QuerySamplesComplete;
  (a') (a) completing Offline's one big list in batch-sized slices (its true Offline ceiling);
  (b) LwisSUT (the LWIS harness) over NullDevice slots: 1 device, and 2 devices (round robin).
Offline: samples/s of each (median of repeats) and the ratio (b)/(a) (target >= 0.5). Server:
the highest target QPS that stays VALID at the 15 ms p99 bound, found by a short search (target
>= 150 000 for (b)). Every LoadGen test runs in its own subprocess (one test per process). The
host is shared: run-to-run spread is large, so read the figures of one run together.

Usage (from the repository root): python -m benchmarks.harness_ceiling
    [--offline-samples 3000000] [--offline-repeats 3] [--server-seconds 10]
    [--server-max-runs 8] [--server-attempts 2] [--batch-size 256] [--slots 2]
    [--deque-timeout-us 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from queue import SimpleQueue
from typing import Any

import numpy as np

from benchmarks.search import highest_valid

ROOT = Path(__file__).resolve().parents[1]
SERVER_LATENCY_MS = 15
PERFORMANCE_COUNT = 1024


@dataclass(frozen=True)
class Config:
    label: str
    sut: str  # "minimal" or "lwis"
    slice_size: int = 0  # minimal: complete issued lists in slices of this many samples
    devices: int = 1
    slots: int = 2
    batch_size: int = 256
    deque_timeout_us: int = 2000


# -- child: one LoadGen test -------------------------------------------------------------------


class NullLibrary:
    total_count = PERFORMANCE_COUNT
    performance_count = PERFORMANCE_COUNT

    def load(self, indices: list[int]) -> None:
        pass

    def unload(self, indices: list[int]) -> None:
        pass


class MinimalNullSUT:
    """The least a Python SUT can do: queue each issued list and complete it in one call (or,
    with `slice_size`, in slices of that many samples). Every response points at a constant
    zero label; the responses are prepared once and only their ids change (as LwisSUT does)."""

    def __init__(self, slice_size: int = 0) -> None:
        import mlperf_loadgen as lg

        self._response = lg.QuerySampleResponse
        self._set_id = lg.QuerySampleResponse.id.fset
        self._samples_complete = lg.QuerySamplesComplete
        self._labels = np.zeros(0, dtype=np.int32)
        self._prepared: list[Any] = []
        self._slice_size = slice_size
        self._pending: SimpleQueue[list[int] | None] = SimpleQueue()
        self._thread = threading.Thread(target=self._complete_loop, daemon=True)
        self._thread.start()

    def issue_fast(self, ids: list[int], indices: list[int]) -> None:
        self._pending.put(ids)

    def flush_queries(self) -> None:
        pass

    def stop(self) -> None:
        self._pending.put(None)
        self._thread.join(30)

    def _complete_loop(self) -> None:
        while (ids := self._pending.get()) is not None:
            size = self._slice_size or len(ids)
            for start in range(0, len(ids), size):
                self._complete(ids[start : start + size] if size < len(ids) else ids)

    def _complete(self, ids: list[int]) -> None:
        count = len(ids)
        if count > len(self._prepared):
            self._labels = np.zeros(count, dtype=np.int32)
            base = self._labels.ctypes.data
            self._prepared = [self._response(0, base + 4 * k, 4) for k in range(count)]
        responses = self._prepared[:count]
        any(map(self._set_id, responses, ids))
        self._samples_complete(responses)


def child(config: Config, scenario: str, user_conf: Path, output: Path) -> None:
    from backends.common.loadgen_driver import TestRequest, run_test
    from backends.dell_trt.null_engine import NullDevice
    from backends.dell_trt.sut import LwisSUT, fail_process

    def make_sut() -> Any:
        if config.sut == "minimal":
            return MinimalNullSUT(config.slice_size)
        devices = [
            NullDevice(f"null{n}", config.slots, config.batch_size) for n in range(config.devices)
        ]
        return LwisSUT(devices, config.batch_size, config.deque_timeout_us, fail_process)

    request = TestRequest(scenario, "PerformanceOnly", user_conf, output)
    run_test(request, NullLibrary(), make_sut, {"config": asdict(config)}, coalesce_server=True)


# -- parent ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    valid: bool | None
    value: float | None
    p99_ms: float | None
    mean_batch: float | None
    seconds: float
    cpu_us_per_sample: float | None  # the whole child process (startup included) per sample


def run_one(config: Config, scenario: str, conf_text: str, work: Path) -> Outcome:
    from orchestrator.results.loadgen_log import parse_detail_text, result_from_logs

    with tempfile.TemporaryDirectory(dir=work) as tmp:
        folder = Path(tmp)
        conf = folder / "user.conf"
        conf.write_text(conf_text)
        out = folder / "out"
        path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
        env = {**os.environ, "PYTHONPATH": path}
        command = [
            sys.executable, "-m", "benchmarks.harness_ceiling", "--child",
            json.dumps(asdict(config)), scenario, str(conf), str(out),
        ]  # fmt: skip
        started = time.monotonic()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False
        )
        seconds = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if done.returncode != 0:
            raise RuntimeError(f"{config.label} {scenario} failed:\n{done.stderr[-3000:]}")
        result = result_from_logs(out, scenario, "PerformanceOnly")
        if result.errors:
            raise RuntimeError(f"{config.label} {scenario}: LoadGen errors {result.errors}")
        detail = parse_detail_text((out / "mlperf_log_detail.txt").read_text())
        p99 = detail.get("result_99.00_percentile_latency_ns")
        stats = json.loads((out / "harness.json").read_text()).get("harness_stats") or {}
        return Outcome(
            valid=result.valid,
            value=result.value,
            p99_ms=p99 / 1e6 if p99 is not None else None,
            mean_batch=stats.get("mean_batch_size"),
            seconds=seconds,
            cpu_us_per_sample=cpu / result.samples * 1e6 if result.samples else None,
        )


def offline(config: Config, samples: int, work: Path) -> Outcome:
    # LoadGen issues 1.1 x target_qps x min_duration samples in one query.
    conf = f"*.Offline.min_duration = 1000\n*.Offline.target_qps = {samples / 1.1:.0f}\n"
    return run_one(config, "Offline", conf, work)


def server(config: Config, qps: float, seconds: float, work: Path) -> Outcome:
    conf = (
        f"*.Server.min_duration = {int(seconds * 1000)}\n*.Server.min_query_count = 1\n"
        f"*.Server.target_qps = {qps:.0f}\n*.Server.target_latency = {SERVER_LATENCY_MS}\n"
    )
    return run_one(config, "Server", conf, work)


def server_search(
    config: Config, start_qps: float, seconds: float, work: Path, max_runs: int, attempts: int
) -> tuple[float | None, float | None]:
    """(highest VALID, lowest INVALID) target QPS of `config` (benchmarks.search)."""

    def measure(qps: float) -> bool:
        outcome = server(config, qps, seconds, work)
        print(
            f"  {config.label:<28} Server {qps:>9,.0f} QPS: "
            f"{'VALID' if outcome.valid else 'INVALID':<7} p99 {outcome.p99_ms or 0:8.2f} ms, "
            f"{outcome.cpu_us_per_sample or 0:.2f} us CPU/sample"
            + (f", mean batch {outcome.mean_batch:.1f}" if outcome.mean_batch else ""),
            flush=True,
        )
        return bool(outcome.valid)

    return highest_valid(measure, start_qps, max_runs, attempts)


def response_variants(batch: int) -> None:
    """ns per sample of ways to build one batch of int32-label QuerySampleResponses."""
    import itertools
    import timeit

    import mlperf_loadgen as lg
    import numpy as np

    response = lg.QuerySampleResponse
    set_id = response.id.fset
    ids = list(range(10**9, 10**9 + batch))
    labels = np.zeros(batch, dtype=np.int32)
    base = labels.ctypes.data
    prepared = [response(0, p, 4) for p in range(base, base + 4 * batch, 4)]

    def comprehension() -> Any:
        pointers = range(base, base + 4 * batch, 4)
        return [response(i, p, 4) for i, p in zip(ids, pointers, strict=True)]

    def mapped() -> Any:
        return list(map(response, ids, range(base, base + 4 * batch, 4), itertools.repeat(4)))

    def indexed() -> Any:
        return [response(ids[k], base + 4 * k, 4) for k in range(batch)]

    def prepared_ids() -> Any:  # what LabelResponder does
        return any(map(set_id, prepared, ids))

    print(f"response building, batch of {batch} (best of 5):")
    for variant in (comprehension, mapped, indexed, prepared_ids):
        seconds = min(timeit.repeat(variant, number=200, repeat=5)) / 200 / batch
        print(f"  {variant.__name__:<14} {seconds * 1e9:6.0f} ns/sample", flush=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        config = Config(**json.loads(sys.argv[2]))
        child(config, sys.argv[3], Path(sys.argv[4]), Path(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--offline-samples", type=int, default=3_000_000)
    parser.add_argument("--offline-repeats", type=int, default=3, help="median of this many")
    parser.add_argument("--server-seconds", type=float, default=10.0)
    parser.add_argument("--server-start-qps", type=float, default=100_000)
    parser.add_argument("--server-max-runs", type=int, default=8, help="QPS levels per search")
    parser.add_argument(
        "--server-attempts", type=int, default=2, help="runs per QPS level; VALID if any is"
    )
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--deque-timeout-us", type=int, default=2000)
    args = parser.parse_args()

    shape = {
        "batch_size": args.batch_size,
        "slots": args.slots,
        "deque_timeout_us": args.deque_timeout_us,
    }
    minimal = Config("(a) minimal null SUT", "minimal")
    sliced = Config(f"(a') (a), slices of {args.batch_size}", "minimal", slice_size=args.batch_size)
    configs = [
        minimal,
        Config("(b) LwisSUT 1 device", "lwis", devices=1, **shape),
        Config("(b) LwisSUT 2 devices", "lwis", devices=2, **shape),
    ]
    print(
        f"host: {os.cpu_count()} cores, load average {_load()}; "
        f"Offline {args.offline_samples:,} samples per run; Server runs of "
        f"{args.server_seconds:g} s (VALID if 1 of {args.server_attempts} is), p99 bound "
        f"{SERVER_LATENCY_MS} ms; LWIS batch "
        f"{args.batch_size}, {args.slots} slots/device, deque timeout {args.deque_timeout_us} us",
        flush=True,
    )
    response_variants(args.batch_size)
    offline_rates: dict[str, float] = {}
    server_best: dict[str, float | None] = {}
    server_open: dict[str, bool] = {}  # no INVALID run: the ceiling is above the figure
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        runs: dict[str, list[Outcome]] = {}
        for repeat in range(args.offline_repeats):
            for config in [minimal, sliced, *configs[1:]]:
                outcome = offline(config, args.offline_samples, work)
                runs.setdefault(config.label, []).append(outcome)
                print(
                    f"  {config.label:<28} Offline run {repeat + 1}: {outcome.value or 0:>10,.0f}"
                    f" samples/s, {outcome.cpu_us_per_sample or 0:.2f} us CPU/sample"
                    + (f", mean batch {outcome.mean_batch:.1f}" if outcome.mean_batch else ""),
                    flush=True,
                )
        for label, outcomes in runs.items():
            offline_rates[label] = statistics.median(o.value or 0.0 for o in outcomes)
        for config in configs:
            best, worst = server_search(
                config,
                args.server_start_qps,
                args.server_seconds,
                work,
                args.server_max_runs,
                args.server_attempts,
            )
            server_best[config.label] = best
            server_open[config.label] = worst is None

    base_offline = offline_rates[minimal.label]
    base_sliced = offline_rates[sliced.label]
    base_server = server_best[minimal.label]
    print(f"\nsummary (Offline: median of {args.offline_repeats}; load average now {_load()})")
    for config in configs:
        rate = offline_rates[config.label]
        best = server_best[config.label]
        server_text = f"{best:>9,.0f}" if best else "     none"
        server_text = (">=" if server_open[config.label] and best else "  ") + server_text
        print(
            f"{config.label:<28} Offline {rate:>11,.0f} samples/s = {_ratio(rate, base_offline)}"
            f" of (a), {_ratio(rate, base_sliced)} of (a');  Server max VALID {server_text} QPS"
            f" = {_ratio(best, base_server)} of (a)"
        )
    print(f"{sliced.label:<28} Offline {base_sliced:>11,.0f} samples/s")
    print("targets: (b) Offline >= 0.5x (a); (b) Server >= 150,000 QPS VALID at 15 ms p99")
    print("'>=': no INVALID run within --server-max-runs, the ceiling is higher than the figure")


def _ratio(value: float | None, base: float | None) -> str:
    return f"{value / base:.2f}x" if value and base else "-"


def _load() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


if __name__ == "__main__":
    main()

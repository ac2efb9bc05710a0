"""Issue path at 8-GPU scale: what LoadGen's Python fast issue path costs per sample.

An 8×H200 Offline run issues every sample of the run in one query: about 773 000 samples/s ×
660 s ≈ 510 M samples. This script runs real LoadGen Offline PerformanceOnly tests whose one
query has exactly N samples, against a null-engine SUT registered with `ConstructFastSUT` (as
dell-trt's LwisSUT is), each N in a fresh subprocess, and measures per N:

  (a1) LoadGen before the issue: from StartTest to the moment LoadGen's thread takes the GIL to
       call the SUT (start-up, QSL load, GenerateQueries: LoadGen's own per-sample records);
  (a2) the pybind11 trampoline: from taking the GIL to the issue callback being entered (the
       trampoline's two std::vectors of ids and indices, their by-value copies into the
       std::function, and the conversion to two Python lists of ints). LoadGen takes the
       Offline start time just before it calls the SUT, so (a2) is inside the timed window;
  (b)  inside the callback, what the dell-trt harness and responder do: split both lists into
       batch-sized slices (LwisHarness.issue) and complete every slice with LabelResponder
       (prepared QuerySampleResponses re-used, one QuerySamplesComplete per slice; the null
       engine's labels are an int32 buffer re-used like a slot's output). Split into the
       slicing, the Python responder and the time inside lg.QuerySamplesComplete (pybind list
       → vector<QuerySampleResponse> plus LoadGen's per-sample completion);
  (c)  after the callback returns until StartTest returns (LoadGen's logger records the
       latencies, the summary is computed and written);
  (d)  the test's wall time; and memory: RSS at (a1)'s end, at the callback's entry and exit,
       and the process peak (ru_maxrss and VmHWM), all less the RSS before StartTest.

(a1)→(a2) is found with a sampler thread that reads the time and RSS every millisecond while
LoadGen runs with the GIL released: its reading before its longest pause is when the
trampoline took the GIL (the sampler cannot run again until Python code runs). Each
figure is extrapolated linearly (least squares over the sizes run) to the full-scale query and
compared with the run (target: the issue path under 1 % of it) and with the host memory of a
typical 8-GPU server. Sizes go up in order; a size whose predicted peak exceeds --max-gib is
skipped, and so are the larger ones. Prints figures and ratios; no assertions.

With `--native DIR` it measures the native issue path instead (backends/common/native: the
library's own LoadGen, built with `python backends/common/native/build.py --sdist SDIST --out
DIR`): the real LwisSUT — 8 lanes (one per GPU) of 2 slots, batcher and completion threads —
over slots that answer at once with a ready label buffer, so what is timed is LoadGen and the
harness, not an engine:

  (a1) LoadGen before the issue (as above; the issue callback gets a pointer, no lists);
  (e)  the issue callback: LoadGen's QuerySample array as a numpy view, cut into full batches
       of views and queued on the lanes;
  (f)  from the issue to the last completion: every batch taken, handed to a slot and
       completed in one C++ call (the whole harness inside the timed window; with an engine
       this overlaps inference); (g) of it, time inside the completion calls (summed over the
       lanes' threads);
  (c)  after the last completion until StartTest returns.

Usage (from the repository root): python -m benchmarks.issue_path
    [--sizes 1M,2M,5M,10M,20M] [--repeats 1] [--chunk 2048] [--max-gib 12] [--no-gc]
    [--rate 773000] [--run-seconds 660] [--host-gib 1024] [--room 0.25]
    [--native DIR [--lanes 8] [--slots 2]]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PERFORMANCE_COUNT = 1024  # QSL samples: the data is not what is measured
PAGE = os.sysconf("SC_PAGE_SIZE")
GIB = 1024**3
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16")


# -- child: one LoadGen test -------------------------------------------------------------------


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class Sampler:
    """Reads (perf_counter, RSS) every `interval` s until stopped; needs the GIL for each."""

    def __init__(self, interval: float = 0.001) -> None:
        self.times: list[float] = []
        self.rss: list[int] = []
        self._interval = interval
        self._stop = False
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:  # called with the GIL held: the sampler records nothing after it
        self._stop = True

    def join(self) -> None:
        self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop:
            now, rss = time.perf_counter(), _rss()
            if self._stop:
                break
            self.times.append(now)
            self.rss.append(rss)
            time.sleep(self._interval)

    def gil_taken(self, entry: float) -> tuple[float, int]:
        """(time, RSS) of the last reading before the longest pause in readings up to `entry`:
        the trampoline holding the GIL. (A reading can slip in just after the trampoline,
        when the callback's first bytecode hands the GIL over, so the last reading is not it.)
        """
        times = [when for when in self.times if when < entry]
        if not times:
            return float("nan"), 0
        points = [*times, entry]
        gaps = [points[k + 1] - points[k] for k in range(len(times))]
        at = max(range(len(gaps)), key=gaps.__getitem__)
        return times[at], self.rss[at]


def _detail_values(folder: Path, keys: tuple[str, ...]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    detail = folder / "mlperf_log_detail.txt"
    if not detail.is_file():
        return found
    for line in detail.read_text().splitlines():
        if not line.startswith(":::MLLOG"):
            continue
        record = json.loads(line[len(":::MLLOG") :])
        if record.get("key") in keys:
            found[record["key"]] = record.get("value")
    return found


def shared_figures(
    samples: int,
    sizes: dict[str, int],
    detail: dict[str, Any],
    sampler: Sampler,
    base_rss: int,
    gil_rss: int,
) -> dict[str, Any]:
    """What both children report the same way: the query, LoadGen's result, memory."""
    return {
        "samples": samples,
        "issued": sizes["issued"],
        "generated_samples_per_query": detail.get("generated_samples_per_query"),
        "loadgen_samples_per_second": detail.get("result_samples_per_second"),
        "sampler_readings": len(sampler.times),
        "base_rss": base_rss,
        "m_loadgen": gil_rss - base_rss,
        "m_entry": sizes["entry_rss"] - base_rss,
        "m_exit": sizes["exit_rss"] - base_rss,
        "m_peak_hwm": _status_kib("VmHWM") * 1024 - base_rss,
        "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "vmhwm": _status_kib("VmHWM") * 1024,
    }


def one_query(settings: Any, samples: int) -> None:
    """Offline settings (the bindings' or the native library's) for one query of exactly
    `samples`: samples_per_query = max(min_query_count, 1.1 × min_duration × expected qps), so
    with no minimum duration the query has exactly min_query_count samples."""
    settings.min_duration_ms = 0
    settings.min_query_count = samples
    settings.offline_expected_qps = 1.0
    settings.accuracy_log_probability = 0.0
    settings.accuracy_log_sampling_target = 0


def child(samples: int, chunk: int, collect: bool) -> dict[str, Any]:
    import gc

    import mlperf_loadgen as lg

    from backends.dell_trt.null_engine import null_labels
    from backends.dell_trt.sut import LabelResponder

    marks: dict[str, float] = {}
    sizes: dict[str, int] = {}
    complete_seconds = [0.0]
    samples_complete = lg.QuerySamplesComplete

    def timed_complete(responses: list[Any]) -> None:
        started = time.perf_counter()
        samples_complete(responses)
        complete_seconds[0] += time.perf_counter() - started

    responder = LabelResponder(timed_complete)
    labels = null_labels(range(chunk))  # the slot's output buffer, re-used for every batch
    sampler = Sampler()

    def issue_fast(ids: list[int], indices: list[int]) -> None:
        entered = time.perf_counter()
        sampler.stop()
        marks["entry"] = entered
        sizes["entry_rss"] = _rss()
        sizes["issued"] = len(ids)
        # LwisHarness.issue: batch-sized slices of both lists, all queued at once.
        count = len(ids)
        queued = [
            (ids[start : start + chunk], indices[start : start + chunk])
            for start in range(0, count, chunk)
        ]
        marks["split"] = time.perf_counter()
        sizes["split_rss"] = _rss()
        # The null engine answers at once: complete every batch, dropping it as it goes.
        queued.reverse()
        while queued:
            batch_ids, _batch_indices = queued.pop()
            size = len(batch_ids)
            responder.complete(batch_ids, labels if size == chunk else labels[:size])
        marks["exit"] = time.perf_counter()
        sizes["exit_rss"] = _rss()

    def flush() -> None:
        pass

    def load(indices: list[int]) -> None:
        marks.setdefault("qsl_load", time.perf_counter())

    def unload(indices: list[int]) -> None:
        pass

    settings = lg.TestSettings()
    settings.scenario = lg.TestScenario.Offline
    settings.mode = lg.TestMode.PerformanceOnly
    one_query(settings, samples)

    with tempfile.TemporaryDirectory(prefix="issue_path_") as tmp:
        folder = Path(tmp)
        output = lg.LogOutputSettings()
        output.outdir = str(folder)
        output.copy_summary_to_stdout = False
        log_settings = lg.LogSettings()
        log_settings.log_output = output
        log_settings.enable_trace = False  # as the project's driver runs LoadGen

        qsl = lg.ConstructQSL(PERFORMANCE_COUNT, PERFORMANCE_COUNT, load, unload)
        sut = lg.ConstructFastSUT(issue_fast, flush)
        if not collect:
            gc.disable()
        base_rss = _rss()
        sampler.start()
        time.sleep(0.01)
        started = time.perf_counter()
        lg.StartTestWithLogSettings(sut, qsl, settings, log_settings, str(folder / "audit.config"))
        ended = time.perf_counter()
        sampler.join()
        lg.DestroyFastSUT(sut)
        lg.DestroyQSL(qsl)
        detail = _detail_values(
            folder,
            ("generated_samples_per_query", "result_samples_per_second", "result_validity"),
        )

    entry = marks["entry"]
    gil_taken, gil_rss = sampler.gil_taken(entry)
    callback_seconds = marks["exit"] - entry
    split_seconds = marks["split"] - entry
    complete = complete_seconds[0]
    return {
        **shared_figures(samples, sizes, detail, sampler, base_rss, gil_rss),
        "t_qsl_load": marks.get("qsl_load", float("nan")) - started,
        "t_loadgen": gil_taken - started,
        "t_trampoline": entry - gil_taken,
        "t_to_entry": entry - started,
        "t_split": split_seconds,
        "t_responder_python": callback_seconds - split_seconds - complete,
        "t_samples_complete": complete,
        "t_callback": callback_seconds,
        "t_post": ended - marks["exit"],
        "t_total": ended - started,
        "m_split": sizes["split_rss"] - base_rss,
        # perf_counter (CLOCK_MONOTONIC) of each phase boundary, to line up with a profiler's
        # clock (e.g. `perf record -k CLOCK_MONOTONIC` on the child)
        "clock": {
            "start": started,
            "gil": gil_taken,
            "entry": entry,
            "split": marks["split"],
            "exit": marks["exit"],
            "end": ended,
        },
    }


def child_native(
    samples: int, chunk: int, folder: Path, lanes: int, slots: int, floor: bool = False
) -> dict[str, Any]:
    import numpy as np

    from backends.common.native import NativeLoadGen
    from backends.dell_trt.null_engine import null_labels
    from backends.dell_trt.sut import LwisSUT, NativeResponder

    native = NativeLoadGen(folder)
    marks: dict[str, float] = {}
    sizes: dict[str, int] = {}
    labels = null_labels(range(chunk))
    errors: list[BaseException] = []

    class ReadySlot:
        """Answers at once with a ready label buffer: no engine work to time."""

        capacity = chunk

        def submit(self, indices: Any) -> None:
            self.count = len(indices)

        def wait(self) -> Any:
            return labels[: self.count]

    class ReadyDevice:
        def __init__(self, number: int) -> None:
            self.name = f"gpu{number}"
            self.slots = [ReadySlot() for _ in range(slots)]

        def close(self) -> None:
            pass

    in_complete = [0.0]
    done = [0]
    lock = threading.Lock()
    complete = NativeResponder.complete

    def timed_complete(self: Any, ids: Any, batch_labels: Any) -> None:
        started = time.perf_counter()
        complete(self, ids, batch_labels)
        ended = time.perf_counter()
        with lock:
            in_complete[0] += ended - started
            done[0] += len(ids)
            if done[0] >= samples:
                marks["last"] = ended

    NativeResponder.complete = timed_complete  # type: ignore[method-assign]  # before threads
    sut = LwisSUT([ReadyDevice(n) for n in range(lanes)], chunk, 0, errors.append, native=native)
    issue_native = sut.issue_native
    assert issue_native is not None
    sampler = Sampler()

    def issue(query: Any) -> None:
        entered = time.perf_counter()
        sampler.stop()
        marks["entry"] = entered
        sizes["entry_rss"] = _rss()
        sizes["issued"] = len(query)
        if floor:  # LoadGen's own completion work: the whole query in one call, no harness
            native.complete(query["id"], np.zeros(len(query), np.int32))
            marks["last"] = time.perf_counter()
            in_complete[0] = marks["last"] - entered
        else:
            issue_native(query)
        marks["exit"] = time.perf_counter()
        sizes["exit_rss"] = _rss()

    settings = native.settings("Offline", "PerformanceOnly")
    one_query(settings, samples)
    with tempfile.TemporaryDirectory(prefix="issue_path_") as tmp:
        out = Path(tmp)
        base_rss = _rss()
        sampler.start()
        time.sleep(0.01)
        started = time.perf_counter()
        native.start_test(
            settings, out, str(out / "audit.config"), name="issue-path",
            total_count=PERFORMANCE_COUNT, performance_count=PERFORMANCE_COUNT, issue=issue,
            issue_lists=sut.issue_fast, flush=lambda: None,
            load=lambda indices: None, unload=lambda indices: None, on_error=errors.append,
        )  # fmt: skip
        ended = time.perf_counter()
        sampler.join()
        sut.stop()
        detail = _detail_values(
            out, ("generated_samples_per_query", "result_samples_per_second", "result_validity")
        )
    if errors:
        raise RuntimeError(f"harness error: {errors[0]!r}")
    entry, last = marks["entry"], marks["last"]
    _gil_taken, gil_rss = sampler.gil_taken(entry)
    return {
        **shared_figures(samples, sizes, detail, sampler, base_rss, gil_rss),
        "t_loadgen": entry - started,
        "t_issue_callback": marks["exit"] - entry,
        "t_to_last": last - entry,
        "t_in_complete": in_complete[0],
        "t_post": ended - last,
        "t_total": ended - started,
        "t_to_entry": entry - started,
        "t_callback": last - entry,
    }


# -- parent ------------------------------------------------------------------------------------


def parse_size(text: str) -> int:
    text = text.strip().lower().replace("_", "")
    factor = 1
    if text.endswith("k"):
        factor, text = 1000, text[:-1]
    elif text.endswith("m"):
        factor, text = 1_000_000, text[:-1]
    return int(float(text) * factor)


def host_facts() -> str:
    model, flags = platform.processor() or "unknown", set[str]()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("unknown", "x86_64", ""):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PHYS_PAGES") * PAGE / GIB
    present = [flag for flag in CPU_FLAGS if flag in flags]
    absent = [flag for flag in CPU_FLAGS if flag not in flags]
    return (
        f"{model}, {os.cpu_count()} cores, {memory:.1f} GiB; flags: {' '.join(present) or '-'}"
        + (f" (no {' '.join(absent)})" if absent else "")
    )


def run_child(
    samples: int, chunk: int, collect: bool, native: tuple[Path, int, int, bool] | None = None
) -> dict[str, Any]:
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    command = [
        sys.executable, "-m", "benchmarks.issue_path", "--child",
        str(samples), str(chunk), str(int(collect)),
    ]  # fmt: skip
    if native is not None:
        command += [str(native[0]), str(native[1]), str(native[2]), str(int(native[3]))]
    started = time.monotonic()
    done = subprocess.run(
        command,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"N={samples:,} failed (rc {done.returncode}):\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_seconds"] = time.monotonic() - started
    return result


def median_result(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each numeric figure's median over the runs of one size (a figure of its own)."""
    result = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            values = [run[key] for run in runs if run.get(key) is not None]
            if values:
                exact = all(isinstance(v, int) for v in values)
                result[key] = (statistics.median_low if exact else statistics.median)(values)
    return result


def fit(sizes: list[int], values: list[float]) -> tuple[float, float]:
    """(per-sample slope, fixed intercept) of values = intercept + slope × size."""
    if len(sizes) == 1:
        return values[0] / sizes[0], 0.0
    n = len(sizes)
    mean_x, mean_y = sum(sizes) / n, sum(values) / n
    sxx = sum((x - mean_x) ** 2 for x in sizes)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(sizes, values, strict=True)) / sxx
    return slope, mean_y - slope * mean_x


TIME_PARTS = (
    ("t_loadgen", "(a1) LoadGen before the issue (GenerateQueries)"),
    ("t_trampoline", "(a2) trampoline: vectors + copies + Python lists"),
    ("t_split", "(b1) harness split into batches"),
    ("t_responder_python", "(b2) responder, Python (set ids)"),
    ("t_samples_complete", "(b3) lg.QuerySamplesComplete"),
    ("t_post", "(c)  after the callback (latencies, summary)"),
    ("t_total", "(d)  test wall time"),
)
MEMORY_PARTS = (
    ("m_loadgen", "LoadGen's query (at (a1)'s end)"),
    ("m_entry", "+ trampoline and lists (callback entry)"),
    ("m_split", "+ batch slices (after (b1))"),
    ("m_exit", "at callback exit"),
    ("m_peak_hwm", "peak (VmHWM - start)"),
)


Parts = tuple[tuple[str, str], ...]


def tabulate(
    results: list[dict[str, Any]],
    args: argparse.Namespace,
    parts: tuple[Parts, Parts],
    result_label: str,
    width: int = 50,
) -> dict[str, float]:
    """Print the per-N table and the extrapolation of each part; the projected figures."""
    time_parts, memory_parts = parts
    target = int(args.rate * args.run_seconds)
    print("\nper N (time: s and ns/sample; memory: GiB and bytes/sample, over the RSS at start)")
    print(f"{'part':<{width}}" + "".join(f"{r['samples']:>22,}" for r in results))
    for key, label in time_parts:
        cells = "".join(
            f"{r[key]:>10.3f} s {r[key] / r['samples'] * 1e9:>6.1f} ns" for r in results
        )
        print(f"{label:<{width}}{cells}")
    for key, label in memory_parts:
        cells = "".join(
            f"{r[key] / GIB:>9.3f} GiB {r[key] / r['samples']:>6.0f} B" for r in results
        )
        print(f"{label:<{width}}{cells}")
    cells = "".join(f"{r['maxrss'] / GIB:>18.3f} GiB" for r in results)
    print(f"{'ru_maxrss (whole process)':<{width}}{cells}")
    cells = "".join(f"{r['loadgen_samples_per_second'] or 0:>20,.0f}/s" for r in results)
    print(f"{result_label:<{width}}{cells}")

    sizes = [r["samples"] for r in results]
    print(
        f"\nextrapolated to one Offline query of {target:,} samples ({args.rate:,.0f}/s × "
        f"{args.run_seconds:g} s), least squares over {len(sizes)} size(s):"
    )
    projected: dict[str, float] = {}
    for key, label in time_parts:
        slope, intercept = fit(sizes, [r[key] for r in results])
        projected[key] = intercept + slope * target
        print(
            f"  {label:<{width}} {slope * 1e9:7.1f} ns/sample -> {projected[key]:9.1f} s "
            f"= {projected[key] / args.run_seconds:7.2%} of the run"
        )
    for key, label in memory_parts:
        slope, intercept = fit(sizes, [r[key] for r in results])
        projected[key] = intercept + slope * target
        print(f"  {label:<{width}} {slope:7.1f} B/sample  -> {projected[key] / GIB:9.1f} GiB")
    return projected


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    target = int(args.rate * args.run_seconds)
    projected = tabulate(
        results, args, (TIME_PARTS, MEMORY_PARTS), "LoadGen result (null SUT, samples/s)"
    )
    issue = sum(projected[key] for key in ("t_loadgen", "t_trampoline", "t_split"))
    responder = projected["t_responder_python"] + projected["t_samples_complete"]
    whole = issue + responder
    budget = 0.01 * args.run_seconds
    peak = projected["m_peak_hwm"] / GIB
    print(
        f"\n  issue path, LoadGen to harness queues (a1+a2+b1): {issue:.1f} s"
        f" = {issue / args.run_seconds:.1%} of the run;"
        f" inside the timed window before the first batch (a2+b1): "
        f"{projected['t_trampoline'] + projected['t_split']:.1f} s"
    )
    print(
        f"  completing every sample from Python (b2+b3), GIL-held or in LoadGen: {responder:.1f}"
        f" s = {responder / args.run_seconds:.1%} of the run"
    )
    print(
        f"  whole Python issue path (a1+a2+b): {whole:.1f} s = {whole / args.run_seconds:.1%} "
        f"of {args.run_seconds:g} s; target < 1 % = {budget:.1f} s: "
        + ("MET" if whole < budget else f"NOT MET ({whole / budget:.0f}× over)")
    )
    room = args.host_gib * args.room
    print(
        f"  peak memory: {peak:.1f} GiB of a {args.host_gib:g} GiB host = "
        f"{peak / args.host_gib:.1%}; fits with room to spare (≤ {args.room:.0%}, {room:.0f} GiB):"
        + (" YES" if peak <= room else " NO")
    )
    fits = whole < budget and peak <= room
    print(
        "verdict: the Python-list issue path "
        + ("fits" if fits else "does NOT fit")
        + f" an 8-GPU Offline run of {target / 1e6:.0f} M samples"
        + ("" if whole < budget else " (time)")
        + ("" if peak <= room else " (memory)")
    )


NATIVE_TIME_PARTS = (
    ("t_loadgen", "(a1) LoadGen before the issue (GenerateQueries)"),
    ("t_issue_callback", "(e)  issue callback: view, cut, queue on lanes"),
    ("t_to_last", "(f)  issue to last completion (whole harness)"),
    ("t_in_complete", "(g)  of it, in the C++ completion calls (sum)"),
    ("t_post", "(c)  after the last completion (latencies, summary)"),
    ("t_total", "(d)  test wall time"),
)
NATIVE_MEMORY_PARTS = (
    ("m_loadgen", "LoadGen's query (at (a1)'s end)"),
    ("m_exit", "after the issue callback (batch views)"),
    ("m_peak_hwm", "peak (VmHWM - start)"),
)


FLOOR_TIME_PARTS = (
    ("t_loadgen", "(a1) LoadGen before the issue (GenerateQueries)"),
    ("t_in_complete", "(h)  LoadGen completing the query, one call"),
    ("t_post", "(c)  after the last completion (latencies, summary)"),
    ("t_total", "(d)  test wall time"),
)


def report_native(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    # --floor: no harness, only LoadGen's own parts mean something
    parts = (FLOOR_TIME_PARTS if args.floor else NATIVE_TIME_PARTS, NATIVE_MEMORY_PARTS)
    target = int(args.rate * args.run_seconds)
    projected = tabulate(results, args, parts, "LoadGen result (ready slots, samples/s)", 52)
    if args.floor:
        floor = projected["t_in_complete"]
        print(
            f"\n  LoadGen's own completion work for the whole query from one thread (h): "
            f"{floor:.1f} s, {target / floor:,.0f} samples/s — what any SUT pays in "
            "QuerySamplesComplete, spread over its completion threads"
        )
        return
    budget = 0.01 * args.run_seconds
    critical = projected["t_issue_callback"]
    harness = projected["t_to_last"]
    pace = target / harness if harness > 0 else float("inf")
    print(
        f"\n  issue path on the critical path (e), LoadGen's call to every batch queued: "
        f"{critical:.2f} s = {critical / args.run_seconds:.3%} of {args.run_seconds:g} s; "
        f"target < 1 % = {budget:.1f} s: " + ("MET" if critical < budget else "NOT MET")
    )
    print(
        f"  issue to last completion with ready slots (f): {harness:.1f} s, a pace of "
        f"{pace:,.0f} samples/s = {pace / args.rate:.1f}× the 8-GPU rate (this work overlaps "
        f"inference; it adds to the run only where that factor is below 1); compare "
        f"`--floor`, LoadGen's own completion work"
    )
    loadgen = projected["t_loadgen"] + projected["t_post"]
    print(
        f"  LoadGen's own work outside the timed window (a1+c), the same for any harness: "
        f"{loadgen:.1f} s"
    )
    peak = projected["m_peak_hwm"] / GIB
    room = args.host_gib * args.room
    print(
        f"  peak memory: {peak:.1f} GiB of a {args.host_gib:g} GiB host = "
        f"{peak / args.host_gib:.1%}; fits with room to spare (≤ {args.room:.0%}, {room:.0f} GiB):"
        + (" YES" if peak <= room else " NO")
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        if len(sys.argv) > 5:
            result = child_native(
                int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[5]),
                int(sys.argv[6]), int(sys.argv[7]), sys.argv[8] == "1",
            )  # fmt: skip
            print(json.dumps(result), flush=True)
            return
        result = child(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1")
        print(json.dumps(result), flush=True)
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1M,2M,5M,10M,20M", help="samples per query, k/M ok")
    parser.add_argument("--chunk", type=int, default=2048, help="samples per completion batch")
    parser.add_argument(
        "--max-gib", type=float, default=12.0, help="skip sizes predicted to peak above this"
    )
    parser.add_argument("--rate", type=float, default=773_000, help="full-scale samples/s")
    parser.add_argument(
        "--repeats", type=int, default=1, help="runs per size; each figure is their median"
    )
    parser.add_argument(
        "--no-gc",
        action="store_true",
        help="diagnostic: disable Python's cyclic GC in the test process (the harness does not)",
    )
    parser.add_argument("--run-seconds", type=float, default=660.0)
    parser.add_argument(
        "--native", type=Path, help="measure the native issue path built into this folder"
    )
    parser.add_argument("--lanes", type=int, default=8, help="native: lanes (GPUs)")
    parser.add_argument("--slots", type=int, default=2, help="native: slots per lane")
    parser.add_argument(
        "--floor",
        action="store_true",
        help="native: no harness, the issue callback completes the whole query in one call "
        "(LoadGen's own per-sample completion cost, which any SUT pays)",
    )
    parser.add_argument("--host-gib", type=float, default=1024.0, help="8-GPU host memory")
    parser.add_argument(
        "--room", type=float, default=0.25, help="share of host memory that leaves room to spare"
    )
    args = parser.parse_args()
    sizes = sorted(parse_size(text) for text in args.sizes.split(","))

    import mlperf_loadgen  # noqa: F401  (fail here, not in every child)

    print(f"host: {host_facts()}; load average {os.getloadavg()[0]:.2f}")
    native = (args.native.resolve(), args.lanes, args.slots, args.floor) if args.native else None
    print(
        f"Python {platform.python_version()}, LoadGen Offline PerformanceOnly, "
        + (
            (
                "native library, LoadGen floor (the query completed in one call), "
                if args.floor
                else f"native issue path ({args.lanes} lanes × {args.slots} ready slots), "
            )
            if native
            else "fast-issue SUT, null engine, "
        )
        + f"QSL {PERFORMANCE_COUNT} samples, batches of {args.chunk}, trace off, "
        f"accuracy log off; Python GC {'off' if args.no_gc else 'on'}; one subprocess per N"
        + (f", median of {args.repeats} runs" if args.repeats > 1 else ""),
        flush=True,
    )
    results: list[dict[str, Any]] = []
    for samples in sizes:
        if results:
            last = results[-1]
            per_sample = (last["vmhwm"] - last["base_rss"]) / last["samples"]
            predicted = (last["base_rss"] + per_sample * samples) / GIB
            if predicted > args.max_gib:
                print(
                    f"N={samples:,}: skipped, predicted peak {predicted:.1f} GiB > "
                    f"{args.max_gib:g} GiB (and every larger size)"
                )
                break
        runs = [run_child(samples, args.chunk, not args.no_gc, native) for _ in range(args.repeats)]
        result = median_result(runs)
        results.append(result)
        print(
            f"N={samples:,}: issued {result['issued']:,} in one query (LoadGen generated "
            f"{result['generated_samples_per_query']}), to callback {result['t_to_entry']:.2f} s,"
            f" callback {result['t_callback']:.2f} s, test {result['t_total']:.2f} s, "
            f"peak {result['vmhwm'] / GIB:.2f} GiB, {result['sampler_readings']} RSS readings",
            flush=True,
        )
    if results and native:
        report_native(results, args)
    elif results:
        report(results, args)


if __name__ == "__main__":
    main()

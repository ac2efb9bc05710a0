"""Reference backend benchmarks (prints figures and ratios; no assertions).

1. LoadGen efficiency: Offline samples/s through LoadGen (`mlorch up ... -s Offline`) against raw
   onnxruntime throughput of the same image, model, batch and threads. Target ratio ≥ 0.95.
2. Orchestration overhead with a warm image: `up --quick` wall time minus the LoadGen test
   durations, per test. Target ≤ 5 s per test.

Usage: python benchmarks/reference_overhead.py [--seconds 30] [--device cpu]
Needs a running Docker engine (and the local base image where no registry is reachable).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from contract.protocol import THROUGHPUT_PREFIX, last_json_line
from orchestrator.config import Device
from orchestrator.console import Terminal
from orchestrator.engine.client import DockerEngine
from orchestrator.engine.container import run_to_completion
from orchestrator.images.build import ensure_image
from orchestrator.images.catalog import get_backend
from orchestrator.images.containers import Identity, throughput_spec


def mlorch_up(*args: str, cwd: Path) -> dict:
    command = [sys.executable, "-m", "orchestrator", "-q", "up", "reference", *args]
    started = time.monotonic()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    manifest = json.loads(next((cwd / "runs").glob("*/manifest.json")).read_text())
    manifest["process_seconds"] = elapsed
    return manifest


def raw_throughput(
    engine: DockerEngine,
    image: str,
    model: Path,
    cache: Path,
    count: int,
    device: Device,
    seconds: float,
) -> dict:
    spec = throughput_spec(
        get_backend("reference"), image, model=model, cache=cache, count=count, device=device,
        seconds=seconds, user=Identity.current().container_user,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        outcome = run_to_completion(
            engine,
            spec,
            timeout_s=seconds * 5 + 120,
            log_file=Path(tmp) / "log",
            on_line=lambda _line: None,
            what="raw throughput",
        )
    found = last_json_line(THROUGHPUT_PREFIX, outcome.log_tail)
    if found is None:
        raise RuntimeError(f"the throughput container printed no result:\n{outcome.log_tail}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--seconds", type=float, default=30.0, help="length of each throughput measurement"
    )
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = parser.parse_args()
    device = Device(args.device)
    terminal = Terminal(quiet=True)
    engine = DockerEngine.connect()
    image = ensure_image(engine, get_backend("reference"), device, None, None, terminal)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        # Warm everything (assets, preprocessing) and measure the orchestration overhead.
        (work / "warm").mkdir()
        mlorch_up(
            "--device",
            device.value,
            "--quick",
            "-s",
            "Offline",
            "-m",
            "PerformanceOnly",
            cwd=work / "warm",
        )
        (work / "overhead").mkdir()
        run = mlorch_up("--device", device.value, "--quick", cwd=work / "overhead")
        tests = run["tests"]
        loadgen_s = sum(t["loadgen_seconds"] for t in tests)
        overhead = (run["process_seconds"] - loadgen_s) / len(tests)

        # LoadGen Offline vs raw onnxruntime on the same image, model, batch and threads.
        (work / "offline").mkdir()
        config = work / "offline.toml"
        raw = raw_throughput(
            engine,
            image.tag,
            Path(run["assets"]["model"]),
            _cache_of(run),
            run["assets"]["count"],
            device,
            args.seconds,
        )
        config.write_text(
            '[run]\nscenarios = ["Offline"]\nmodes = ["PerformanceOnly"]\n'
            f"[run.tuning]\noffline_expected_qps = {raw['samples_per_second']:.2f}\n"
            f"[run.quick]\nmin_duration_ms = {int(args.seconds * 1000)}\n"
        )
        offline = mlorch_up(
            "--device", device.value, "--quick", "--config", str(config), cwd=work / "offline"
        )
        loadgen_qps = offline["tests"][0]["result"]["value"]

    ratio = loadgen_qps / raw["samples_per_second"]
    rows = [
        ("device", f"{device.value} ({os.cpu_count()} host cores)"),
        ("image", image.tag),
        (
            f"raw onnxruntime (batch {raw['batch']}, {raw['threads']} threads)",
            f"{raw['samples_per_second']:.2f} samples/s",
        ),
        ("LoadGen Offline via mlorch", f"{loadgen_qps:.2f} samples/s"),
        ("ratio LoadGen / raw", f"{ratio:.3f}  (target >= 0.95)"),
        ("up --quick wall time", f"{run['process_seconds']:.1f} s for {len(tests)} tests"),
        ("LoadGen test time (sum)", f"{loadgen_s:.1f} s"),
        ("orchestration overhead per test", f"{overhead:.2f} s  (target <= 5 s)"),
    ]
    for label, value in rows:
        print(f"{label:<40}: {value}")


def _cache_of(run: dict) -> Path:
    from contract.layout import cache_key
    from orchestrator.paths import cache_dir

    return (
        cache_dir()
        / "preprocessed"
        / cache_key(Path(run["assets"]["dataset"]), run["assets"]["count"])
    )


if __name__ == "__main__":
    main()

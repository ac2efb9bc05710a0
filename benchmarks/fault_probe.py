"""The fault probe of `up --resume` (prints figures; no assertions).

Per fault (SIGKILL, SIGTERM, the Docker engine stopped, the runs disk filled) and per phase of a
quick run (the image build, preparation, a performance test, a compliance audit, a later test;
for the build phase the image is first removed from the engine): the run is
faulted at that phase, the fault is repaired (engine started again, disk freed), and
`mlorch up --resume RUN` finishes it. Counted: exit codes, runs that resumed to complete with the
structure of an uninterrupted run, containers left behind; and the time lost against an
uninterrupted run of the same plan.

Everything runs on a private dockerd in its own network namespace (tests/support/private_engine)
with the runs folder on a 256 MiB tmpfs, so stopping the engine or filling the disk harms
nothing else. Needs root, a running shared engine with the reference CPU image built (one
`mlorch up reference --device cpu --quick` first) and the local base image.

Usage (from the repository root): python -m benchmarks.fault_probe [--faults kill,term,engine,disk]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.images.catalog import LOCAL_BASE
from tests.support.private_engine import PrivateEngine, running_private_engine

PLAN = ("up", "reference", "--device", "cpu", "--quick", "-s", "SingleStream", "-s", "Offline",
        "-m", "PerformanceOnly", "--compliance")  # fmt: skip
# phase → the stderr line that starts it (and whether a SUT container must be running first)
PHASES = {
    "build": ("==> building", False),  # the image removed from the engine first: it is built
    "preparation": ("==> pulling base image", False),
    "test": ("==> [1/4]", True),
    "audit": ("==> [2/4]", True),
    "later test": ("==> [3/4]", True),
}
FAULTS = ("kill", "term", "engine", "disk")
WAIT_S = 600


@dataclass
class Probe:
    fault: str
    phase: str
    code: int | None = None
    error: str = ""
    resumed_code: int | None = None
    complete: bool = False
    same_structure: bool = False
    left_after_fault: int = 0
    left_after_resume: int = 0
    seconds: float = 0.0


class Run:
    """One mlorch in the background, its stderr read line by line."""

    def __init__(self, args: tuple[str, ...], cwd: Path, env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", *args], cwd=cwd, text=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env={**os.environ, "COLUMNS": "200", **env},
        )  # fmt: skip
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()

    def wait_for_line(self, start: str, timeout: float = WAIT_S) -> bool:
        with self.changed:
            return self.changed.wait_for(
                lambda: (
                    any(line.startswith(start) for line in self.lines)
                    or self.process.poll() is not None
                ),
                timeout,
            ) and any(line.startswith(start) for line in self.lines)

    def finish(self) -> int:
        code = self.process.wait(timeout=WAIT_S)
        self.reader.join(30)
        return code

    @property
    def error(self) -> str:
        return next((line for line in self.lines if line.startswith("error:")), "")


def _structure(manifest: dict[str, Any]) -> list[tuple[str, ...]]:
    tests = [(t["scenario"], t["mode"], t["status"]) for t in manifest["tests"]]
    audits = [(a["scenario"], a["test"], a["status"]) for a in manifest["compliance"]]
    return sorted(tests) + sorted(audits)


def _manifest(runs: Path) -> dict[str, Any]:
    [path] = list(runs.glob("*/manifest.json"))
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _wait_for_sut(engine: PrivateEngine, run: Run) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and run.process.poll() is None:
        if any(c.status == "running" for c in engine.containers(all=True)):
            time.sleep(1.5)
            return
        time.sleep(0.2)


def _forget_image(engine: PrivateEngine) -> None:
    """Remove the SUT image from the private engine, so that the next `up` builds it."""
    client = engine.client()
    try:
        for image in client.images.list("mlorch/reference-cpu"):
            client.images.remove(image.id, force=True)
    finally:
        client.close()


def _fill(folder: Path) -> None:
    with (folder / "filler").open("wb") as handle, contextlib.suppress(OSError):
        while True:
            os.write(handle.fileno(), bytes(1 << 16))


def probe(engine: PrivateEngine, disk: Path, fault: str, phase: str,
          expected: list[tuple[str, ...]]) -> Probe:  # fmt: skip
    result = Probe(fault, phase)
    work = disk / f"{fault}-{phase.replace(' ', '-')}"
    work.mkdir()
    env = {**engine.env, "MLORCH_MIN_FREE_GIB": "0"}
    marker, needs_sut = PHASES[phase]
    if phase == "build":
        _forget_image(engine)
    started = time.monotonic()
    run = Run(PLAN, work, env)
    if not run.wait_for_line(marker):
        run.finish()
        result.error = f"never reached {phase}: {run.error}"
        return result
    if needs_sut:
        _wait_for_sut(engine, run)
    if phase == "build":
        time.sleep(1)  # into the build's steps
    if fault == "kill":
        run.process.send_signal(signal.SIGKILL)
    elif fault == "term":
        run.process.send_signal(signal.SIGTERM)
    elif fault == "engine":
        engine.stop()
    else:
        _fill(disk)
    result.code = run.finish()
    result.error = run.error
    if fault == "engine":
        engine.start()
    if fault == "disk":
        (disk / "filler").unlink()
    result.left_after_fault = len(engine.containers(all=True))
    if result.code == 0:  # the fault did not stop it
        result.error = "the run completed despite the fault (the room it needed was free)"
        shutil.rmtree(work, ignore_errors=True)
        return result
    run_id = _manifest(work / "runs")["run_id"]
    resumed = Run(("up", "--resume", run_id), work, env)
    result.resumed_code = resumed.finish()
    result.seconds = time.monotonic() - started
    manifest = _manifest(work / "runs")
    result.complete = manifest["status"] == "complete"
    result.same_structure = _structure(manifest) == expected
    result.left_after_resume = len(engine.containers(all=True))
    if resumed.error:
        result.error += f" | resume: {resumed.error}"
    shutil.rmtree(work, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument("--phases", default=",".join(PHASES))
    args = parser.parse_args()
    image = _reference_image()
    with tempfile.TemporaryDirectory() as scratch, running_private_engine() as engine:
        disk = Path(scratch) / "disk"
        disk.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", str(disk)],
                       check=True, timeout=30)  # fmt: skip
        try:
            engine.load_images(LOCAL_BASE, image)
            base = disk / "uninterrupted"
            base.mkdir()
            began = time.monotonic()
            baseline = Run(PLAN, base, {**engine.env, "MLORCH_MIN_FREE_GIB": "0"})
            if baseline.finish() != 0:
                raise SystemExit(f"the uninterrupted run failed: {baseline.error}")
            plain = time.monotonic() - began
            expected = _structure(_manifest(base / "runs"))
            shutil.rmtree(base)
            print(f"uninterrupted run: {plain:.1f} s, {len(expected)} tests and audits")
            print(f"{'fault':<8}{'phase':<13}{'exit':>5}{'resume':>8}{'complete':>10}"
                  f"{'same':>6}{'left':>6}{'lost (s)':>10}  error")  # fmt: skip
            probes = []
            for fault in args.faults.split(","):
                for phase in args.phases.split(","):
                    item = probe(engine, disk, fault, phase, expected)
                    probes.append(item)
                    print(_row(item, plain), flush=True)
            done = sum(p.complete and p.same_structure for p in probes)
            left = sum(p.left_after_resume for p in probes)
            print(f"\n{len(probes)} faults tried; {done} resumed to complete with the "
                  f"uninterrupted structure; {left} containers left behind")  # fmt: skip
        finally:
            subprocess.run(["umount", "-l", str(disk)], check=False, timeout=30)


def _row(item: Probe, plain: float) -> str:
    figures = (
        f"{item.fault:<8}{item.phase:<13}{item.code!s:>5}{item.resumed_code!s:>8}"
        f"{item.complete!s:>10}{item.same_structure!s:>6}{item.left_after_resume:>6}"
    )
    return f"{figures}{item.seconds - plain:>10.1f}  {item.error[:110]}"


def _reference_image() -> str:
    listed = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", "mlorch/reference-cpu"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    tags = [line for line in listed.stdout.split() if line]
    if not tags:
        raise SystemExit("no mlorch/reference-cpu image: run `mlorch up reference --quick` first")
    return tags[0]


if __name__ == "__main__":
    main()

"""`mlorch up reference reference --device cpu --quick -s Offline`: two real runs, one after the
other, then the comparison report (real dockerd, containers and LoadGen)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.engine.client import DockerEngine
from orchestrator.report.build import build_comparison
from tests.engine.conftest import mlorch

pytestmark = pytest.mark.engine


def test_two_backends_then_a_report(tmp_path: Path, engine: DockerEngine) -> None:
    result = mlorch(
        "up",
        "reference",
        "reference",
        "--device",
        "cpu",
        "--quick",
        "-s",
        "Offline",
        cwd=tmp_path,
        timeout=1500,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    runs = tmp_path / "runs"
    manifests = sorted(runs.glob("*/manifest.json"))
    assert len(manifests) == 2
    data = [json.loads(m.read_text()) for m in manifests]
    assert [d["status"] for d in data] == ["complete", "complete"]
    assert data[0]["assets"] == data[1]["assets"]  # the same (synthetic) assets
    assert data[0]["spec"]["profile"] == data[1]["spec"]["profile"] == "quick"
    [report] = runs.glob("compare-*")
    page = (report / "report.html").read_text()
    for d in data:
        assert d["run_id"] in page
        assert d["run_id"] in result.stdout
    assert "At a glance" in result.stdout
    assert "http://" not in page
    assert "https://" not in page
    # the report's Offline figures are those of the runs' own logs
    comparison = build_comparison([m.parent for m in manifests])
    [offline] = comparison.scenarios
    assert offline.scenario == "Offline"
    for cell, d in zip(offline.rows[0].cells, data, strict=True):
        record = next(t for t in d["tests"] if t["mode"] == "PerformanceOnly")
        assert cell.value == pytest.approx(record["result"]["value"])
        assert cell.text in page
    assert sorted(p.name for p in (report / "plots").iterdir()) == [
        "offline-latency.svg",
        "offline-power.svg",  # "no GPU power in any run" on a host without NVML, said in the plot
        "offline-result.svg",
        "offline-utilisation.svg",  # host CPU over time, the LoadGen windows marked
    ]

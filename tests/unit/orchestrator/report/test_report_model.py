"""The comparison model on real run folders (golden copies of `mlorch up reference --quick`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import ConfigError
from orchestrator.report.build import build_comparison, iter_cells
from orchestrator.report.loading import NotStarted
from orchestrator.report.model import Cell, Comparison, Row, ScenarioSection, fmt
from orchestrator.results.loadgen_log import parse_summary_text
from orchestrator.results.manifest import resolve_run
from tests.support.report_fixtures import RUN_A, RUN_B, RUN_C, perf_dir, write_telemetry

SCENARIOS = ("SingleStream", "MultiStream", "Server", "Offline")


@pytest.fixture
def runs(golden: Path) -> Path:
    return golden / "runs"


def detail_value(folder: Path, key: str) -> Any:
    """A value straight from the detail log's JSON lines (independent of the product's parser)."""
    found = None
    for line in (folder / "mlperf_log_detail.txt").read_text().splitlines():
        if line.startswith(":::MLLOG "):
            entry = json.loads(line[len(":::MLLOG ") :])
            if entry.get("key") == key:
                found = entry["value"]
    return found


def section(comparison: Comparison, scenario: str) -> ScenarioSection:
    return next(s for s in comparison.scenarios if s.scenario == scenario)


def row(found: ScenarioSection, key: str) -> Row:
    return next(r for r in found.rows if r.key == key)


@pytest.fixture
def a_vs_b(runs: Path) -> Comparison:
    return build_comparison([runs / RUN_A, runs / RUN_B], generated="test")


def test_runs_are_summarised(a_vs_b: Comparison) -> None:
    a, b = a_vs_b.runs
    assert (a.label, a.run_id, a.backend, a.device, a.status) == (
        "A",
        RUN_A,
        "reference",
        "cpu",
        "complete",
    )
    assert (b.label, b.run_id) == ("B", RUN_B)
    assert a.quick
    assert a.synthetic
    assert [s.scenario for s in a_vs_b.scenarios] == list(SCENARIOS)
    assert any("quick profile" in note for note in a_vs_b.notes)
    assert any("synthetic assets" in note for note in a_vs_b.notes)


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize(
    ("key", "percentile"),
    [("p50", "50.00"), ("p90", "90.00"), ("p99", "99.00"), ("p99.9", "99.90")],
)
def test_latency_percentiles_equal_the_detail_log(
    runs: Path, a_vs_b: Comparison, scenario: str, key: str, percentile: str
) -> None:
    cells = row(section(a_vs_b, scenario), key).cells
    for run, cell in zip((RUN_A, RUN_B), cells, strict=True):
        folder = perf_dir(runs, run, scenario)
        log_key = (
            f"result_{percentile}_percentile_per_query_latency_ns"
            if scenario == "MultiStream"
            else f"result_{percentile}_percentile_latency_ns"
        )
        assert cell.value == pytest.approx(detail_value(folder, log_key) / 1e6, rel=1e-12)
        assert cell.text == fmt(cell.value)


def test_headline_equals_the_summary(runs: Path, a_vs_b: Comparison) -> None:
    """The result row agrees with LoadGen's own summary file (another source than the detail):
    Server and Offline their throughput, SingleStream the early-stopping estimate the summary
    prints (the figure the checker reads), with the raw p90 in its note."""
    summary_keys = {
        "Server": ("Completed samples per second", 1.0),
        "Offline": ("Samples per second", 1.0),
    }
    for scenario, (key, scale) in summary_keys.items():
        cells = row(section(a_vs_b, scenario), "result").cells
        for run, cell in zip((RUN_A, RUN_B), cells, strict=True):
            text = (perf_dir(runs, run, scenario) / "mlperf_log_summary.txt").read_text()
            summary = parse_summary_text(text)
            assert cell.value == pytest.approx(float(summary[key]) * scale, rel=5e-3)
            verdict = summary["Result is"]
            assert cell.badge == verdict
    cells = row(section(a_vs_b, "SingleStream"), "result").cells
    for run, cell in zip((RUN_A, RUN_B), cells, strict=True):
        text = (perf_dir(runs, run, "SingleStream") / "mlperf_log_summary.txt").read_text()
        estimate = text.split("Early stopping 90.0th percentile estimate:")[1].split()[0]
        assert cell.value == pytest.approx(int(estimate) / 1e6)
        p90 = parse_summary_text(text)["90.0th percentile latency (ns)"]
        assert f"raw p90 latency {fmt(int(p90) / 1e6)} ms" in cell.note
        assert cell.badge == parse_summary_text(text)["Result is"]
    # MultiStream ran 8 queries: no estimate (LoadGen logs 0), which the checker would refuse
    ms = row(section(a_vs_b, "MultiStream"), "result").cells[0]
    assert (ms.text, ms.value, ms.badge) == ("no estimate", None, "INVALID")
    assert "662 queries" in ms.note


def test_throughput_and_early_stopping_come_from_the_log(runs: Path, a_vs_b: Comparison) -> None:
    offline = row(section(a_vs_b, "Offline"), "throughput").cells[0]
    assert offline.value == detail_value(
        perf_dir(runs, RUN_A, "Offline"), "result_samples_per_second"
    )
    single = row(section(a_vs_b, "SingleStream"), "throughput").cells[1]
    assert single.value == detail_value(
        perf_dir(runs, RUN_B, "SingleStream"), "result_qps_with_loadgen_overhead"
    )
    early = row(section(a_vs_b, "SingleStream"), "early_stopping").cells[0]
    assert (early.text, early.value) == ("met", None)  # its estimate is the headline
    assert "90.0th percentile estimate" in early.note
    # MultiStream's early stopping was not met: LoadGen logs 0 there, the report says "not met"
    ms_early = row(section(a_vs_b, "MultiStream"), "early_stopping").cells[0]
    assert detail_value(perf_dir(runs, RUN_A, "MultiStream"), "early_stopping_latency_ms") == 0
    assert (ms_early.text, ms_early.value) == ("not met", None)
    assert "662 queries" in ms_early.note
    # LoadGen reports no samples/s for MultiStream: n/a, not 0
    ms_rate = row(section(a_vs_b, "MultiStream"), "throughput").cells[0]
    assert (ms_rate.text, ms_rate.value) == ("n/a", None)


def test_speedups_are_relative_to_the_first_run(a_vs_b: Comparison) -> None:
    offline = row(section(a_vs_b, "Offline"), "result")
    a, b = offline.cells
    assert a.value is not None
    assert b.value is not None
    assert offline.speedups[0] is None
    ratio = offline.speedups[1]
    assert ratio is not None
    assert ratio.value == pytest.approx(b.value / a.value)  # throughput: higher is better
    assert ratio.text == f"{b.value / a.value:.2f}×"
    latency = row(section(a_vs_b, "SingleStream"), "p90")
    a, b = latency.cells
    assert a.value is not None
    assert b.value is not None
    speedup = latency.speedups[1]
    assert speedup is not None
    assert speedup.value == pytest.approx(a.value / b.value)  # latency: lower is better
    assert speedup.tone == ("good" if a.value / b.value >= 1.02 else "bad")
    # the overview repeats each scenario's headline with the same ratio
    overview = next(r for r in a_vs_b.overview if r.key == "Offline.result")
    assert overview.cells == offline.cells
    assert overview.speedups == offline.speedups


def test_invalid_results_carry_their_reasons(a_vs_b: Comparison) -> None:
    server = section(a_vs_b, "Server")
    validity = row(server, "validity").cells[0]
    assert (validity.text, validity.tone) == ("INVALID", "bad")
    reasons = server.reasons[0]
    assert "performance constraints not satisfied" in reasons
    assert any(r.startswith("early stopping not satisfied: Run unsuccessful") for r in reasons)
    assert row(server, "result").cells[0].badge == "INVALID"
    offline = section(a_vs_b, "Offline")
    assert row(offline, "validity").cells[0].text == "VALID"
    assert offline.reasons == ((), ())


def test_accuracy_and_agreement(runs: Path, a_vs_b: Comparison) -> None:
    offline = section(a_vs_b, "Offline")
    line = (runs / RUN_A / "reference" / "Offline" / "accuracy" / "accuracy.txt").read_text()
    assert line.startswith("accuracy=100.000%, good=64, total=64")
    accuracy = row(offline, "accuracy").cells[0]
    assert (accuracy.text, accuracy.value) == ("100.000", 100.0)
    assert row(offline, "accuracy_images").cells[0].text == "64"
    agreement = row(offline, "fp32_agreement").cells[0]
    assert (agreement.text, agreement.value) == ("n/a", None)  # the reference reports none


def test_settings_that_differ(a_vs_b: Comparison) -> None:
    differing = {s.key: s.values for s in a_vs_b.differing_settings}
    assert differing == {"threads": ("CPU count", "1"), "max batch size": ("32", "8")}
    full = {s.key: s.values for s in a_vs_b.settings}
    assert full["precision"] == ("fp32", "fp32")
    assert full["base image"] == ("mlorch/base:bookworm",) * 2
    assert full["pip onnxruntime"] == ("1.31.1",) * 2
    assert full["LoadGen"] == ("6.0.17",) * 2
    offline = {s.key: s.values for s in section(a_vs_b, "Offline").differing_settings}
    assert offline == {"harness.threads": ("2", "1"), "harness.max_batchsize": ("32", "8")}


def test_no_telemetry_is_said(a_vs_b: Comparison) -> None:
    offline = section(a_vs_b, "Offline")
    telemetry = row(offline, "telemetry")
    assert [c.text for c in telemetry.cells] == ["no telemetry", "no telemetry"]
    plot = next(p for p in offline.plots if p.slug == "offline-telemetry")
    assert plot.empty == "no telemetry in any run"


def test_missing_scenario_and_interrupted_run(runs: Path) -> None:
    comparison = build_comparison([runs / RUN_A, runs / RUN_C], generated="test")
    c = comparison.runs[1]
    assert c.status == "interrupted"
    assert [s.scenario for s in comparison.scenarios] == list(SCENARIOS)
    for scenario in ("SingleStream", "MultiStream"):
        found = section(comparison, scenario)
        assert found.presence[1].text == "not run"
        for cells in (r.cells for r in found.rows):
            assert cells[1].value is None
            assert cells[1].text == "not run"
        latency = next(p for p in found.plots if p.kind == "line" and "latency" in p.slug)
        assert latency.lines[1].points == ()
        assert latency.lines[1].note == "not run"
    offline = section(comparison, "Offline")
    assert offline.presence[1].text == "ok"
    assert row(offline, "result").cells[1].value is not None
    server = section(comparison, "Server")
    assert server.presence[1].text in ("interrupted", "not reached")
    assert row(server, "result").cells[1].value is None
    assert row(server, "accuracy").cells[1].text in ("interrupted", "not reached")
    assert any("Not every run completed: B (interrupted)" in n for n in comparison.notes)


def test_missing_is_never_zero(runs: Path) -> None:
    comparison = build_comparison([runs / RUN_A, runs / RUN_C], generated="test")
    for cell in iter_cells(comparison):
        if cell.value is None:
            assert cell.text not in ("0", "0.000", "0.0", "")
            assert cell.tone in ("missing", "bad", "warn", "good")


def test_a_backend_that_never_started(runs: Path) -> None:
    comparison = build_comparison(
        [runs / RUN_A, NotStarted("dell-trt", "cpu", "engine unavailable")], generated="t"
    )
    run = comparison.runs[1]
    assert (run.status, run.error, run.backend) == ("not started", "engine unavailable", "dell-trt")
    cell = row(section(comparison, "Offline"), "result").cells[1]
    assert (cell.text, cell.value) == ("not started", None)


def test_telemetry_figures_and_series(runs: Path, tmp_path: Path) -> None:
    for run in (RUN_A, RUN_B):
        shutil.copytree(runs / run, tmp_path / run)
    summary_a = write_telemetry(
        perf_dir(tmp_path, RUN_A, "Offline"), window=(1.5, 12.75), samples=64, gpus=1
    )
    summary_b = write_telemetry(
        perf_dir(tmp_path, RUN_B, "Offline"), window=(1.0, 6.25), samples=64, gpus=2
    )
    comparison = build_comparison([tmp_path / RUN_A, tmp_path / RUN_B], generated="test")
    offline = section(comparison, "Offline")
    energy = row(offline, "gpu_energy").cells
    assert energy[0].value == pytest.approx(summary_a["gpus"]["0"]["energy_j"])
    assert energy[1].value == pytest.approx(
        summary_b["gpus"]["0"]["energy_j"] + summary_b["gpus"]["1"]["energy_j"]
    )
    mean = row(offline, "gpu_power_mean").cells[1]
    assert mean.value == pytest.approx(
        summary_b["gpus"]["0"]["mean_power_w"] + summary_b["gpus"]["1"]["mean_power_w"]
    )
    peak = row(offline, "gpu_power_max").cells[1]
    assert peak.value == max(g["max_power_w"] for g in summary_b["gpus"].values())
    per_joule = row(offline, "samples_per_joule")
    assert [c.value for c in per_joule.cells] == [
        summary_a["samples_per_joule"],
        summary_b["samples_per_joule"],
    ]
    ratio = per_joule.speedups[1]
    assert ratio is not None
    assert ratio.value == pytest.approx(
        summary_b["samples_per_joule"] / summary_a["samples_per_joule"]
    )
    cpu = row(offline, "cpu_util").cells[0]
    assert cpu.value == summary_a["host"]["mean_cpu_util_pct"]
    power = next(p for p in offline.plots if p.slug == "offline-power")
    assert [(b.start, b.end) for b in power.bands] == [(1.5, 12.75), (1.0, 6.25)]
    # two GPUs: the plotted power is their sum at each instant
    _t, watts = power.lines[1].points[len(power.lines[1].points) // 2]
    assert 2 * 250 < watts < 2 * 300
    util = next(p for p in offline.plots if p.slug == "offline-utilisation")
    assert {line.label for line in util.lines} == {
        "A GPU SM",
        "A host CPU",
        "B GPU SM",
        "B host CPU",
    }
    assert util.y_max == 100.0
    # the other scenarios still have none, and say so
    assert row(section(comparison, "Server"), "telemetry").cells[0].text == "no telemetry"


def test_cpu_only_telemetry_has_no_gpu_figures(runs: Path, tmp_path: Path) -> None:
    shutil.copytree(runs / RUN_A, tmp_path / RUN_A)
    write_telemetry(perf_dir(tmp_path, RUN_A, "Offline"), window=(1.0, 5.0), samples=64, gpus=0)
    comparison = build_comparison([tmp_path / RUN_A, runs / RUN_B], generated="test")
    offline = section(comparison, "Offline")
    assert row(offline, "gpu_energy").cells[0].text == "no GPU"
    assert row(offline, "samples_per_joule").cells[0].text == "no GPU"
    assert row(offline, "cpu_util").cells[0].value is not None
    assert row(offline, "cpu_util").cells[1].text == "no telemetry"


def test_unreadable_telemetry_is_flagged_not_fatal(runs: Path, tmp_path: Path) -> None:
    shutil.copytree(runs / RUN_A, tmp_path / RUN_A)
    folder = perf_dir(tmp_path, RUN_A, "Offline") / "telemetry"
    folder.mkdir()
    (folder / "gpu.csv").write_text("t_s,gpu,power_w\n0,0,12\n")  # columns missing
    comparison = build_comparison([tmp_path / RUN_A, runs / RUN_B], generated="test")
    cell: Cell = row(section(comparison, "Offline"), "gpu_energy").cells[0]
    assert (cell.text, cell.tone) == ("unreadable", "bad")
    assert "missing column(s)" in cell.note


def test_dell_trt_shaped_records_are_shown(runs: Path, tmp_path: Path) -> None:
    """dell-trt runs add spec.harness, recipe guards and fp32_agreement: all appear."""
    shutil.copytree(runs / RUN_B, tmp_path / RUN_B)
    manifest_path = tmp_path / RUN_B / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["spec"]["backend"] = "dell-trt"
    manifest["spec"]["harness"] = {
        "profile": "cpu-twin",
        "source": "mlorch",
        "reason": "no GPU",
        "gpus": 0,
        "overrides": ["Offline.batch_size=16"],
        "scenarios": {
            "Offline": {
                "batch_size": 16,
                "copy_streams": 2,
                "inference_streams": 1,
                "deque_timeout_us": 0,
                "use_graphs": False,
            }
        },
    }
    manifest["recipe"] = {
        "artifact_key": "abc123",
        "guards": [{"encoding": "U8S8", "fraction": 0.998, "n": 500}],
    }
    manifest_path.write_text(json.dumps(manifest))
    accuracy = tmp_path / RUN_B / "reference" / "Offline" / "accuracy" / "result.json"
    result = json.loads(accuracy.read_text())
    result["fp32_agreement"] = {"agree": 63, "total": 64, "percent": 98.438}
    accuracy.write_text(json.dumps(result))
    for record in manifest["tests"]:
        record.pop("result", None)  # the per-test result.json is then the source
        if record["scenario"] == "Offline":
            record["harness"]["devices"] = [{"name": "cpu", "slots": 2, "batches": 4}]
    manifest_path.write_text(json.dumps(manifest))
    comparison = build_comparison([runs / RUN_A, tmp_path / RUN_B], generated="test")
    agreement = row(section(comparison, "Offline"), "fp32_agreement").cells
    assert agreement[0].text == "n/a"
    assert (agreement[1].text, agreement[1].value, agreement[1].note) == (
        "98.438",
        98.438,
        "63 of 64 agree",
    )
    differing = {s.key: s.values for s in comparison.differing_settings}
    assert differing["precision"] == ("fp32", "int8")
    assert differing["harness profile"] == ("—", "cpu-twin")
    assert differing["max batch size"] == ("32", "harness settings")  # not the reference's flag
    assert differing["accuracy guard U8S8"] == ("—", "agreement 99.80 % of 500")
    offline = {s.key: s.values for s in section(comparison, "Offline").differing_settings}
    assert offline["settings.batch_size"] == ("—", "16")
    assert offline["harness.devices.0.name"] == ("—", "cpu")  # nested harness.json records


def test_resolve_run(runs: Path, tmp_path: Path) -> None:
    assert resolve_run(RUN_A, runs) == (runs / RUN_A).resolve()
    assert resolve_run(str(runs / RUN_B), tmp_path) == (runs / RUN_B).resolve()
    with pytest.raises(ConfigError, match="unknown run '20990101-nope'") as exc:
        resolve_run("20990101-nope", runs)
    assert exc.value.exit_code == 2
    with pytest.raises(ConfigError, match="not a run folder"):
        resolve_run(str(tmp_path), runs)


@pytest.mark.parametrize(
    ("value", "text"),
    [(90123.4, "90,123"), (623.67, "623.7"), (2.95024, "2.950"), (0.39121, "0.3912"), (0, "0.000")],
)
def test_fmt(value: float, text: str) -> None:
    assert fmt(value) == text


def test_runs_are_compared_answer_by_answer(runs: Path, tmp_path: Path) -> None:
    """Over the whole accuracy run, not only the guard images: how often each run's top-1
    answer equals the first run's, sample by sample (qsl index)."""
    import numpy as np

    shutil.copytree(runs / RUN_B, tmp_path / RUN_B)
    log = tmp_path / RUN_B / "reference" / "Offline" / "accuracy" / "mlperf_log_accuracy.json"
    entries = json.loads(log.read_text())
    for entry in entries[:4]:  # four answers differ
        label = np.frombuffer(bytes.fromhex(entry["data"]), np.float32)[0]
        entry["data"] = np.array([label + 1], np.float32).tobytes().hex().upper()
    log.write_text(json.dumps(entries))
    comparison = build_comparison([runs / RUN_A, tmp_path / RUN_B], generated="test")
    same = row(section(comparison, "Offline"), "same_answers").cells
    assert same[0].text == "baseline"
    assert (same[1].value, same[1].note) == (100 * 60 / 64, "60 of 64 samples answered alike")
    untouched = row(section(comparison, "SingleStream"), "same_answers").cells[1]
    assert untouched.value == 100.0

    manifest_path = tmp_path / RUN_B / "manifest.json"  # another dataset: not comparable
    manifest = json.loads(manifest_path.read_text())
    manifest["assets"]["count"] = 32
    manifest_path.write_text(json.dumps(manifest))
    comparison = build_comparison([runs / RUN_A, tmp_path / RUN_B], generated="test")
    other = row(section(comparison, "Offline"), "same_answers").cells[1]
    assert (other.text, other.note) == ("n/a", "the runs used different datasets or counts")
    alone = build_comparison([runs / RUN_A], generated="test")
    assert all(r.key != "same_answers" for r in section(alone, "Offline").rows)

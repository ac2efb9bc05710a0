"""The comparison's rows: one figure per run and row, each a `Cell` formatted once, and the
settings of runs and scenarios.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import ResultError
from orchestrator.report.loading import (
    _absent,
    _early_stopping_text,
    _float,
    _host_line,
    _latency_key,
    _ns_to_ms,
    _percentile_name,
    _Run,
    _Test,
    reasons_of,
)
from orchestrator.report.model import (
    ACCURACY,
    DASH,
    ENERGY,
    LABELS,
    PERFORMANCE,
    TABLE_PERCENTILES,
    VOLATILE_HARNESS_KEYS,
    Better,
    Cell,
    SettingRow,
    fmt,
    missing,
    number,
)
from orchestrator.results.files import read_json_object
from orchestrator.results.loadgen_log import (
    ACCURACY_LOG,
)

# --- rows ------------------------------------------------------------------------------------

PerfFigure = Callable[[_Test], Cell]


def _headline(test: _Test) -> Cell:
    """The result the checker reads: SingleStream/MultiStream the early-stopping estimate (the
    raw percentile is a Latency row and the note), Server/Offline the throughput."""
    result, detail = test.result, test.detail
    assert result is not None
    assert detail is not None
    badge = "" if result.valid is None else ("VALID" if result.valid else "INVALID")
    notes = list(reasons_of(test)) if result.valid is False else []
    if result.percentile_metric is not None and result.percentile_ms is not None:
        raw = f"{result.percentile_metric} {fmt(result.percentile_ms)} ms"
        notes.append(f"early-stopping estimate; raw {raw}")
    note = "; ".join(notes)
    if result.value is None and result.percentile_metric is not None:
        why = _early_stopping_text(detail) or "LoadGen logged no early-stopping estimate"
        return Cell("no estimate", None, "; ".join([why, *notes]), "bad", badge)
    return number(result.value, note=note, badge=badge, why="no result logged")


def _validity(test: _Test) -> Cell:
    result = test.result
    assert result is not None
    if result.valid is None:
        return missing(DASH, "LoadGen did not judge this test")
    if result.valid:
        return Cell("VALID", None, "", "good")
    return Cell("INVALID", None, "; ".join(reasons_of(test)), "bad")


THROUGHPUT_KEYS = {
    "Offline": "result_samples_per_second",
    "Server": "result_completed_samples_per_sec",
    "SingleStream": "result_qps_with_loadgen_overhead",  # one sample per query
}


def _throughput(scenario: str) -> PerfFigure:
    def figure(test: _Test) -> Cell:
        assert test.detail is not None
        key = THROUGHPUT_KEYS.get(scenario)
        if key is None:
            return missing("n/a", f"LoadGen reports no samples/s for {scenario}")
        return number(_float(test.detail.get(key)), why=f"{key} not logged")

    return figure


def _detail_number(key: str, *, integer: bool = False) -> PerfFigure:
    def figure(test: _Test) -> Cell:
        assert test.detail is not None
        return number(_float(test.detail.get(key)), why=f"{key} not logged", integer=integer)

    return figure


def _latency(scenario: str, name: str) -> PerfFigure:
    def figure(test: _Test) -> Cell:
        assert test.detail is not None
        key = _latency_key(scenario, name, test.detail)
        return number(_ns_to_ms(test.detail.get(key)), why=f"{key} not logged")

    return figure


def _early_stopping(scenario: str) -> PerfFigure:
    def figure(test: _Test) -> Cell:
        detail = test.detail
        assert detail is not None
        met = detail.get("early_stopping_met")
        text = _early_stopping_text(detail)
        if scenario in ("SingleStream", "MultiStream", "Server"):
            # SingleStream/MultiStream: the estimate itself is the headline result
            if met is None:
                return missing(DASH, "early_stopping_met not logged")
            return Cell("met", None, text, "good") if met else Cell("not met", None, text, "bad")
        return missing("n/a", "Offline has no early-stopping estimate")

    return figure


def _loadgen_seconds(test: _Test) -> Cell:
    return number(_float(test.record.get("loadgen_seconds")), why="the harness did not time it")


def _telemetry_cell(test: _Test) -> Cell | None:
    if test.telemetry_problem:
        return Cell("unreadable", None, test.telemetry_problem, "bad")
    if test.telemetry is None:
        return missing("no telemetry", "this test folder has no telemetry/")
    return None


def _gpu_total(field_name: str) -> PerfFigure:
    def figure(test: _Test) -> Cell:
        absent = _telemetry_cell(test)
        if absent is not None:
            return absent
        assert test.telemetry is not None
        if not test.telemetry.gpus:
            return missing("no GPU", "telemetry has no GPU figures")
        return number(test.telemetry.total(field_name), why=f"{field_name} not in summary.json")

    return figure


def _samples_per_joule(test: _Test) -> Cell:
    absent = _telemetry_cell(test)
    if absent is not None:
        return absent
    assert test.telemetry is not None
    if not test.telemetry.gpus:
        return missing("no GPU", "no GPU energy to divide by")
    return number(test.telemetry.samples_per_joule, why="summary.json gives none")


def _cpu_util(test: _Test) -> Cell:
    absent = _telemetry_cell(test)
    if absent is not None:
        return absent
    assert test.telemetry is not None
    return number(test.telemetry.mean_cpu_util_pct, why="summary.json gives none")


@dataclass(frozen=True)
class _RowSpec:
    key: str
    label: str
    figure: PerfFigure
    better: Better | None
    group: str


def _perf_rows(scenario: str, metric: str, better: Better) -> list[_RowSpec]:
    result, latency, test, energy = "Result", "Latency", "Test", ENERGY
    rows = [
        _RowSpec("result", metric, _headline, better, result),
        _RowSpec("validity", "Validity", _validity, None, result),
        _RowSpec("throughput", "Throughput (samples/s)", _throughput(scenario), "higher", result),
    ]
    if scenario == "Server":
        scheduled = _detail_number("result_scheduled_samples_per_sec")
        rows.append(_RowSpec("scheduled", "Scheduled (samples/s)", scheduled, None, result))
    rows.append(_RowSpec("mean", "Mean latency (ms)", _latency(scenario, "mean"), "lower", latency))
    for percentile in TABLE_PERCENTILES:
        figure = _latency(scenario, _percentile_name(percentile))
        label = f"p{percentile:g} latency (ms)"
        rows.append(_RowSpec(f"p{percentile:g}", label, figure, "lower", latency))
    rows += [
        _RowSpec("early_stopping", "Early stopping", _early_stopping(scenario), None, latency),
        _RowSpec(
            "queries", "Queries", _detail_number("result_query_count", integer=True), None, test
        ),
        _RowSpec("loadgen_seconds", "LoadGen time (s)", _loadgen_seconds, None, test),
        _RowSpec(
            "gpu_power_mean",
            "GPU power, mean of all GPUs (W)",
            _gpu_total("mean_power_w"),
            None,
            energy,
        ),
        _RowSpec(
            "gpu_power_max",
            "GPU power, peak of one GPU (W)",
            _gpu_total("max_power_w"),
            None,
            energy,
        ),
        _RowSpec(
            "gpu_energy", "GPU energy in the window (J)", _gpu_total("energy_j"), None, energy
        ),
        _RowSpec("samples_per_joule", "Samples per joule", _samples_per_joule, "higher", energy),
        _RowSpec("cpu_util", "Host CPU, mean (%)", _cpu_util, None, energy),
    ]
    return rows


def _accuracy_cells(
    runs: Sequence[_Run], scenario: str
) -> tuple[list[Cell], list[Cell], list[Cell]]:
    accuracy, scored, agreement = [], [], []
    for run in runs:
        absent = _absent(run, scenario, ACCURACY)
        test = run.tests.get((scenario, ACCURACY))
        if absent is not None or test is None or test.accuracy is None:
            cell = absent or missing("unscored", "no accuracy.txt")
            accuracy.append(cell)
            scored.append(cell)
            agreement.append(cell)
            continue
        percent, good, total = test.accuracy
        accuracy.append(number(percent, decimals=3))
        scored.append(number(float(total), note=f"{good} of {total} correct", integer=True))
        found = test.agreement
        if found and _float(found.get("percent")) is not None:
            agreement.append(
                number(
                    _float(found.get("percent")),
                    note=f"{found.get('agree')} of {found.get('total')} agree",
                    decimals=3,
                )
            )
        else:
            agreement.append(missing("n/a", "this backend reports no FP32 agreement"))
    return accuracy, scored, agreement


def _answers(run: _Run, scenario: str) -> dict[int, int] | None:
    """qsl index → the top-1 label of the run's accuracy test (None: nothing to compare)."""
    from orchestrator.images.catalog import BACKENDS
    from orchestrator.results.accuracy import logged_labels

    test = run.tests.get((scenario, ACCURACY))
    backend = BACKENDS.get(str(run.spec.get("backend")))
    if test is None or test.accuracy is None or backend is None:
        return None
    try:
        return logged_labels(test.folder / ACCURACY_LOG, backend.response_dtype)
    except (OSError, ValueError, ResultError):
        return None


def _same_data(run: _Run, base: _Run) -> bool:
    """Both runs answered the same samples under the same qsl indices: the same kind of
    dataset and size, the same count, each in its dataset's own val_map order."""

    def shape(manifest: dict[str, Any]) -> tuple[Any, ...]:
        assets = manifest.get("assets") or {}
        val_map = assets.get("val_map")  # absent from older manifests: the dataset's own
        own_order = val_map is None or Path(str(val_map)).parent == Path(str(assets.get("dataset")))
        return (assets.get("synthetic"), assets.get("dataset_images"), assets.get("count"),
                own_order)  # fmt: skip

    return shape(run.manifest) == shape(base.manifest) and bool(run.manifest.get("assets"))


def _same_answers_cells(runs: Sequence[_Run], scenario: str) -> list[Cell]:
    """Sample by sample, how often each run's accuracy answers equal the first run's: over the
    whole accuracy run, where the FP32 agreement covers only the guard images."""
    from orchestrator.results.accuracy import label_agreement

    base = _answers(runs[0], scenario)
    first = _absent(runs[0], scenario, ACCURACY)
    cells = [first or missing("baseline", "the runs to its right are compared with this one")]
    for run in runs[1:]:
        absent = _absent(run, scenario, ACCURACY)
        if absent is not None:
            cells.append(absent)
            continue
        if not _same_data(run, runs[0]):  # known from the manifests: no log is read
            cells.append(missing("n/a", "the runs used different datasets or counts"))
            continue
        found = _answers(run, scenario) if base is not None else None
        if base is None or found is None:
            cells.append(missing("n/a", f"no accuracy log to compare (here or in {LABELS[0]})"))
        else:
            same = label_agreement(found, base)
            note = f"{same.agree} of {same.total} samples answered alike"
            cells.append(number(same.percent if same.total else None, note=note, decimals=3))
    return cells


# --- settings --------------------------------------------------------------------------------


def _flat(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flat(f"{prefix}.{key}" if prefix else str(key), inner, out)
    elif isinstance(value, list | tuple) and any(isinstance(v, dict | list) for v in value):
        for index, inner in enumerate(value):  # e.g. one record per GPU: devices.0.name …
            _flat(f"{prefix}.{index}", inner, out)
    elif isinstance(value, list | tuple):
        out[prefix] = ", ".join(str(v) for v in value) if value else DASH
    elif value is None:
        out[prefix] = DASH
    else:
        out[prefix] = str(value).lower() if isinstance(value, bool) else str(value)


def _precision(backend: str) -> str:
    from orchestrator.images.catalog import BACKENDS

    definition = BACKENDS.get(backend)
    return definition.input_format if definition is not None else DASH


def _run_settings(run: _Run) -> dict[str, str]:
    """The run-level settings worth comparing: what ran, on which image, host and assets."""
    manifest, spec = run.manifest, run.spec
    out: dict[str, str] = {}
    if run.folder is None:
        return out  # nothing ran: the run card says which backend it was
    out["backend"] = str(spec.get("backend", DASH))
    out["device"] = str(spec.get("device", DASH))
    out["precision"] = _precision(out["backend"])
    out["profile"] = str(spec.get("profile", DASH))
    harness = spec.get("harness") or {}
    out["harness profile"] = str(harness.get("profile", DASH)) if harness else DASH
    if harness.get("overrides"):
        out["harness overrides"] = ", ".join(harness["overrides"])
    if harness:  # dell-trt: batches and threads per scenario, in the harness rows
        out["threads"] = out["max batch size"] = "harness settings"
    else:
        out["threads"] = str(spec.get("threads")) if spec.get("threads") else "CPU count"
        out["max batch size"] = str(spec.get("max_batchsize") or DASH)
    _flat("tuning", spec.get("tuning") or {}, out)
    if spec.get("profile") == "quick":
        _flat("quick", spec.get("quick") or {}, out)
    image = manifest.get("image") or {}
    out["image"] = str(image.get("tag", DASH))
    out["image id"] = str(image.get("id", DASH))[:19]
    out["base image"] = str(image.get("base_image", DASH))
    out["base image id"] = str(image.get("base_image_id", DASH))[:19]
    out["python (image)"] = str(image.get("python", DASH))
    out["LoadGen"] = str(manifest.get("loadgen_version") or DASH)
    out["mlorch"] = str(manifest.get("mlorch_version", DASH))
    for line in image.get("pip_freeze") or []:
        name, sep, version = str(line).partition("==")
        if sep:
            out[f"pip {name.lower()}"] = version
    host = manifest.get("host") or {}
    out["host CPU"] = str(host.get("cpu_model", DASH))
    out["host CPUs"] = str(host.get("cpu_count", DASH))
    out["host memory (GiB)"] = str(host.get("memory_gib", DASH))
    out["GPUs"] = _host_line(host).split(" · ", 1)[1]
    out["NVIDIA driver"] = str(host.get("nvidia_driver") or DASH)
    assets = manifest.get("assets") or {}
    out["assets"] = "synthetic" if assets.get("synthetic") else ("ImageNet" if assets else DASH)
    out["model md5"] = str(assets.get("model_md5", DASH))
    out["images"] = str(assets.get("count", DASH))
    recipe = manifest.get("recipe") or {}
    if recipe:
        out["recipe key"] = str(recipe.get("artifact_key", DASH))
        for guard in recipe.get("guards") or []:
            if isinstance(guard, dict):
                what = guard.get("engine") or guard.get("encoding") or "model"
                out[f"accuracy guard {what}"] = _guard_cell(guard)
    return out


def _guard_cell(guard: dict[str, Any]) -> str:
    """`ratio 0.9981 (pass) · agreement 99.60 % of 500`, from a recorded guard."""
    recorded = guard.get("gate")
    gate: dict[str, Any] = recorded if isinstance(recorded, dict) else {}
    ratio, verdict = _float(gate.get("ratio")), gate.get("verdict")
    fraction = _float(guard.get("fraction"))
    parts = []
    if ratio is not None:
        parts.append(f"accuracy ratio {ratio:.4f} ({verdict})")
    if fraction is not None:
        parts.append(f"agreement {100 * fraction:.2f} % of {guard.get('n', '?')}")
    cell = " · ".join(parts) or DASH
    if guard.get("enforced") is False:
        cell += " (recorded, not used here)"
    return cell


def _user_conf(folder: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        lines = folder.read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            # resnet50.Offline.target_qps → target_qps (the scenario is the section's)
            out[f"user.conf {key.strip().split('.')[-1]}"] = value.strip()
    return out


def _sizing_settings(run: _Run, scenario: str) -> dict[str, str]:
    """Where the scenario's expected rate or latency came from (user, tuned, measured, cached,
    profile), its value and, when tuned, the Server bracket."""
    sizing = (run.manifest.get("sizing") or {}).get(scenario)
    if not isinstance(sizing, dict):
        return {}
    out = {
        "sizing: source": str(sizing.get("source", DASH)),
        f"sizing: {sizing.get('key', 'value')}": f"{sizing.get('value', DASH):g}"
        if isinstance(sizing.get("value"), int | float)
        else DASH,
    }
    bracket = sizing.get("bracket")
    if isinstance(bracket, list) and len(bracket) == 2:
        low, high = (f"{v:g}" if isinstance(v, int | float) else DASH for v in bracket)
        out["sizing: tuned bracket (highest VALID – lowest INVALID)"] = f"{low} – {high}"
    return out


def _scenario_settings(run: _Run, scenario: str) -> dict[str, str]:
    """This scenario's settings only: its sizing, its harness settings, what its SUT recorded
    (dell-trt's settings of the other scenarios left out) and its user.conf."""
    out = _sizing_settings(run, scenario)
    harness = (run.spec.get("harness") or {}).get("scenarios", {}).get(scenario)
    if isinstance(harness, dict):
        _flat("settings", harness, out)
    for mode in (PERFORMANCE, ACCURACY):
        test = run.tests.get((scenario, mode))
        if test is None:
            continue
        record = test.record.get("harness") or read_json_object(test.folder / "harness.json")
        if isinstance(record, dict) and record:
            kept = {k: v for k, v in record.items() if k not in VOLATILE_HARNESS_KEYS}
            read = kept.get("settings")
            if isinstance(read, dict):  # its per-scenario part is the "settings." rows above
                kept["settings"] = {k: v for k, v in read.items() if k != "scenarios"}
            _flat("harness", kept, out)
            out.update(_user_conf(test.folder.parent / "user.conf"))
            break
    return out


def _setting_rows(per_run: Sequence[dict[str, str]]) -> tuple[SettingRow, ...]:
    keys: list[str] = []
    for values in per_run:
        keys += [key for key in values if key not in keys]
    recorded = tuple(bool(values) for values in per_run)
    rows = [SettingRow(key, tuple(v.get(key, DASH) for v in per_run), recorded) for key in keys]
    return tuple(sorted(rows, key=lambda row: not row.differs))  # stable: differing ones first

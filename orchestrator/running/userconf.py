"""user.conf generation from a RunSpec.

LoadGen reads `model.scenario.key = value` lines. The full profile sets only what the rules leave
to the submitter (expected QPS, target latency); `--quick` also shortens durations and counts,
which makes the run invalid for submission, and the file says so in its header.
"""

from __future__ import annotations

from contract.resnet50 import MODEL_NAME, PERFORMANCE_SAMPLE_COUNT
from orchestrator.config import RunSpec, Scenario
from orchestrator.running.plan import offline_target_qps


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def user_conf_entries(spec: RunSpec, scenario: Scenario, total_samples: int) -> dict[str, str]:
    """The key → value pairs of one scenario's user.conf (without the model.scenario prefix)."""
    tuning = spec.tuning
    entries: dict[str, str] = {}
    if scenario is Scenario.OFFLINE:
        entries["target_qps"] = _fmt(offline_target_qps(spec))  # with --quick's headroom
    elif scenario is Scenario.SERVER:
        entries["target_qps"] = _fmt(tuning.server_target_qps)
    elif scenario is Scenario.SINGLE_STREAM:
        entries["target_latency"] = _fmt(tuning.single_stream_expected_latency_ms)
    else:
        entries["target_latency"] = _fmt(tuning.multi_stream_expected_latency_ms)

    # A QSL smaller than the rule's 1024 performance samples (synthetic data, --count) cannot
    # honour the embedded override; LoadGen needs the real size.
    if total_samples < PERFORMANCE_SAMPLE_COUNT:
        entries["performance_sample_count_override"] = str(total_samples)

    if spec.quick_run:
        entries["min_duration"] = str(spec.quick.min_duration_ms)
        entries["min_query_count"] = str(spec.quick.min_query_count(scenario))
    return entries


def render_user_conf(spec: RunSpec, scenario: Scenario, total_samples: int) -> str:
    """The text of user.conf for one scenario."""
    header = [
        f"# mlorch user.conf: {MODEL_NAME} {scenario.value} ({spec.backend}, {spec.device.value})",
        f"# profile: {spec.profile.value}",
    ]
    if spec.quick_run:
        header.append("# QUICK PROFILE: shortened durations/counts, NOT valid for submission")
    lines = [
        f"{MODEL_NAME}.{scenario.value}.{key} = {value}"
        for key, value in user_conf_entries(spec, scenario, total_samples).items()
    ]
    return "\n".join([*header, *lines]) + "\n"

"""The submitter's documents in a tree: measurements.json, each scenario's README.md, src/.

Everything is derived from the run's manifest (backend, device, assets, spec): what the weights
are, how they were transformed, and the `mlorch` command that reproduces the run.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from contract.dell_trt import recipe
from orchestrator import __version__
from orchestrator.assets.model import MODEL_FILE, OFFICIAL_MODELS
from orchestrator.paths import source_root
from orchestrator.results.validity import Validity

GIT_TIMEOUT_S = 10


def measurements(manifest: Mapping[str, Any]) -> dict[str, str]:
    """measurements.json of one run: data types, weights and their transformations."""
    spec = manifest.get("spec") or {}
    backend, device = str(spec.get("backend")), str(spec.get("device"))
    weights = starting_weights(manifest.get("assets") or {})
    if backend == "dell-trt":
        return {
            "input_data_types": "int8",
            "retraining": "No",
            "starting_weights_filename": weights,
            "weight_data_types": "int8",
            "weight_transformations": dell_trt_transformations(manifest, device),
        }
    return {
        "input_data_types": "fp32",
        "retraining": "No",
        "starting_weights_filename": weights,
        "weight_data_types": "fp32",
        "weight_transformations": "none: the ONNX model runs as published (onnxruntime, FP32)",
    }


def starting_weights(assets: Mapping[str, Any]) -> str:
    if assets.get("synthetic"):
        return f"{MODEL_FILE}: mlorch's synthetic random-weight ResNet50-v1.5 (not MLCommons')"
    md5 = assets.get("model_md5")
    source = next((s for s in OFFICIAL_MODELS if s.md5 == md5), None)
    if source is not None:
        return f"{MODEL_FILE} (MLCommons, opset {source.opset}, {source.url}, md5 {md5})"
    name = Path(str(assets.get("model") or MODEL_FILE)).name
    return f"{name} (md5 {md5}; not an MLCommons model)"


def dell_trt_transformations(manifest: Mapping[str, Any], device: str) -> str:
    """NVIDIA's recipe as mlorch applies it, with the encoding the device runs."""
    synthetic = (manifest.get("assets") or {}).get("synthetic")
    calibration = (
        f"every {recipe.SYNTHETIC_CALIBRATION_STRIDE}nd synthetic image"
        if synthetic
        else "the 500 images of the MLCommons calibration list cal_image_list_option_1.txt"
    )
    model = ((manifest.get("recipe") or {}).get("model")) or {}
    method = str(model.get("method") or recipe.CALIBRATION_METHOD)
    if device == "cuda":
        activations = "int8 symmetric (s8s8), built into a strongly typed TensorRT engine"
    else:
        activations = "uint8 asymmetric (u8s8) for onnxruntime's CPU provider"
    return (
        "graph rewrite as in NVIDIA's MLPerf code (background class sliced off the classifier, "
        "softmax and argmax replaced by TopK k=1, opset 17); post-training quantization with "
        "explicit Q/DQ nodes: weights int8 symmetric per output channel, activations "
        f"{activations}, classifier output kept in float; {method} "
        f"calibration on {calibration}; no retraining"
    )


def reproduce_command(manifest: Mapping[str, Any], scenario: str) -> list[str]:
    """The `mlorch up` command line that runs this scenario again the same way."""
    spec = manifest.get("spec") or {}
    assets = manifest.get("assets") or {}
    argv = ["mlorch", "up", str(spec.get("backend")), "--device", str(spec.get("device"))]
    if not assets.get("synthetic"):
        argv += ["--model", "PATH/TO/resnet50_v1.onnx", "--dataset", "PATH/TO/imagenet"]
    if spec.get("dataset_count"):
        argv += ["--count", str(spec["dataset_count"])]
    if spec.get("profile") == "quick":
        argv.append("--quick")
    argv += ["--scenario", scenario]
    for name, flag in (("threads", "--threads"), ("max_batchsize", "--max-batchsize")):
        if spec.get(name) is not None:
            argv += [flag, str(spec[name])]
    if spec.get("harness_profile"):
        argv += ["--harness-profile", str(spec["harness_profile"])]
    for override in spec.get("set_overrides") or []:
        argv += ["--set", str(override)]
    if spec.get("backend") == "dell-trt" and not assets.get("synthetic"):
        argv += ["--calibration-list", "PATH/TO/cal_image_list_option_1.txt"]
    method = (((manifest.get("recipe") or {}).get("model")) or {}).get("method")
    if spec.get("backend") == "dell-trt" and method:  # the method `auto` chose, not `auto`
        argv += ["--calibration", str(method)]
    argv += ["--config", "run.toml"]
    return argv


def run_toml(manifest: Mapping[str, Any]) -> str:
    """The [run] table holding the tuning the run used (its expected rates and latencies)."""
    tuning = (manifest.get("spec") or {}).get("tuning") or {}
    lines = ["[run]", "tuning = { " + ", ".join(f"{k} = {v}" for k, v in tuning.items()) + " }"]
    return "\n".join(lines) + "\n"


def scenario_readme(
    manifest: Mapping[str, Any],
    scenario: str,
    source_scenario: str,
    system_id: str,
    validity: Validity,
    compliance: Sequence[str],
) -> str:
    """README.md of one scenario folder: where its logs come from and how to get them again."""
    spec = manifest.get("spec") or {}
    run_id = manifest.get("run_id")
    lines = [
        f"# resnet50 {scenario} on {system_id}",
        "",
        f"Logs of mlorch run `{run_id}`: backend `{spec.get('backend')}`, "
        f"`--device {spec.get('device')}`, profile `{spec.get('profile')}`, "
        f"LoadGen {manifest.get('loadgen_version')}, mlorch {manifest.get('mlorch_version')}.",
    ]
    if source_scenario != scenario:
        lines += [
            "",
            f"**Inferred from {source_scenario}**: these are the {source_scenario} run's logs, "
            f"which the rules let an edge system report as its {scenario} result.",
        ]
    lines += [
        "",
        "## How to reproduce",
        "",
        "```",
        shlex.join(reproduce_command(manifest, source_scenario)),
        "```",
        "",
        "with `run.toml`:",
        "",
        "```toml",
        run_toml(manifest).rstrip(),
        "```",
        "",
        f"then `mlorch submit <run-id> --output <tree>` builds this folder. The user.conf here "
        f"is the one LoadGen read; `{MODEL_FILE}` is the MLCommons model (md5 "
        f"{OFFICIAL_MODELS[0].md5}).",
        "",
        "## Compliance",
        "",
    ]
    lines += [f"- {line}" for line in compliance] or ["- TEST01 and TEST04 were not run."]
    lines += ["", "## Submission validity (mlorch's judgement of the run)", ""]
    if validity.valid:
        lines.append(f"Every rule of the {validity.division} division is met.")
    else:
        lines += [f"- {reason}" for reason in validity.reasons()]
    return "\n".join(lines) + "\n"


def mlorch_commit() -> str | None:
    """The git commit of the mlorch source that runs (`+dirty` with local changes), if known."""
    root = source_root()
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+dirty" if dirty else head or None


def src_readme(backends: Sequence[str], commit: str | None) -> str:
    """src/README.md: which code produced the results."""
    revision = f"commit {commit}" if commit else "commit unknown (not run from a git checkout)"
    return (
        "# Source\n\n"
        f"The results were produced with mlorch {__version__} ({revision}), a containerized "
        "MLPerf Inference orchestrator. Each backend's SUT is mlorch's `backends/<name>/` "
        "package (with `backends/common/`), built into a container image by `mlorch up`.\n\n"
        "Backends in this tree: " + ", ".join(f"`{name}`" for name in backends) + ".\n"
    )


def compliance_lines(verdicts: Sequence[Any], scenario: str) -> list[str]:
    """One line per compliance test of `scenario` (validity.ComplianceVerdict records)."""
    lines = []
    for verdict in verdicts:
        if verdict.scenario != scenario:
            continue
        state = "passed" if verdict.passed else ("FAILED" if verdict.ran else "not run")
        why = f": {'; '.join(verdict.reasons)}" if verdict.reasons and not verdict.passed else ""
        lines.append(f"{verdict.test} {state}{why}")
    return lines


def json_text(data: Mapping[str, Any]) -> str:
    return json.dumps(data, indent=2) + "\n"

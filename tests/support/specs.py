"""RunSpecs and host facts for tests of sizing and tuning."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from contract.dell_trt import settings as S
from orchestrator.config import DEFAULT_TUNING, Device, HarnessRecord, Profile, RunSpec

HOST: dict[str, Any] = {"hostname": "node1", "cpu_model": "EPYC", "cpu_count": 2, "gpus": []}


def run_spec(**values: object) -> RunSpec:
    """A reference CPU spec (quick unless `profile` says otherwise) with the device's guesses."""
    base: dict[str, object] = {
        "backend": "reference",
        "device": Device.CPU,
        "profile": Profile.QUICK,
        "tuning": DEFAULT_TUNING[Device.CPU],
    }
    return RunSpec.model_validate({**base, **values})


def harness_record(gpus: int = 0, **changes: dict[str, Any]) -> HarnessRecord:
    """dell-trt's settings as the host records them: the H100-SXM profile (the CPU twin's
    when `gpus` is 0), with `changes` per scenario (`Offline={"batch_size": 16}`)."""
    profile = (
        S.cpu_profile(2)
        if gpus == 0
        else next(p for p in S.PROFILES if p.name == "nvidia-h100-sxm")
    )
    scenarios = dict(profile.scenarios)
    for name, values in changes.items():
        scenarios[name] = replace(scenarios[name], **values)
    return HarnessRecord(
        profile=profile.name, source=profile.source, reason="test", gpus=gpus,
        scenarios=scenarios,
    )  # fmt: skip

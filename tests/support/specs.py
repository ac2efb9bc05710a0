"""RunSpecs and host facts for tests of sizing and tuning."""

from __future__ import annotations

from typing import Any

from orchestrator.config import DEFAULT_TUNING, Device, Profile, RunSpec

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

"""Harness settings of backends that have them (dell-trt): chosen on the host, announced,
validated, recorded in the manifest and handed to each SUT container as settings.json.

The profiles and the selection rule live in `contract.dell_trt.settings` (standard library only),
next to the harness that reads them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from contract.dell_trt import settings as S
from orchestrator.config import Device, HarnessRecord
from orchestrator.errors import ConfigError
from orchestrator.host.facts import GpuInfo, nvml_gpus
from orchestrator.host.gpu import no_gpu
from orchestrator.images.catalog import BackendDef


@dataclass(frozen=True)
class ResolvedHarness:
    selection: S.Selection
    scenarios: dict[str, S.ScenarioSettings]
    gpus: int
    overrides: tuple[str, ...]

    def tuning(self) -> dict[str, float]:
        """LoadGen expectations for user.conf: per-GPU rates times the GPU count."""
        scale = max(1, self.gpus)
        return {
            "offline_expected_qps": self.scenarios["Offline"].expected_qps * scale,
            "server_target_qps": self.scenarios["Server"].expected_qps * scale,
            "single_stream_expected_latency_ms": self.scenarios["SingleStream"].expected_latency_ms,
            "multi_stream_expected_latency_ms": self.scenarios["MultiStream"].expected_latency_ms,
        }

    def record(self) -> HarnessRecord:
        """What the manifest and RunSpec keep (and settings.json is rendered from)."""
        return HarnessRecord(
            profile=self.selection.profile.name,
            source=self.selection.profile.source,
            reason=self.selection.reason,
            gpus=self.gpus,
            overrides=self.overrides,
            scenarios=dict(self.scenarios),
        )


def settings_json(record: HarnessRecord) -> str:
    """The settings.json one SUT container reads (contract.dell_trt.settings.from_json)."""
    scenarios = dict(record.scenarios)
    selection = S.Selection(
        S.Profile(record.profile, record.source, "", (), scenarios), record.reason
    )
    return str(S.to_json(selection, scenarios, record.gpus))


def _facts(gpus: list[GpuInfo]) -> list[S.GpuFacts]:
    return [S.GpuFacts(g.name, g.memory_mib, g.multiprocessors) for g in gpus]


def resolve_harness(
    backend: BackendDef,
    device: Device,
    overrides: tuple[str, ...],
    forced: str | None,
    gpus: list[GpuInfo] | None = None,
) -> ResolvedHarness | None:
    """Pick the profile for this host's GPUs (or CPU), apply `--set` overrides; None for
    backends without harness settings. Unknown keys and bad values are ConfigErrors."""
    if not backend.harness_profiles:
        if overrides or forced:
            raise ConfigError(
                f"{backend.name} has no harness settings (--set / --harness-profile)",
                key="set",
                hint="harness settings apply to dell-trt; the reference takes --threads and "
                "--max-batchsize",
            )
        return None
    found: list[GpuInfo] = []
    if device is Device.CUDA:
        found, _, why = (gpus, None, None) if gpus is not None else nvml_gpus()
        if not found and not forced:  # said before a profile for no GPU (the twin's) is chosen
            raise no_gpu(why)  # (a named profile needs none: `check` on a host without GPUs)
    if device is Device.CPU and forced in {profile.name for profile in S.PROFILES}:
        raise ConfigError(
            f"--harness-profile {forced} is a GPU profile; --device cpu runs the CPU twin "
            f"({S.CPU_PROFILE_NAME})",
            key="harness_profile",
            hint=f"leave --harness-profile out (or name {S.CPU_PROFILE_NAME}), or use "
            "--device cuda",
        )
    cores = os.cpu_count() or 1
    try:
        selection = S.select(_facts(found), cores, forced)
    except KeyError as exc:
        raise ConfigError(
            str(exc.args[0]),
            key="harness_profile",
            hint="name one of those, or leave --harness-profile out to choose from the GPUs found",
        ) from None
    except ValueError as exc:
        raise ConfigError(
            str(exc),
            key="harness_profile",
            hint="one profile per run: pass --harness-profile NAME, and CUDA_VISIBLE_DEVICES "
            "to pick the GPUs of that kind",
        ) from None
    try:
        scenarios = S.apply_overrides(selection.profile.scenarios, list(overrides))
    except KeyError as exc:
        key = str(exc.args[0])
        raise ConfigError(
            f"--set: unknown key '{key}'",
            key=key,
            hint=f"keys: {', '.join(S.known_keys())} (optionally Scenario.key)",
        ) from None
    except ValueError as exc:
        raise ConfigError(
            f"--set: {exc}",
            key="set",
            hint="--set key=value or Scenario.key=value; counts and sizes are whole numbers "
            "(batch_size, streams ≥ 1), switches true/false, e.g. --set Offline.batch_size=16",
        ) from None
    if device is Device.CPU:
        _refuse_gpu_only(scenarios)
    return ResolvedHarness(selection, scenarios, len(found), overrides)


# CUDA and TensorRT settings the CPU twin does not have
GPU_ONLY = (
    "use_graphs",
    "start_from_device",
    "builder_optimization_level",
    "inference_streams",
    "blocking_sync",
)


def _refuse_gpu_only(scenarios: dict[str, S.ScenarioSettings]) -> None:
    """The twin would ignore them, and the manifest would claim what did not run. (Its slots
    each run their own session: it has no separate inference streams.)"""
    defaults = S.ScenarioSettings(batch_size=1, copy_streams=1, inference_streams=1,
                                  deque_timeout_us=0, use_graphs=False)  # fmt: skip
    for key in GPU_ONLY:
        default = getattr(defaults, key)
        on = [name for name, values in scenarios.items() if getattr(values, key) != default]
        if on:
            value = str(getattr(scenarios[on[0]], key)).lower()
            raise ConfigError(
                f"--set {key}={value} applies to --device cuda only (set for {', '.join(on)})",
                key=key,
                hint="the CPU twin has no CUDA graphs, streams, device memory or TensorRT "
                "builder: drop it, or use --device cuda",
            )

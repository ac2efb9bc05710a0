"""Harness settings of the Dell/NVIDIA ResNet50 recipe: named profiles from the published
configurations, chosen from the GPUs (name and count), a rule for GPUs no profile lists, and
validated `key=value` overrides. Standard library only: the host selects and records the
settings, the SUT container reads them back from harness.json.

Sources of the numbers (MLPerf Inference results repositories, closed division):
- Dell v2.1 (closed/Dell, NVIDIA's code): R750xa 4×A100-PCIe-80GB, XE8545 4×A100-SXM-80GB,
  XR12 1×A2;
- NVIDIA v4.1 configs (configs/resnet50/<Scenario>): H100-SXM, H200-SXM, H100-PCIe, L40S, L4;
  H100-NVL from its published v4.1 results.
Expected rates are per GPU; LoadGen's expectations are scaled by the GPU count.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

SCENARIOS = ("SingleStream", "MultiStream", "Server", "Offline")
SETTINGS_VERSION = 1


@dataclass(frozen=True)
class ScenarioSettings:
    """How the harness runs one scenario (LWIS terms), plus what LoadGen should expect."""

    batch_size: int  # gpu_batch_size: the engine's largest batch, the batcher's target
    copy_streams: int  # per GPU: slots with their own buffers and execution context
    inference_streams: int  # per GPU: streams the engines run on (slots round-robin)
    deque_timeout_us: int  # the batcher waits at most this long for a batch to fill
    use_graphs: bool  # CUDA graphs per (slot, stream, batch size)
    start_from_device: bool = False  # QSL in device memory: opt-in, closed results need approval
    threads_per_slot: int = 0  # CPU twin: intra-op threads per slot (0: cores / slots)
    expected_qps: float = 0.0  # Offline expected / Server target, per GPU (per host on cpu)
    expected_latency_ms: float = 0.0  # SingleStream / MultiStream expected latency
    builder_optimization_level: int = 3  # TensorRT builder 0..5 (part of the engine's cache key)
    # The completion thread sleeps on the batch's last event (cudaEventBlockingSync) instead of
    # spinning a core: on for every GPU profile; off (meaningless) for the CPU twin and in a
    # settings.json written before the key existed, which ran spinning.
    blocking_sync: bool = False

    def validate(self) -> None:
        for name in ("batch_size", "copy_streams", "inference_streams"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.deque_timeout_us < 0 or self.threads_per_slot < 0:
            raise ValueError("deque_timeout_us and threads_per_slot cannot be negative")
        if self.expected_qps < 0 or self.expected_latency_ms < 0:
            raise ValueError("expected_qps and expected_latency_ms cannot be negative")
        if not 0 <= self.builder_optimization_level <= 5:
            raise ValueError("builder_optimization_level must be 0..5")
        if self.inference_streams > self.copy_streams:  # each slot runs on one stream
            raise ValueError(
                f"inference_streams ({self.inference_streams}) cannot exceed copy_streams "
                f"({self.copy_streams}): the extra streams would never run a batch"
            )


@dataclass(frozen=True)
class Profile:
    name: str
    source: str
    gpu_pattern: str  # regex on the NVML name ("" for the cpu profile)
    gpu_counts: tuple[int, ...]  # counts it was published for; () = any
    scenarios: dict[str, ScenarioSettings]

    def matches(self, gpu_name: str, count: int) -> bool:
        if not self.gpu_pattern or not re.search(self.gpu_pattern, gpu_name, re.IGNORECASE):
            return False
        return not self.gpu_counts or count in self.gpu_counts


def _ss(latency_ms: float) -> ScenarioSettings:
    return ScenarioSettings(
        1, 1, 1, 0, use_graphs=True, expected_latency_ms=latency_ms, blocking_sync=True
    )


def _ms(latency_ms: float) -> ScenarioSettings:
    return ScenarioSettings(
        8, 1, 1, 0, use_graphs=True, expected_latency_ms=latency_ms, blocking_sync=True
    )


def _gpu(
    name: str, source: str, pattern: str, counts: tuple[int, ...], *,
    offline: tuple[int, int, int, float], server: tuple[int, int, int, int, float],
    ss_ms: float, ms_ms: float,
) -> Profile:  # fmt: skip
    """offline = (batch, copy, infer, qps/GPU); server = (batch, copy, infer, deque µs, qps/GPU)."""
    ob, oc, oi, oq = offline
    sb, sc, si, sd, sq = server
    return Profile(
        name,
        source,
        pattern,
        counts,
        {
            "SingleStream": _ss(ss_ms),
            "MultiStream": _ms(ms_ms),
            "Server": ScenarioSettings(sb, sc, si, sd, True, expected_qps=sq, blocking_sync=True),
            "Offline": ScenarioSettings(
                ob, oc, oi, 0, use_graphs=False, expected_qps=oq, blocking_sync=True
            ),
        },
    )


# fmt: off
PROFILES: tuple[Profile, ...] = (
    _gpu(
        "dell-r750xa-a100-pcie-80gb", "Dell MLPerf Inference v2.1, R750xa 4×A100-PCIe-80GB",
        r"A100.*(80GB.*PCIe|PCIe.*80GB)", (4,),
        offline=(2048, 2, 1, 45_000), server=(276, 5, 1, 2000, 36_808), ss_ms=0.6, ms_ms=1.5,
    ),
    _gpu(
        "dell-xe8545-a100-sxm-80gb", "Dell MLPerf Inference v2.1, XE8545 4×A100-SXM-80GB",
        r"A100.*SXM.*80GB", (4,),
        offline=(2048, 3, 2, 42_100), server=(128, 4, 2, 4000, 37_500), ss_ms=0.6, ms_ms=1.5,
    ),
    _gpu(
        "dell-xr12-a2", "Dell MLPerf Inference v2.1, XR12 1×A2",
        r"\bA2\b", (1,),
        offline=(1024, 2, 1, 3_100), server=(64, 2, 1, 2000, 2_600), ss_ms=1.088, ms_ms=4.0,
    ),
    # NVIDIA's H100-SXM and H200-SXM Server results held the QSL in device memory; that needs
    # MLCommons' approval, so here it is opt-in: --set Server.start_from_device=true.
    _gpu(
        "nvidia-h200-sxm", "NVIDIA MLPerf Inference v4.1/v5.0, H200-SXM",
        r"H200(?!.*NVL)", (),
        offline=(2048, 2, 1, 95_000), server=(256, 2, 1, 3000, 79_000), ss_ms=0.4, ms_ms=0.8,
    ),
    _gpu(
        "nvidia-h100-sxm", "NVIDIA MLPerf Inference v4.1, H100-SXM-80GB",
        r"H100.*(SXM|HBM3)", (),
        offline=(2048, 2, 1, 88_800), server=(256, 2, 1, 3000, 73_000), ss_ms=0.4, ms_ms=0.8,
    ),
    _gpu(
        "nvidia-h100-nvl", "NVIDIA MLPerf Inference v4.1, H100-NVL (published results)",
        r"H100.*NVL", (),
        offline=(2048, 2, 1, 67_000), server=(128, 4, 2, 2000, 62_000), ss_ms=0.45, ms_ms=0.9,
    ),
    _gpu(
        "nvidia-h100-pcie", "NVIDIA MLPerf Inference v4.1, H100-PCIe-80GB",
        r"H100.*PCIe", (),
        offline=(2048, 2, 1, 49_000), server=(128, 4, 2, 2000, 47_000), ss_ms=0.45, ms_ms=0.9,
    ),
    _gpu(
        "nvidia-l40s", "NVIDIA MLPerf Inference v4.1, L40S",
        r"L40S", (),
        offline=(64, 2, 1, 40_000), server=(32, 4, 2, 2000, 38_000), ss_ms=0.45, ms_ms=1.0,
    ),
    _gpu(
        "nvidia-l4", "NVIDIA MLPerf Inference v4.1, L4",
        r"\bL4\b", (),
        offline=(32, 2, 1, 13_000), server=(16, 9, 2, 2000, 12_200), ss_ms=0.4, ms_ms=1.6,
    ),
)
# fmt: on

# The CPU twin (onnxruntime CPU provider). Throughput scenarios run one single-threaded slot per
# core (measured fastest per CPU-second); latency scenarios one slot using every core. Rates are
# per core: a 2-core AVX2 host (no VNNI) did ~18 samples/s per core on the U8S8 model.
CPU_RATE_PER_CORE = 17.0
CPU_SS_LATENCY_MS = 60.0
CPU_PROFILE_NAME = "cpu-twin"


# fmt: off
def cpu_profile(cores: int) -> Profile:
    cores = max(1, cores)
    rate = CPU_RATE_PER_CORE * cores
    server_slots = max(1, cores // 2)
    return Profile(
        CPU_PROFILE_NAME,
        "mlorch CPU twin (onnxruntime CPU, U8S8), rates per core measured on a 2-core host",
        "",
        (),
        {
            "SingleStream": ScenarioSettings(
                batch_size=1, copy_streams=1, inference_streams=1, deque_timeout_us=0,
                use_graphs=False, threads_per_slot=cores, expected_latency_ms=CPU_SS_LATENCY_MS,
            ),
            "MultiStream": ScenarioSettings(
                batch_size=8, copy_streams=1, inference_streams=1, deque_timeout_us=0,
                use_graphs=False, threads_per_slot=cores,
                expected_latency_ms=round(8 * 1000.0 / rate, 1),
            ),
            # Server is bound by p99 latency (15 ms): no batching wait, one query per slot,
            # two threads a slot (on 2 cores as fast as a slot per core, and half the latency)
            "Server": ScenarioSettings(
                batch_size=1, copy_streams=server_slots, inference_streams=1,
                deque_timeout_us=0, use_graphs=False, threads_per_slot=cores // server_slots,
                expected_qps=round(rate * 0.5, 1),
            ),
            "Offline": ScenarioSettings(
                batch_size=8, copy_streams=cores, inference_streams=1, deque_timeout_us=0,
                use_graphs=False, threads_per_slot=1, expected_qps=rate,
            ),
        },
    )
# fmt: on


@dataclass(frozen=True)
class GpuFacts:
    """What the host knows of one GPU (NVML): enough to pick or derive settings."""

    name: str
    memory_mib: int
    multiprocessors: int | None = None


def rule_profile(gpu: GpuFacts) -> Profile:
    """Settings for a GPU no published profile lists, from its memory and SM count.

    Batches that fit: 2048 with ≥ 40 GB, 1024 with ≥ 16 GB, else 256 (Offline); Server batches
    about two per SM. Expected rates assume ~500 samples/s per SM (Ampere/Hopper INT8 ResNet50
    ran 640–700), deliberately low: LoadGen only schedules against them.
    """
    sms = gpu.multiprocessors or max(16, gpu.memory_mib // 1024)
    memory_gb = gpu.memory_mib / 1024
    offline_batch = 2048 if memory_gb >= 40 else 1024 if memory_gb >= 16 else 256
    server_batch = max(16, min(256, 1 << (2 * sms - 1).bit_length() >> 1))
    rate = 500.0 * sms
    return _gpu(
        f"rule-{re.sub(r'[^a-z0-9]+', '-', gpu.name.lower()).strip('-')}",
        f"mlorch rule for unlisted GPUs ({gpu.memory_mib} MiB, {sms} SMs)",
        re.escape(gpu.name),
        (),
        offline=(offline_batch, 2, 1, rate),
        server=(server_batch, 4, 2, 2000, round(rate * 0.8)),
        ss_ms=0.6,
        ms_ms=1.5,
    )


@dataclass(frozen=True)
class Selection:
    profile: Profile
    reason: str  # announced to the user and recorded in the manifest


def select(gpus: list[GpuFacts], cores: int, forced: str | None = None) -> Selection:
    """The profile for these GPUs (none: the CPU twin), or the one named by `forced`."""
    if forced:
        candidates = {p.name: p for p in (*PROFILES, cpu_profile(cores))}
        if forced not in candidates:
            known = ", ".join(sorted(candidates))
            raise KeyError(f"unknown profile {forced!r} (known: {known})")
        return Selection(candidates[forced], f"profile {forced} chosen with --harness-profile")
    if not gpus:
        return Selection(cpu_profile(cores), f"CPU twin on {cores} core(s)")
    names = {gpu.name for gpu in gpus}
    if len(names) > 1:
        mixed = ", ".join(sorted(names))
        raise ValueError(f"mixed GPUs ({mixed}): pick one with --harness-profile")
    first = gpus[0]
    count = len(gpus)
    for profile in PROFILES:
        if profile.matches(first.name, count):
            return Selection(profile, f"{count} × {first.name} matches {profile.source}")
    for profile in PROFILES:  # right GPU, other count: per-GPU settings still apply
        if profile.gpu_counts and re.search(profile.gpu_pattern, first.name, re.IGNORECASE):
            return Selection(
                profile, f"{count} × {first.name}: per-GPU settings of {profile.source}"
            )
    rule = rule_profile(first)
    return Selection(rule, f"{count} × {first.name} is not in any published profile: {rule.source}")


_FIELDS = {f.name: f.type for f in fields(ScenarioSettings)}


def _parse_value(key: str, text: str) -> Any:
    kind = str(_FIELDS[key])
    if kind == "bool":
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{key}: expected true or false, got {text!r}")
    try:
        return int(text) if kind == "int" else float(text)
    except ValueError:
        raise ValueError(f"{key}: expected a number, got {text!r}") from None


def apply_overrides(
    scenarios: dict[str, ScenarioSettings], overrides: list[str]
) -> dict[str, ScenarioSettings]:
    """Apply `key=value` or `Scenario.key=value` overrides; unknown keys raise KeyError(key)."""
    result = dict(scenarios)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {item!r}: expected key=value")
        key = key.strip()
        scenario, dot, field = key.rpartition(".")
        targets = [scenario] if dot else list(result)
        if dot and scenario not in result:
            raise KeyError(key)
        if field not in _FIELDS:
            raise KeyError(key)
        parsed = _parse_value(field, value)
        for name in targets:
            result[name] = replace(result[name], **{field: parsed})
    for name, settings in result.items():
        try:
            settings.validate()
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    return result


def known_keys() -> list[str]:
    return sorted(_FIELDS)


def to_json(selection: Selection, scenarios: dict[str, ScenarioSettings], gpus: int) -> str:
    """harness.json's settings block: what the SUT container reads back."""
    payload = {
        "version": SETTINGS_VERSION,
        "profile": selection.profile.name,
        "source": selection.profile.source,
        "reason": selection.reason,
        "gpus": gpus,
        "scenarios": {name: asdict(s) for name, s in scenarios.items()},
    }
    return json.dumps(payload, indent=2, sort_keys=True) + "\n"


def from_json(text: str, scenario: str) -> ScenarioSettings:
    data = json.loads(text)
    if data.get("version") != SETTINGS_VERSION:
        raise ValueError(f"settings version {data.get('version')} != {SETTINGS_VERSION}")
    return ScenarioSettings(**data["scenarios"][scenario])

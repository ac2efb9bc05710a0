"""dell-trt settings: published profiles chosen from NVML names and counts, a rule for unlisted
GPUs, validated overrides, and the settings.json round trip into the SUT."""

from __future__ import annotations

import json

import pytest

from contract.dell_trt import settings as S
from orchestrator.config import Device, HarnessRecord
from orchestrator.errors import ConfigError, GpuUnavailable
from orchestrator.harness_settings import resolve_harness, settings_json
from orchestrator.host.facts import GpuInfo
from orchestrator.images.catalog import get_backend

H100 = GpuInfo(0, "NVIDIA H100 80GB HBM3", 81_559, "GPU-0", "9.0", 132)


def _gpus(
    name: str, count: int, memory_mib: int = 81_559, sms: int | None = None
) -> list[S.GpuFacts]:
    return [S.GpuFacts(name, memory_mib, sms) for _ in range(count)]


@pytest.mark.parametrize(
    ("name", "count", "profile"),
    [
        ("NVIDIA H100 80GB HBM3", 1, "nvidia-h100-sxm"),
        ("NVIDIA H100 80GB HBM3", 8, "nvidia-h100-sxm"),
        ("NVIDIA H200", 1, "nvidia-h200-sxm"),
        ("NVIDIA H200 NVL", 2, "rule-nvidia-h200-nvl"),  # not the SXM part: no published profile
        ("NVIDIA H100 NVL", 2, "nvidia-h100-nvl"),
        ("NVIDIA H100 PCIe", 1, "nvidia-h100-pcie"),
        ("NVIDIA A100 80GB PCIe", 4, "dell-r750xa-a100-pcie-80gb"),
        ("NVIDIA A100-SXM4-80GB", 4, "dell-xe8545-a100-sxm-80gb"),
        ("NVIDIA A2", 1, "dell-xr12-a2"),
        ("NVIDIA L40S", 4, "nvidia-l40s"),
        ("NVIDIA L4", 1, "nvidia-l4"),
    ],
)
def test_published_profiles_by_nvml_name(name: str, count: int, profile: str) -> None:
    chosen = S.select(_gpus(name, count), cores=16)
    assert chosen.profile.name == profile
    assert name in chosen.reason


def test_same_gpu_other_count_keeps_per_gpu_settings() -> None:
    chosen = S.select(_gpus("NVIDIA A100-SXM4-80GB", 8), cores=64)
    assert chosen.profile.name == "dell-xe8545-a100-sxm-80gb"
    assert "per-GPU settings" in chosen.reason


def test_the_published_numbers_are_the_recipes() -> None:
    r750 = S.select(_gpus("NVIDIA A100 80GB PCIe", 4), cores=64).profile.scenarios
    assert (r750["Offline"].batch_size, r750["Offline"].copy_streams) == (2048, 2)
    server = r750["Server"]
    assert (server.batch_size, server.copy_streams, server.inference_streams) == (276, 5, 1)
    assert (server.deque_timeout_us, server.use_graphs) == (2000, True)
    h100 = S.select(_gpus("NVIDIA H100 80GB HBM3", 1), cores=64).profile.scenarios
    # NVIDIA's Server result held the QSL in GPU memory; that needs approval: opt-in here.
    assert not any(s.start_from_device for s in h100.values())
    assert h100["SingleStream"].batch_size == 1
    assert h100["MultiStream"].batch_size == 8


def test_unlisted_gpu_gets_a_rule_not_an_error() -> None:
    chosen = S.select(_gpus("NVIDIA RTX 6000 Ada Generation", 2, 49_140, 142), cores=32)
    assert chosen.profile.name == "rule-nvidia-rtx-6000-ada-generation"
    assert "not in any published profile" in chosen.reason
    scenarios = chosen.profile.scenarios
    assert scenarios["Offline"].batch_size == 2048  # 48 GB
    assert scenarios["Server"].batch_size == 256  # ~2 per SM, at most 256
    small = S.select(_gpus("NVIDIA T400", 1, 4_096, 6), cores=4).profile.scenarios
    assert small["Offline"].batch_size == 256
    assert small["Server"].batch_size == 16


def test_no_gpu_is_the_cpu_twin_scaled_by_cores() -> None:
    two = S.select([], cores=2).profile
    eight = S.select([], cores=8).profile
    assert two.name == "cpu-twin"
    assert eight.scenarios["Offline"].expected_qps == 4 * two.scenarios["Offline"].expected_qps


def test_mixed_gpus_ask_for_a_choice() -> None:
    gpus = [S.GpuFacts("NVIDIA L4", 23_034), S.GpuFacts("NVIDIA H100 PCIe", 81_559)]
    with pytest.raises(ValueError, match="mixed GPUs"):
        S.select(gpus, cores=8)
    assert S.select(gpus, cores=8, forced="nvidia-l4").profile.name == "nvidia-l4"


def test_overrides_per_scenario_and_global() -> None:
    base = S.select([], cores=2).profile.scenarios
    changed = S.apply_overrides(base, ["Offline.batch_size=16", "use_graphs=true"])
    assert changed["Offline"].batch_size == 16
    assert changed["Server"].batch_size == base["Server"].batch_size
    assert all(s.use_graphs for s in changed.values())


@pytest.mark.parametrize(
    ("item", "error", "message"),
    [
        ("batchsize=4", KeyError, "batchsize"),
        ("Offlien.batch_size=4", KeyError, "Offlien.batch_size"),
        ("batch_size=four", ValueError, "expected a number"),
        ("use_graphs=maybe", ValueError, "true or false"),
        ("batch_size=0", ValueError, "at least 1"),
        ("batch_size", ValueError, "key=value"),
        ("builder_optimization_level=6", ValueError, "0..5"),
    ],
)
def test_bad_overrides_are_named(item: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        S.apply_overrides(S.select([], cores=2).profile.scenarios, [item])


def test_unknown_key_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'Offline\.batchsize'") as caught:
        resolve_harness(get_backend("dell-trt"), Device.CPU, ("Offline.batchsize=8",), None)
    assert caught.value.exit_code == 2
    assert "batch_size" in (caught.value.hint or "")


@pytest.mark.parametrize(
    ("item", "shown", "harmless"),
    [
        ("use_graphs=true", "use_graphs=true", "use_graphs=false"),
        ("Server.start_from_device=1", "start_from_device=true", "start_from_device=0"),
        ("builder_optimization_level=5", "builder_optimization_level=5",
         "builder_optimization_level=3"),
    ],
)  # fmt: skip
def test_the_twin_refuses_what_only_cuda_has(item: str, shown: str, harmless: str) -> None:
    """The CPU twin would ignore them while the manifest claimed them."""
    with pytest.raises(ConfigError, match=f"--set {shown} applies to --device cuda only"):
        resolve_harness(get_backend("dell-trt"), Device.CPU, (item,), None)
    assert resolve_harness(get_backend("dell-trt"), Device.CPU, (harmless,), None)
    assert resolve_harness(get_backend("dell-trt"), Device.CUDA, (item,), None, [H100])


def test_cuda_without_gpus_chooses_no_profile_unless_one_is_named() -> None:
    """Not the twin's profile for a cuda run: the missing GPU is the error (exit 10)."""
    with pytest.raises(GpuUnavailable, match="no NVIDIA GPU is visible") as caught:
        resolve_harness(get_backend("dell-trt"), Device.CUDA, (), None, [])
    assert caught.value.exit_code == 10
    named = resolve_harness(get_backend("dell-trt"), Device.CUDA, (), "nvidia-l4", [])
    assert named is not None
    assert named.selection.profile.name == "nvidia-l4"


def test_reference_takes_no_harness_settings() -> None:
    assert resolve_harness(get_backend("reference"), Device.CPU, (), None) is None
    with pytest.raises(ConfigError, match="no harness settings"):
        resolve_harness(get_backend("reference"), Device.CPU, ("batch_size=8",), None)


def test_tuning_scales_with_gpu_count_and_round_trips_into_the_sut() -> None:
    gpus = [GpuInfo(i, "NVIDIA H100 80GB HBM3", 81_559, f"GPU-{i}", "9.0", 132) for i in range(2)]
    overrides = ("Server.batch_size=128", "Server.start_from_device=true")
    resolved = resolve_harness(get_backend("dell-trt"), Device.CUDA, overrides, None, gpus)
    assert resolved is not None
    assert resolved.tuning()["offline_expected_qps"] == 2 * 88_800
    record = resolved.record()
    assert record.profile == "nvidia-h100-sxm"
    assert record.overrides == overrides
    # what the manifest keeps reads back as the same record, or not at all
    assert HarnessRecord.model_validate(record.model_dump(mode="json")) == record
    broken = record.model_dump(mode="json")
    broken["scenarios"]["Server"]["inference_streams"] = 9
    with pytest.raises(ValueError, match="harness settings of Server: inference_streams"):
        HarnessRecord.model_validate(broken)
    text = settings_json(record)
    server = S.from_json(text, "Server")
    assert server.batch_size == 128
    assert server.start_from_device is True
    with pytest.raises(ValueError, match="settings version"):
        S.from_json(text.replace('"version": 1', '"version": 99'), "Server")


def test_the_twin_has_no_separate_inference_streams() -> None:
    items = ("Offline.copy_streams=2", "Offline.inference_streams=2")
    with pytest.raises(ConfigError, match="--set inference_streams=2 applies to --device cuda"):
        resolve_harness(get_backend("dell-trt"), Device.CPU, items, None)
    assert resolve_harness(get_backend("dell-trt"), Device.CUDA, items, None, [H100])


def test_more_inference_streams_than_copy_streams_is_refused_not_clamped() -> None:
    """Each slot runs on one stream: the extra streams would be recorded but never used."""
    items = ("Offline.copy_streams=1", "Offline.inference_streams=2")
    with pytest.raises(ConfigError, match=r"inference_streams \(2\) cannot exceed copy_streams"):
        resolve_harness(get_backend("dell-trt"), Device.CUDA, items, None, [H100])


def test_a_gpu_profile_on_cpu_is_named_as_such() -> None:
    with pytest.raises(ConfigError, match="nvidia-h100-sxm is a GPU profile") as caught:
        resolve_harness(get_backend("dell-trt"), Device.CPU, (), "nvidia-h100-sxm")
    assert caught.value.exit_code == 2
    twin = resolve_harness(get_backend("dell-trt"), Device.CPU, (), "cpu-twin")
    assert twin is not None


def test_the_twin_server_profile_fits_the_latency_bound() -> None:
    """Server on CPU: no batching wait and one query a slot (p99 ≤ 15 ms is the bound)."""
    for cores in (1, 2, 16):
        server = S.cpu_profile(cores).scenarios["Server"]
        assert (server.batch_size, server.deque_timeout_us) == (1, 0)
        assert server.copy_streams * server.threads_per_slot <= cores


def test_gpu_profiles_sleep_on_events_and_the_twin_does_not_claim_it() -> None:
    """Blocking sync: a GPU's completion threads sleep on the batch's event instead of spinning a
    core; the CPU twin has no events, so it keeps the default (off)."""
    gpu_profiles = [*S.PROFILES, S.rule_profile(S.GpuFacts("NVIDIA T400", 4_096, 6))]
    for profile in gpu_profiles:
        assert all(s.blocking_sync for s in profile.scenarios.values()), profile.name
    for cores in (1, 16):
        assert not any(s.blocking_sync for s in S.cpu_profile(cores).scenarios.values())
    assert "blocking_sync" in S.known_keys()


def test_blocking_sync_is_a_settable_key() -> None:
    h100 = S.select(_gpus("NVIDIA H100 80GB HBM3", 1), cores=16).profile.scenarios
    spinning = S.apply_overrides(h100, ["blocking_sync=false"])
    assert not any(s.blocking_sync for s in spinning.values())
    one = S.apply_overrides(h100, ["Server.blocking_sync=off"])
    assert (one["Server"].blocking_sync, one["Offline"].blocking_sync) == (False, True)
    with pytest.raises(ValueError, match="true or false"):
        S.apply_overrides(h100, ["blocking_sync=sometimes"])
    for overrides, expected in (((), True), (("blocking_sync=false",), False)):
        resolved = resolve_harness(get_backend("dell-trt"), Device.CUDA, overrides, None, [H100])
        assert resolved is not None
        text = settings_json(resolved.record())  # what the SUT container reads back
        assert S.from_json(text, "Offline").blocking_sync is expected


def test_a_settings_json_without_blocking_sync_still_loads() -> None:
    """Written before the key existed: it loads, with the default (the spinning wait it ran)."""
    resolved = resolve_harness(get_backend("dell-trt"), Device.CUDA, (), None, [H100])
    assert resolved is not None
    record = resolved.record()
    data = json.loads(settings_json(record))
    for values in data["scenarios"].values():
        del values["blocking_sync"]
    server = S.from_json(json.dumps(data), "Server")
    assert server.blocking_sync is False
    assert server.batch_size == 256

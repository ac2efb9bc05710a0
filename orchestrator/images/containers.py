"""The containers mlorch starts for a backend: assets, preprocessing, one LoadGen test each.

The same builders feed the docker SDK at run time and `compose.yaml`, so they cannot drift.
`Identity` says who runs inside them and who owns their results on the host.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from contract.dell_trt.recipe import CALIBRATION_METHOD
from orchestrator.config import Device, Mode, Scenario
from orchestrator.engine import labels as L
from orchestrator.engine.container import ContainerSpec, Mount
from orchestrator.images.catalog import BackendDef

CONTAINER_UID = 10001  # the image's user, and the container user when mlorch runs as root

MODEL_MOUNT = "/model/resnet50_v1.onnx"
DATA_MOUNT = "/data"
CACHE_MOUNT = "/cache"
RESULTS_MOUNT = "/results"
USER_CONF_MOUNT = "/config/user.conf"
AUDIT_CONFIG_MOUNT = "/config/audit.config"
SETTINGS_MOUNT = "/config/settings.json"
CALIBRATION_MOUNT = "/config/calibration.txt"
VAL_MAP_MOUNT = "/config/val_map.txt"
ASSETS_MOUNT = "/assets"
ARTIFACTS_MOUNT = "/artifacts"
ENGINES_MOUNT = "/engines"


@dataclass(frozen=True)
class RecipeInputs:
    """What a dell-trt SUT reads besides the dataset cache: the prepared model artifacts, the
    TensorRT engine cache (cuda) and the harness settings. All read-only in the test."""

    artifacts: Path
    settings: Path
    engines: Path | None = None

    def mounts(self) -> tuple[Mount, ...]:
        mounts = [Mount(self.artifacts, ARTIFACTS_MOUNT), Mount(self.settings, SETTINGS_MOUNT)]
        if self.engines is not None:
            mounts.append(Mount(self.engines, ENGINES_MOUNT))
        return tuple(mounts)

    def args(self) -> tuple[str, ...]:
        args = ("--artifacts", ARTIFACTS_MOUNT, "--settings", SETTINGS_MOUNT)
        return (*args, "--engines", ENGINES_MOUNT) if self.engines is not None else args


@dataclass(frozen=True)
class AuditInputs:
    """A compliance audit run: which test, and its audit.config (read-only in the container;
    the SUT hands its path to LoadGen, which overrides the test settings from it)."""

    test: str  # "TEST01", "TEST04"
    config: Path

    def mounts(self) -> tuple[Mount, ...]:
        return (Mount(self.config, AUDIT_CONFIG_MOUNT),)

    def args(self) -> tuple[str, ...]:
        return ("--audit-config", AUDIT_CONFIG_MOUNT)


# Preprocessing runs one process per CPU: each stays single-threaded, so neither oversubscribes
# the CPUs nor multiplies into CPUs² threads against the container's pids limit.
SINGLE_THREADED = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "OPENCV_FOR_THREADS_NUM": "1",
}


@dataclass(frozen=True)
class Identity:
    """Who runs inside containers and who owns the results on the host."""

    container_user: str
    owner_uid: int
    owner_gid: int
    handover: bool  # True when mlorch is root: hand folders to CONTAINER_UID and back

    @classmethod
    def current(cls) -> Identity:
        uid, gid = os.getuid(), os.getgid()
        if uid != 0:
            return cls(f"{uid}:{gid}", uid, gid, handover=False)
        owner_uid = int(os.environ.get("SUDO_UID", "0"))
        owner_gid = int(os.environ.get("SUDO_GID", "0"))
        return cls(f"{CONTAINER_UID}:{CONTAINER_UID}", owner_uid, owner_gid, handover=True)

    def lend(self, folder: Path) -> None:
        """Make `folder` writable by the container user."""
        if self.handover:
            os.chown(folder, CONTAINER_UID, CONTAINER_UID)

    def reclaim(self, folder: Path) -> None:
        """Give everything under `folder` back to the invoking user."""
        if not self.handover or not folder.exists():
            return
        for path in [folder, *folder.rglob("*")]:
            os.chown(path, self.owner_uid, self.owner_gid, follow_symlinks=False)


def prepare_spec(
    backend: BackendDef,
    image: str,
    run_id: str,
    dataset: Path,
    cache: Path,
    count: int,
    user: str,
    fmt: str = "fp32",
    val_map: Path | None = None,
) -> ContainerSpec:
    """Preprocess `count` images of `dataset` (read-only) into `cache` in format `fmt`.

    `val_map` (read-only) replaces the dataset's own list: the filtered one of `--skip-bad`.
    """
    command: tuple[str, ...] = ("prepare", "--dataset", DATA_MOUNT, "--cache", CACHE_MOUNT,
                                "--count", str(count), "--format", fmt)  # fmt: skip
    mounts: tuple[Mount, ...] = (
        Mount(dataset, DATA_MOUNT),
        Mount(cache, CACHE_MOUNT, read_only=False),
    )
    if val_map is not None:
        command += ("--val-map", VAL_MAP_MOUNT)
        mounts += (Mount(val_map, VAL_MAP_MOUNT),)
    return ContainerSpec(
        image=image,
        command=command,
        name=f"mlorch-{run_id}-prepare",
        user=user,
        mounts=mounts,
        labels=L.base_labels(run_id=run_id, backend=backend.name, role="prepare"),
        environment=dict(SINGLE_THREADED),
    )


def synthetic_spec(
    backend: BackendDef, image: str, run_id: str, out: Path, images: int, seed: int, user: str
) -> ContainerSpec:
    """Generate the synthetic model and dataset into `out` (the only writable mount)."""
    return ContainerSpec(
        image=image,
        command=("synthetic", "--out", ASSETS_MOUNT, "--images", str(images), "--seed", str(seed)),
        name=f"mlorch-{run_id}-synthetic",
        user=user,
        mounts=(Mount(out, ASSETS_MOUNT, read_only=False),),
        labels=L.base_labels(run_id=run_id, backend=backend.name, role="assets"),
    )


def _min_agreement(minimum: float | None) -> tuple[str, ...]:
    return () if minimum is None else ("--min-agreement", str(minimum))


def model_spec(
    backend: BackendDef,
    image: str,
    run_id: str,
    *,
    model: Path,
    dataset: Path,
    count: int,
    artifacts: Path,
    calibration_list: Path | None,
    guard_samples: int,
    min_agreement: float | None,
    user: str,
    val_map: Path | None = None,
    method: str = CALIBRATION_METHOD,
) -> ContainerSpec:
    """The recipe's model preparation: graph rewrite, one calibration, the Q/DQ encodings and the
    accuracy guards of both (CPU twin and TensorRT models). Model, dataset and list read-only;
    artifacts written. `val_map` (read-only) replaces the dataset's own list: the filtered one of
    `--skip-bad`."""
    command = ["model", "--model", MODEL_MOUNT, "--dataset", DATA_MOUNT, "--count", str(count),
               "--out", ARTIFACTS_MOUNT, "--guard-samples", str(guard_samples),
               "--method", method, *_min_agreement(min_agreement)]  # fmt: skip
    mounts = [Mount(model, MODEL_MOUNT), Mount(dataset, DATA_MOUNT)]
    if calibration_list is not None:
        command += ["--calibration-list", CALIBRATION_MOUNT]
        mounts.append(Mount(calibration_list, CALIBRATION_MOUNT))
    if val_map is not None:
        command += ["--val-map", VAL_MAP_MOUNT]
        mounts.append(Mount(val_map, VAL_MAP_MOUNT))
    mounts.append(Mount(artifacts, ARTIFACTS_MOUNT, read_only=False))
    return ContainerSpec(
        image=image,
        command=tuple(command),
        name=f"mlorch-{run_id}-model",
        user=user,
        mounts=tuple(mounts),
        labels=L.base_labels(run_id=run_id, backend=backend.name, role="model"),
    )


def engines_spec(
    backend: BackendDef,
    image: str,
    run_id: str,
    *,
    artifacts: Path,
    settings: Path,
    cache: Path,
    engines: Path,
    scenarios: tuple[Scenario, ...],
    count: int,
    guard_tag: str,
    min_agreement: float | None,
    user: str,
    gpu_access: str,
) -> ContainerSpec:
    """TensorRT engines for the run's scenarios (built once per key into the engine cache), each
    guarded against the FP32 and true labels before any test uses it."""
    command = ("engines", "--artifacts", ARTIFACTS_MOUNT, "--settings", SETTINGS_MOUNT,
               "--cache", CACHE_MOUNT, "--count", str(count), "--engines", ENGINES_MOUNT,
               "--scenarios", ",".join(s.value for s in scenarios), "--guard-tag", guard_tag,
               *_min_agreement(min_agreement))  # fmt: skip
    return ContainerSpec(
        image=image,
        command=command,
        name=f"mlorch-{run_id}-engines",
        user=user,
        mounts=(
            Mount(artifacts, ARTIFACTS_MOUNT),
            Mount(settings, SETTINGS_MOUNT),
            Mount(cache, CACHE_MOUNT),
            Mount(engines, ENGINES_MOUNT, read_only=False),
        ),
        labels=L.base_labels(run_id=run_id, backend=backend.name, role="engines"),
        gpus=True,
        gpu_access=gpu_access,
    )


def loadgen_command(
    scenario: Scenario,
    mode: Mode,
    device: Device,
    count: int,
    performance_count: int,
    threads: int | None,
    max_batchsize: int | None,
    recipe: RecipeInputs | None = None,
    audit: AuditInputs | None = None,
    sizing: str | None = None,
) -> tuple[str, ...]:
    command = [
        "run",
        "--scenario",
        scenario.value,
        "--mode",
        mode.value,
        "--model",
        MODEL_MOUNT,
        "--cache",
        CACHE_MOUNT,
        "--count",
        str(count),
        "--performance-count",
        str(performance_count),
        "--user-conf",
        USER_CONF_MOUNT,
        "--output",
        RESULTS_MOUNT,
        "--device",
        device.value,
    ]
    if audit is not None:
        command += audit.args()
    if sizing is not None:  # measure first, size the test from it (contract.sizing)
        command += ["--sizing", sizing]
    if recipe is not None:  # the recipe's batches, streams and threads come from its settings
        return (*command, *recipe.args())
    if max_batchsize is not None:
        command += ["--max-batchsize", str(max_batchsize)]
    if threads:
        command += ["--threads", str(threads)]
    return tuple(command)


def loadgen_spec(
    backend: BackendDef,
    image: str,
    run_id: str,
    scenario: Scenario,
    mode: Mode,
    device: Device,
    *,
    model: Path,
    cache: Path,
    user_conf: Path,
    results: Path,
    user: str,
    count: int,
    performance_count: int,
    threads: int | None,
    max_batchsize: int | None,
    gpu_access: str | None = None,
    recipe: RecipeInputs | None = None,
    audit: AuditInputs | None = None,
    sizing: str | None = None,
) -> ContainerSpec:
    """One LoadGen test in one container: model, cache and user.conf read-only, results writable.

    With `audit`, the test is that compliance audit: its audit.config is mounted read-only and
    passed to the SUT; what the backend does is otherwise the same as its performance run."""
    what = audit.test.lower() if audit is not None else mode.short
    extra_labels = {"audit": audit.test} if audit is not None else {}
    command = loadgen_command(
        scenario,
        mode,
        device,
        count,
        performance_count,
        threads,
        max_batchsize,
        recipe,
        audit,
        sizing,
    )
    return ContainerSpec(
        image=image,
        command=command,
        name=f"mlorch-{run_id}-{scenario.value.lower()}-{what}",
        user=user,
        mounts=(
            Mount(model, MODEL_MOUNT),
            Mount(cache, CACHE_MOUNT),
            Mount(user_conf, USER_CONF_MOUNT),
            *(recipe.mounts() if recipe is not None else ()),
            *(audit.mounts() if audit is not None else ()),
            Mount(results, RESULTS_MOUNT, read_only=False),
        ),
        labels=L.base_labels(
            run_id=run_id,
            backend=backend.name,
            role="sut",
            scenario=scenario.value,
            mode=mode.value,
            **extra_labels,
        ),
        working_dir=RESULTS_MOUNT,
        gpus=device is Device.CUDA,
        gpu_access=gpu_access or "hook",
    )


def throughput_spec(
    backend: BackendDef,
    image: str,
    *,
    model: Path,
    cache: Path,
    count: int,
    device: Device,
    seconds: float,
    user: str,
    recipe: RecipeInputs | None = None,
    scenario: Scenario = Scenario.OFFLINE,
) -> ContainerSpec:
    """Raw inference throughput in the SUT image, no LoadGen (the benchmarks' baseline); a
    recipe backend measures its engine with the scenario's settings."""
    command: tuple[str, ...] = ("throughput", "--cache", CACHE_MOUNT, "--count", str(count),
                                "--seconds", str(seconds), "--device", device.value)  # fmt: skip
    mounts = [Mount(model, MODEL_MOUNT), Mount(cache, CACHE_MOUNT)]
    if recipe is None:
        command = (*command, "--model", MODEL_MOUNT)
    else:
        command = (*command, "--scenario", scenario.value, *recipe.args())
        mounts += recipe.mounts()
    return ContainerSpec(
        image=image,
        command=command,
        name=f"mlorch-bench-{os.getpid()}",
        user=user,
        mounts=tuple(mounts),
        labels=L.base_labels(backend=backend.name, role="benchmark"),
        gpus=device is Device.CUDA,
    )

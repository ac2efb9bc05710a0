"""The campaign file: which systems (Slurm nodes) run which backends and scenarios, and how.

```toml
[campaign]
name = "lab-a"
results = "/shared/mlorch"          # storage every node sees
profile = "quick"                   # or "full"
backends = ["reference", "dell-trt"]
scenarios = ["Offline", "SingleStream"]

[campaign.up]                       # `mlorch up` options for every unit (as up's flags)
count = 64

[slurm]
partition = "gpu"                   # optional; account, time_limit, extra_args, max_requeue

[[system]]
id = "lab-a-node1"                  # the system's id in the tree (default: the node name)
node = "node1"                      # a Slurm node name (or constraint = "h100")
device = "cpu"                      # or "cuda" (--gres=gpu:N, N from the node)
[system.up]                         # this system's own up options (override the campaign's)
```

Validated with every unknown key named (a typo never silently changes a campaign).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator

from orchestrator.config import Calibration, Device, Mode, Profile, Scenario, StrictModel
from orchestrator.errors import ConfigError

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


class UpOptions(StrictModel):
    """The `mlorch up` options a campaign or a system may set (paths as the nodes see them)."""

    config: Path | None = None
    set: tuple[str, ...] = ()
    model: Path | None = None
    dataset: Path | None = None
    count: int | None = Field(default=None, gt=0)
    harness_profile: str | None = None
    calibration_list: Path | None = None
    calibration: Calibration | None = None
    base_image: str | None = None
    wheelhouse: Path | None = None
    timeout: int | None = Field(default=None, gt=0)

    def merged(self, other: UpOptions) -> UpOptions:
        """These options, overridden by what `other` sets."""
        given = other.model_dump(exclude_defaults=True)
        return self.model_copy(update=given)

    def argv(self) -> list[str]:
        """As `mlorch up` flags."""
        args: list[str] = []
        for name, value in self.model_dump(exclude_defaults=True).items():
            flag = "--" + name.replace("_", "-")
            if name == "set":
                for item in value:
                    args += ["--set", str(item)]
            else:
                args += [flag, str(value)]
        return args


class CampaignTable(StrictModel):
    name: str
    results: Path
    profile: Profile = Profile.QUICK
    backends: tuple[str, ...] = Field(min_length=1)
    scenarios: tuple[Scenario, ...] = Field(min_length=1)
    modes: tuple[Mode, ...] = (Mode.PERFORMANCE, Mode.ACCURACY)
    up: UpOptions = UpOptions()

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError("letters, digits, '.', '_' and '-' (a folder name), at most 63")
        return value


class SlurmTable(StrictModel):
    partition: str | None = None
    account: str | None = None
    time_limit: str | None = None  # sbatch --time
    extra_args: tuple[str, ...] = ()
    max_requeue: int = Field(default=2, ge=0)  # failed jobs per system before its node is out
    # The command that runs mlorch on the nodes (default: this mlorch's Python, `-m orchestrator`:
    # the same install path on every node, as a shared install or image has it).
    mlorch: tuple[str, ...] = ()


class SystemTable(StrictModel):
    id: str | None = None
    node: str | None = None
    constraint: str | None = None
    device: Device = Device.CPU
    gpus: int | None = Field(default=None, ge=1)  # cuda: --gres=gpu:N (default: the node's)
    up: UpOptions = UpOptions()

    @model_validator(mode="after")
    def _where(self) -> SystemTable:
        if (self.node is None) == (self.constraint is None):
            raise ValueError("name exactly one of node (a Slurm node) or constraint")
        if self.id is None and self.node is None:
            raise ValueError("a system placed by constraint needs an id")
        if self.id is not None and not _NAME.fullmatch(self.id):
            raise ValueError("id: letters, digits, '.', '_' and '-' (a folder name)")
        return self

    @property
    def system_id(self) -> str:
        return self.id or str(self.node)


class CampaignSpec(StrictModel):
    campaign: CampaignTable
    slurm: SlurmTable = SlurmTable()
    system: tuple[SystemTable, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_systems(self) -> CampaignSpec:
        ids = [system.system_id for system in self.system]
        doubles = sorted({i for i in ids if ids.count(i) > 1})
        if doubles:
            raise ValueError(f"system ids must differ: {', '.join(doubles)} twice")
        from orchestrator.images.catalog import BACKENDS

        unknown = [b for b in self.campaign.backends if b not in BACKENDS]
        if unknown:
            raise ValueError(f"unknown backend {unknown[0]!r} (known: {', '.join(BACKENDS)})")
        return self

    @property
    def root(self) -> Path:
        """This campaign's folder on the shared storage."""
        return self.campaign.results / self.campaign.name

    def system_by_id(self, system_id: str) -> SystemTable:
        for system in self.system:
            if system.system_id == system_id:
                return system
        known = ", ".join(s.system_id for s in self.system)
        raise ConfigError(f"no system {system_id!r} in the campaign", hint=f"systems: {known}")


def _location(error: dict[str, Any]) -> str:
    return ".".join(str(part) for part in error.get("loc", ())) or "<root>"


def load_campaign(path: Path) -> CampaignSpec:
    """Read and validate a campaign file; one line naming the first problem otherwise."""
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"campaign file not found: {path}", hint="pass an existing file"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return CampaignSpec.model_validate(raw)
    except ValidationError as exc:
        first = dict(exc.errors()[0])
        where = _location(first)
        if first.get("type") == "extra_forbidden":
            raise ConfigError(
                f"{path}: unknown key '{where}'",
                key=where,
                hint="keys: [campaign] name results profile backends scenarios modes up, "
                "[slurm] partition account time_limit extra_args max_requeue mlorch, "
                "[[system]] id node constraint device gpus up",
            ) from None
        message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
        raise ConfigError(f"{path}: {where}: {message}", key=where) from None

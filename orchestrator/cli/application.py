"""The one object the root callback builds and hands to every command through ctx.obj."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.config import (
    Device,
    FileConfig,
    Profile,
    RunSpec,
    build_spec,
    load_file_config,
    merge_quick,
    merge_tuning,
)
from orchestrator.console import Terminal
from orchestrator.engine.client import DockerEngine

if TYPE_CHECKING:
    from orchestrator.images.catalog import BackendDef


@dataclass
class Application:
    terminal: Terminal
    debug: bool = False
    _engine: DockerEngine | None = field(default=None, repr=False)

    @property
    def engine(self) -> DockerEngine:
        """The Docker engine, connected on first use (so `--help` and `render` need none)."""
        if self._engine is None:
            self._engine = DockerEngine.connect()
        return self._engine

    def resolve_device(self, requested: Device | None) -> Device:
        if requested is not None:
            return requested
        from orchestrator.host.device import detect_device

        device, why = detect_device(self.engine)
        self.terminal.info(f"--device not given: using {device.value} ({why})")
        return device

    def spec(
        self,
        backend: str,
        device: Device | None,
        *,
        base_image: str | None,
        quick: bool,
        config: Path | None,
        overrides: dict[str, Any],
        drop: tuple[str, ...] = (),
    ) -> RunSpec:
        """Merge defaults < config file < flags into a validated RunSpec. `drop`: keys an
        `up A B` meant for its other backends (from the flags and the config file alike)."""
        from orchestrator.harness_settings import resolve_harness
        from orchestrator.images.catalog import get_backend

        definition = get_backend(backend)  # an unknown backend fails before anything else
        file_cfg = load_file_config(config) if config else FileConfig()
        device = self.resolve_device(device)
        values: dict[str, Any] = {
            key: value
            for key, value in file_cfg.model_dump(exclude_none=True).items()
            if key not in ("tuning", "quick")
        }
        values.update({key: value for key, value in overrides.items() if value is not None})
        for key in drop:
            values.pop(key, None)
        _refuse_foreign_options(definition, values)
        harness = resolve_harness(
            definition,
            device,
            tuple(values.get("set_overrides") or ()),
            values.get("harness_profile"),
        )
        if harness is not None:
            values["harness"] = harness.record()
            self.terminal.info(f"harness profile {harness.selection.profile.name}: "
                               f"{harness.selection.reason}")  # fmt: skip
        values["tuning"] = merge_tuning(
            device, file_cfg.tuning, harness.tuning() if harness else None
        )
        values["tuning_given"] = tuple(file_cfg.tuning or ())
        values["quick"] = merge_quick(file_cfg.quick)
        values.update(backend=backend, device=device)
        if base_image:
            values["base_image"] = base_image
        if quick:
            values["profile"] = Profile.QUICK
        return build_spec(values, str(config) if config else "options")


# Options of one kind of backend: given to the other kind they would be recorded, not used.
REFERENCE_ONLY = {"threads": "--threads", "max_batchsize": "--max-batchsize"}
RECIPE_ONLY = {
    "calibration_list": "--calibration-list",
    "calibration": "--calibration",
    "min_agreement": "--min-agreement",
}


def _refuse_foreign_options(definition: BackendDef, values: dict[str, Any]) -> None:
    from orchestrator.errors import ConfigError

    harness = bool(definition.harness_profiles)
    foreign = REFERENCE_ONLY if harness else RECIPE_ONLY
    given = [key for key in foreign if values.get(key) is not None]
    if not given:
        return
    flags = " and ".join(foreign[key] for key in given)
    verb = ("sets", "applies") if len(given) == 1 else ("set", "apply")
    if harness:
        raise ConfigError(
            f"{flags} {verb[0]} the reference SUT; {definition.name} takes its batches and threads "
            "from its harness settings",
            key=given[0],
            hint="use --set batch_size=N / --set threads_per_slot=N (optionally Scenario.key=N)",
        )
    raise ConfigError(
        f"{flags} {verb[1]} to dell-trt's model step; {definition.name} has none",
        key=given[0],
        hint=f"drop {'it' if len(given) == 1 else 'them'}, or run dell-trt",
    )

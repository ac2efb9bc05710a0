"""The ledger: every unit of a campaign, with an id that is a hash of what defines it.

A unit is one system × backend × scenario: one `mlorch up` on the system's node running that
scenario's modes (both by default) and, for the full profile, its compliance audits — a
submission takes a scenario's performance and accuracy logs from one run, and the audits
compare with that run's performance test. Planning the same file twice gives the same ids; a
change to anything a unit's result depends on (its node, device, profile, modes or up options)
gives that unit a new id, so its old attempts are not merged for it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from orchestrator.campaign.spec import CampaignSpec, SystemTable, UpOptions
from orchestrator.config import Device, Mode, Profile, Scenario


@dataclass(frozen=True)
class Unit:
    id: str
    system: str  # the campaign's system id
    backend: str
    scenario: Scenario
    modes: tuple[Mode, ...]
    compliance: bool  # TEST01 / TEST04 after the performance run (full profile)
    tree_id: str  # the system's id in the submission tree (one per node and backend)
    node: str | None
    constraint: str | None
    device: Device
    options: UpOptions

    def describe(self) -> str:
        modes = "+".join(mode.short for mode in self.modes)
        audits = " +TEST01/TEST04" if self.compliance else ""
        return f"{self.system} {self.backend} {self.scenario} {modes}{audits}"


def tree_id(spec: CampaignSpec, system: SystemTable, backend: str) -> str:
    """The system's id in the tree: the campaign's own, with the backend when there are two."""
    if len(spec.campaign.backends) == 1:
        return system.system_id
    return f"{system.system_id}-{backend}"


def _unit_id(defining: Mapping[str, object]) -> str:
    text = json.dumps(defining, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def plan_units(spec: CampaignSpec) -> list[Unit]:
    """Every unit, system by system, backend by backend, in the file's scenario order."""
    table = spec.campaign
    compliance = table.profile is Profile.FULL
    units = []
    for system in spec.system:
        options = table.up.merged(system.up)
        for backend in table.backends:
            for scenario in table.scenarios:
                defining = {
                    "campaign": table.name,
                    "system": system.system_id,
                    "node": system.node,
                    "constraint": system.constraint,
                    "device": system.device.value,
                    "gpus": system.gpus,
                    "backend": backend,
                    "scenario": scenario.value,
                    "modes": [mode.value for mode in table.modes],
                    "profile": table.profile.value,
                    "options": options.model_dump(mode="json", exclude_defaults=True),
                }
                units.append(
                    Unit(
                        id=_unit_id(defining),
                        system=system.system_id,
                        backend=backend,
                        scenario=scenario,
                        modes=table.modes,
                        compliance=compliance,
                        tree_id=tree_id(spec, system, backend),
                        node=system.node,
                        constraint=system.constraint,
                        device=system.device,
                        options=options,
                    )
                )
    return units


def up_argv(unit: Unit, profile: Profile, runs_dir: str) -> list[str]:
    """`mlorch up` arguments (after the command) that run `unit` into `runs_dir`."""
    argv = [unit.backend, "--device", unit.device.value, "--scenario", unit.scenario.value]
    for mode in unit.modes:
        argv += ["--mode", mode.value]
    if profile is Profile.QUICK:
        argv.append("--quick")
    argv += ["--compliance" if unit.compliance else "--no-compliance"]
    argv += ["--runs-dir", runs_dir, "--system-id", unit.tree_id]
    return argv + unit.options.argv()

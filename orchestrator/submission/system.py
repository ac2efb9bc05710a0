"""systems/<system_desc_id>.json: what the host told `up`, and what the user supplies.

Every required field is either detected (from the facts the run's manifest recorded: /proc,
/sys, NVML, the image's pip freeze) or taken from the user's TOML file; a field that is neither
is never filled with a placeholder: `require_complete` names every missing field and prints the
TOML to fill in. Values that are true by construction are not placeholders: a CPU-only system
has "0" accelerators and its accelerator fields are "N/A"; one node needs no network topology.

The TOML file:

    [system]                 # every system of the tree
    status = "available"
    cooling = "air"
    [backend.dell-trt]       # only the systems of one backend (wins over [system])
    system_name = "..."
    system_desc_id = "..."   # the folder/file name, instead of <host>-<accelerators>-<backend>
"""

from __future__ import annotations

import platform
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import ConfigError
from orchestrator.images.catalog import CUDA_BASES
from orchestrator.submission.layout import SYSTEM_TYPES, safe_name

# Required fields, in the checker's order (SYSTEM_DESC_REQUIRED_FIELDS, round v6.1).
SYSTEM_FIELDS = (
    "division", "submitter", "status", "system_name", "number_of_nodes",
    "host_processor_model_name", "host_processors_per_node", "host_processor_core_count",
    "host_memory_capacity", "host_storage_capacity", "host_storage_type",
    "accelerators_per_node", "accelerator_model_name", "accelerator_memory_capacity",
    "framework", "operating_system", "system_type", "other_software_stack",
    "host_processor_frequency", "host_processor_caches", "host_memory_configuration",
    "host_processor_interconnect", "host_networking", "host_networking_topology",
    "accelerator_frequency", "accelerator_host_interconnect", "accelerator_interconnect",
    "accelerator_interconnect_topology", "accelerator_memory_configuration",
    "accelerator_on-chip_memories", "cooling", "hw_notes", "sw_notes",
    "host_network_card_count", "system_type_detail",
)  # fmt: skip
# Fields the checker wants non-empty (SYSTEM_DESC_MEANINGFUL_RESPONSE_REQUIRED_FIELDS).
MEANINGFUL_FIELDS = frozenset(
    {
        "division", "submitter", "system_type", "status", "system_name", "number_of_nodes",
        "host_processor_model_name", "host_processors_per_node", "host_processor_core_count",
        "host_memory_capacity", "host_memory_configuration", "host_storage_capacity",
        "host_storage_type", "host_networking", "host_network_card_count",
        "host_networking_topology", "accelerators_per_node", "accelerator_model_name",
        "accelerator_memory_capacity", "accelerator_host_interconnect",
        "accelerator_memory_configuration", "accelerator_interconnect", "cooling", "framework",
        "operating_system", "other_software_stack",
    }
)  # fmt: skip
STATUSES = ("available", "preview", "rdi")
# What to write, for the TOML a missing field asks for.
FIELD_HINTS = {
    "status": "available, preview or rdi",
    "submitter": "your organization, as the folder name (or pass --submitter)",
    "system_name": "e.g. vendor and model of the machine",
    "cooling": "e.g. air, liquid",
    "host_memory_configuration": "e.g. 8x 32 GB DDR5-4800",
    "host_processor_interconnect": "e.g. 3x UPI 16 GT/s",
    "system_type_detail": "e.g. rack server, workstation, edge box",
    "accelerator_on-chip_memories": "e.g. 50 MB L2",
    "accelerator_memory_configuration": "e.g. HBM3",
    "accelerator_interconnect": "e.g. NVLink 4 (18 links), or PCIe only",
    "accelerator_interconnect_topology": "e.g. NVSwitch all-to-all",
}
NOT_APPLICABLE = "N/A"
SYSTEM_ID_KEY = "system_desc_id"
_MEMORY_TYPES = ("HBM3e", "HBM3", "HBM2e", "HBM2", "GDDR7", "GDDR6X", "GDDR6", "LPDDR5X")


class MissingSystemFields(ConfigError):
    """Required system fields that cannot be detected and were not supplied."""

    def __init__(self, message: str, snippet: str, *, hint: str) -> None:
        super().__init__(message, key="system", hint=hint)
        self.snippet = snippet

    @property
    def details(self) -> str:
        return self.snippet


@dataclass(frozen=True)
class UserFacts:
    """The user's TOML: fields for every system, and per backend."""

    common: dict[str, str] = field(default_factory=dict)
    backends: dict[str, dict[str, str]] = field(default_factory=dict)

    def for_backend(self, backend: str) -> dict[str, str]:
        return {**self.common, **self.backends.get(backend, {})}


ALLOWED_KEYS = frozenset(SYSTEM_FIELDS) - {"division"} | {SYSTEM_ID_KEY}


def load_user_facts(path: Path | None) -> UserFacts:
    """Read and validate the system facts TOML (unknown tables and keys are errors)."""
    if path is None:
        return UserFacts()
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"system facts file not found: {path}", key="system-facts") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}", key="system-facts") from exc
    unknown = set(raw) - {"system", "backend"}
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(
            f"{path}: unknown table '{key}'", key=key, hint="use [system] and [backend.<name>]"
        )
    common = _fields(path, "system", raw.get("system", {}))
    backends_raw = raw.get("backend", {})
    if not isinstance(backends_raw, dict):
        raise ConfigError(f"{path}: [backend] must hold one table per backend", key="backend")
    backends = {name: _fields(path, f"backend.{name}", t) for name, t in backends_raw.items()}
    return UserFacts(common, backends)


def _fields(path: Path, table: str, values: Any) -> dict[str, str]:
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: [{table}] must be a table", key=table)
    fields: dict[str, str] = {}
    for key, value in values.items():
        where = f"{table}.{key}"
        if key == "division":
            raise ConfigError(f"{path}: {where}: set by --division", key=where)
        if key not in ALLOWED_KEYS:
            raise ConfigError(
                f"{path}: unknown key '{where}'",
                key=where,
                hint="the keys are the fields of systems/<id>.json (MLPerf's names)",
            )
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ConfigError(f"{path}: {where}: expected a string or a number", key=where)
        text = str(value).strip()
        if key in MEANINGFUL_FIELDS and not text:
            raise ConfigError(f"{path}: {where}: must not be empty", key=where)
        if key == "status" and text not in STATUSES:
            raise ConfigError(
                f"{path}: {where}: {text!r} is not one of {', '.join(STATUSES)}", key=where
            )
        if key == "system_type" and text not in SYSTEM_TYPES:
            raise ConfigError(
                f"{path}: {where}: {text!r} is not one of {', '.join(SYSTEM_TYPES)}",
                key=where,
                hint="ResNet50 is an edge benchmark in v6.1; datacenter,edge adds Server",
            )
        fields[key] = text
    return fields


# --- what a run recorded -----------------------------------------------------------------------


@dataclass(frozen=True)
class RunFacts:
    """The facts of one run's system, from its manifest."""

    run_id: str
    backend: str
    device: str
    hostname: str
    host: Mapping[str, Any]  # manifest["host"]
    system: Mapping[str, Any]  # manifest["host"]["system"] (or probed now, see `probed_now`)
    image: Mapping[str, Any]
    mlorch_version: str
    probed_now: bool = False  # the run predates recorded system facts: read from this host
    system_id: str | None = None  # the run's own (`up --system-id`, set by campaigns)

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> RunFacts:
        from orchestrator.host.facts import system_facts

        host = manifest.get("host") or {}
        spec = manifest.get("spec") or {}
        system = host.get("system")
        probed = False
        hostname = str(host.get("hostname") or manifest.get("host_id") or "host")
        if not isinstance(system, dict):
            # An older manifest: only this very host can still be asked.
            system = system_facts() if hostname == platform.node() else {}
            probed = bool(system)
        return cls(
            run_id=str(manifest.get("run_id", "?")),
            backend=str(spec.get("backend", "?")),
            device=str(spec.get("device", "cpu")),
            hostname=hostname,
            host=host,
            system=system,
            image=manifest.get("image") or {},
            mlorch_version=str(manifest.get("mlorch_version", "?")),
            probed_now=probed,
            system_id=str(spec["system_id"]) if spec.get("system_id") else None,
        )

    @property
    def accelerators(self) -> Sequence[Mapping[str, Any]]:
        """The GPUs the run used: none on --device cpu, whatever the host has."""
        if self.device != "cuda":
            return []
        detailed = [g for g in self.system.get("accelerators") or [] if isinstance(g, dict)]
        if detailed:
            return detailed
        return [g for g in self.host.get("gpus") or [] if isinstance(g, dict)]

    def packages(self) -> dict[str, str]:
        """name → version from the image's pip freeze (names normalized: lower case, `-`)."""
        found = {}
        for line in self.image.get("pip_freeze") or []:
            name, sep, version = str(line).partition("==")
            if sep:
                found[name.strip().lower().replace("_", "-")] = version.strip()
        return found


def accelerator_label(facts: RunFacts) -> str:
    """`cpu`, or `<n>x<GPU name>` (the GPUs of the run), for system ids."""
    gpus = facts.accelerators
    if not gpus:
        return "cpu"
    names = [str(g.get("name") or "GPU").removeprefix("NVIDIA ").strip() for g in gpus]
    return "+".join(f"{names.count(n)}x{n}" for n in dict.fromkeys(names))


def system_desc_id(facts: RunFacts, user: UserFacts) -> str:
    """One id per host, accelerators and backend, so two backends' results sit side by side;
    the facts file's id, or the run's own (a campaign's system), replaces it."""
    chosen = user.for_backend(facts.backend).get(SYSTEM_ID_KEY) or facts.system_id
    if chosen:
        return safe_name(chosen)
    return safe_name(f"{facts.hostname}-{accelerator_label(facts)}-{facts.backend}")


# --- the fields --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SystemDescription:
    system_id: str
    backend: str
    fields: dict[str, str]  # every field that has a value, in SYSTEM_FIELDS order
    missing: tuple[str, ...]  # required fields neither detected nor supplied
    supplied: tuple[str, ...]  # fields taken from the user's TOML

    def json_fields(self) -> dict[str, str]:
        return dict(self.fields)


def describe_system(
    facts: RunFacts,
    user: UserFacts,
    *,
    division: str,
    submitter: str | None,
    system_type: str,
) -> SystemDescription:
    """Every field of the system a run ran on: supplied (TOML, --submitter) over detected."""
    supplied = user.for_backend(facts.backend)
    supplied.pop(SYSTEM_ID_KEY, None)
    supplied.pop("system_type", None)  # the tree's planner chose it (and honoured the user's)
    if submitter:
        supplied["submitter"] = submitter
    detected = _detected(facts)
    detected.update(division=division, system_type=system_type)
    fields: dict[str, str] = {}
    missing = []
    for name in SYSTEM_FIELDS:
        value = supplied.get(name, detected.get(name))
        if value is None:
            missing.append(name)
        else:
            fields[name] = value
    return SystemDescription(
        system_desc_id(facts, user),
        facts.backend,
        fields,
        tuple(missing),
        tuple(name for name in SYSTEM_FIELDS if name in supplied),
    )


def _detected(facts: RunFacts) -> dict[str, str | None]:
    system = facts.system
    gpus = facts.accelerators
    values: dict[str, str | None] = {
        "number_of_nodes": "1",  # mlorch runs the SUT and LoadGen on one host
        "host_processor_model_name": _text(system.get("cpu_model") or facts.host.get("cpu_model")),
        "host_processors_per_node": _text(system.get("sockets")),
        "host_processor_core_count": _text(system.get("cores_per_socket")),
        "host_processor_frequency": _frequency(system),
        "host_processor_caches": _caches(system.get("caches") or []),
        "host_processor_interconnect": (
            f"{NOT_APPLICABLE} (single socket)" if system.get("sockets") == 1 else None
        ),
        "host_memory_capacity": _memory(system.get("memory_gib") or facts.host.get("memory_gib")),
        "host_memory_configuration": None,  # DIMMs: only DMI tables (root) could tell
        "host_networking_topology": f"{NOT_APPLICABLE} (single node, no network in the run)",
        "hw_notes": "host facts detected by mlorch from /proc, /sys and NVML",
        "sw_notes": (
            f"run with mlorch {facts.mlorch_version} ({facts.backend} backend, "
            f"--device {facts.device}), run {facts.run_id}"
        ),
        "system_type_detail": _text((system.get("dmi") or {}).get("chassis")),
        "system_name": _system_name(facts),
        "framework": _framework(facts),
        "operating_system": _operating_system(system),
        "other_software_stack": _software_stack(facts),
    }
    values.update(_storage(system.get("disks")))
    values.update(_networking(system.get("network_cards")))
    values.update(_accelerator_fields(gpus))
    return values


def _text(value: Any) -> str | None:
    return None if value is None or str(value).strip() == "" else str(value).strip()


def _frequency(system: Mapping[str, Any]) -> str | None:
    if system.get("cpu_max_mhz"):
        return f"{system['cpu_max_mhz']} MHz (maximum)"
    if system.get("cpu_mhz"):
        return f"{system['cpu_mhz']} MHz (as reported by the OS)"
    return None


def _caches(caches: Sequence[Any]) -> str | None:
    parts = []
    for cache in caches:
        if not isinstance(cache, dict):
            continue
        kind = {"Data": "d", "Instruction": "i"}.get(str(cache.get("type")), "")
        shared = cache.get("shared_by")
        scope = (
            "per core"
            if shared in (1, 2) and cache.get("level", 3) < 3
            else (f"shared by {shared} CPUs" if shared else "")
        )
        parts.append(f"L{cache.get('level')}{kind} {cache.get('size')} {scope}".strip())
    return ", ".join(parts) or None


def _memory(gib: Any) -> str | None:
    return f"{float(gib):g} GiB (visible to the OS)" if isinstance(gib, int | float) else None


def _bytes(count: int) -> str:
    return f"{count / 1e12:.1f} TB" if count >= 1e12 else f"{count / 1e9:.0f} GB"


def _storage(disks: Any) -> dict[str, str | None]:
    disks = [d for d in disks or [] if isinstance(d, dict)]
    if not disks:
        return {"host_storage_capacity": None, "host_storage_type": None}
    capacity = ", ".join(f"{_bytes(int(d['bytes']))} ({d.get('name')})" for d in disks)
    kinds = ", ".join(dict.fromkeys(str(d.get("kind")) for d in disks))
    return {"host_storage_capacity": capacity, "host_storage_type": kinds}


def _networking(cards: Any) -> dict[str, str | None]:
    cards = [c for c in cards or [] if isinstance(c, dict)]
    if not cards:
        return {
            "host_networking": f"{NOT_APPLICABLE} (no physical network interface)",
            "host_network_card_count": "0",
        }
    described = []
    for card in cards:
        speed = f"{card['speed_mbps'] / 1000:g} Gbit/s " if card.get("speed_mbps") else ""
        driver = f" ({card['driver']})" if card.get("driver") else ""
        described.append(f"{speed}{card.get('kind') or 'network'}{driver}")
    counted = {d: described.count(d) for d in described}
    return {
        "host_networking": ", ".join(f"{n}x {d}" for d, n in counted.items()),
        "host_network_card_count": str(len(cards)),
    }


def _system_name(facts: RunFacts) -> str | None:
    dmi = facts.system.get("dmi") or {}
    machine = " ".join(str(dmi[k]) for k in ("vendor", "product") if dmi.get(k))
    if not machine:
        return None
    gpus = facts.accelerators
    what = accelerator_label(facts) if gpus else "CPU only"
    return f"{machine} ({what}, mlorch {facts.backend})"


def _operating_system(system: Mapping[str, Any]) -> str | None:
    release = system.get("os_release")
    if not release:
        return None
    kernel = system.get("kernel")
    return f"{release} (kernel {kernel})" if kernel else str(release)


def _cuda_base(facts: RunFacts) -> Any:
    return CUDA_BASES.get(str(facts.image.get("base_image")))


def _framework(facts: RunFacts) -> str | None:
    packages = facts.packages()
    base = _cuda_base(facts)
    if facts.backend == "dell-trt" and facts.device == "cuda":
        return f"TensorRT {base.tensorrt}, CUDA {base.cuda}" if base else None
    runtime = "onnxruntime-gpu" if facts.device == "cuda" else "onnxruntime"
    version = packages.get(runtime)
    if version is None:
        return None
    if facts.device == "cuda":
        return f"{runtime} {version} (CUDA execution provider)" + (
            f", CUDA {base.cuda}" if base else ""
        )
    if facts.backend == "dell-trt":
        return f"onnxruntime {version} (CPU execution provider, INT8 model)"
    return f"onnxruntime {version} (CPU execution provider)"


SOFTWARE = ("mlcommons-loadgen", "numpy", "opencv-python-headless", "onnx")


def _software_stack(facts: RunFacts) -> str | None:
    packages = facts.packages()
    if not packages:
        return None
    parts = [f"{name} {packages[name]}" for name in SOFTWARE if name in packages]
    python = facts.image.get("python")
    base = facts.image.get("base_image")
    if python:
        parts.append(f"Python {python} in a container" + (f" on {base}" if base else ""))
    driver = facts.host.get("nvidia_driver")
    if facts.device == "cuda" and driver:
        parts.append(f"NVIDIA driver {driver}")
    cuda_base = _cuda_base(facts)
    if facts.device == "cuda" and cuda_base:
        parts.append(f"cuDNN {cuda_base.cudnn}")
    parts.append(f"mlorch {facts.mlorch_version}")
    return ", ".join(parts)


def _accelerator_fields(gpus: Sequence[Mapping[str, Any]]) -> dict[str, str | None]:
    names = ("accelerator_model_name", "accelerator_memory_capacity", "accelerator_frequency",
             "accelerator_host_interconnect", "accelerator_interconnect",
             "accelerator_interconnect_topology", "accelerator_memory_configuration",
             "accelerator_on-chip_memories")  # fmt: skip
    if not gpus:
        # CPU only: nothing to describe; the checker reads the count as a number.
        return {"accelerators_per_node": "0", **dict.fromkeys(names, NOT_APPLICABLE)}
    first = gpus[0]
    name = _text(first.get("name"))
    memory = first.get("memory_mib")
    clock = first.get("max_sm_clock_mhz")
    gen, width = first.get("pcie_generation"), first.get("pcie_width")
    links = [int(g.get("nvlinks_active") or 0) for g in gpus]
    single = len(gpus) == 1
    if any(links):
        interconnect: str | None = f"NVLink ({max(links)} active links per GPU)"
    else:
        interconnect = f"{NOT_APPLICABLE} (single accelerator)" if single else None
    memory_type = next((m for m in _MEMORY_TYPES if name and m.lower() in name.lower()), None)
    return {
        "accelerators_per_node": str(len(gpus)),
        "accelerator_model_name": name,
        "accelerator_memory_capacity": (
            f"{memory / 1024:.0f} GB" if isinstance(memory, int | float) else None
        ),
        "accelerator_frequency": f"{clock} MHz (maximum SM clock)" if clock else None,
        "accelerator_host_interconnect": f"PCIe Gen{gen} x{width}" if gen and width else None,
        "accelerator_interconnect": interconnect,
        "accelerator_interconnect_topology": (
            f"{NOT_APPLICABLE} (single accelerator)" if single else None
        ),
        "accelerator_memory_configuration": memory_type,
        "accelerator_on-chip_memories": None,
    }


# --- asking for what is missing ----------------------------------------------------------------


def require_complete(systems: Sequence[SystemDescription], facts_file: Path | None) -> None:
    """Raise MissingSystemFields naming every field any system lacks, with the TOML to fill."""
    lacking = [s for s in systems if s.missing]
    if not lacking:
        return
    common = set.intersection(*(set(s.missing) for s in lacking))
    lines = ["[system]"]
    lines += [_snippet_line(name) for name in SYSTEM_FIELDS if name in common]
    for description in lacking:
        own = [name for name in description.missing if name not in common]
        if own:
            lines += ["", f"[backend.{description.backend}]  # {description.system_id}"]
            lines += [_snippet_line(name) for name in own]
    named = "; ".join(f"{s.system_id}: {', '.join(s.missing)}" for s in lacking)
    where = f"add them to {facts_file}" if facts_file else "write them to a file"
    raise MissingSystemFields(
        f"systems/<id>.json needs fields mlorch cannot detect: {named}",
        "\n".join(lines),
        hint=f'{where} as above (fill every ""), and pass it with --system-facts FILE',
    )


def _snippet_line(name: str) -> str:
    key = name if name.replace("_", "").isalnum() else f'"{name}"'
    hint = FIELD_HINTS.get(name)
    return f'{key} = ""' + (f"  # {hint}" if hint else "")

"""Labels on everything mlorch creates, so orphans can be found and removed (`mlorch down`)."""

from __future__ import annotations

from orchestrator import __version__

TOOL = "mlorch.tool"
TOOL_VALUE = "mlorch"
VERSION = "mlorch.version"
RUN_ID = "mlorch.run-id"
BACKEND = "mlorch.backend"
ROLE = "mlorch.role"
SCENARIO = "mlorch.scenario"
MODE = "mlorch.mode"
DOCKERFILE_SHA = "mlorch.dockerfile-sha256"
BASE_IMAGE = "mlorch.base-image"
BASE_IMAGE_ID = "mlorch.base-image-id"
# The mlorch process that created a container (see orchestrator.engine.owner).
OWNER_HOST = "mlorch.owner-host"
OWNER_PID = "mlorch.owner-pid"
OWNER_BOOT_ID = "mlorch.owner-boot-id"
OWNER_STARTED = "mlorch.owner-started"


def base_labels(**extra: str) -> dict[str, str]:
    """The labels every mlorch container and image carries, plus `extra` (key suffix → value)."""
    labels = {TOOL: TOOL_VALUE, VERSION: __version__}
    for key, value in extra.items():
        labels[f"mlorch.{key.replace('_', '-')}"] = value
    return labels


def tool_filter() -> dict[str, str]:
    return {"label": f"{TOOL}={TOOL_VALUE}"}

"""setup-host.sh's install step on a stock Debian 12 Python (PEP 668 EXTERNALLY-MANAGED marker).

The local base image is such a Python: python3 + python3-venv, no pip, the marker in place. The
checkout is copied into a container without network; pip gets the wheels of mlorch's dependencies
(downloaded here for the image's platform) through `--wheelhouse`, as an air-gapped lab would.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import tomllib
from pathlib import Path

import pytest

from orchestrator import __version__
from orchestrator.engine import labels as L
from orchestrator.engine.client import DockerEngine
from orchestrator.engine.container import ContainerSpec, Mount, run_to_completion
from orchestrator.images.build import probe_local_image
from orchestrator.images.catalog import LOCAL_BASE
from orchestrator.images.wheelhouse import COMPLETE, export_wheelhouse, wheelhouse_key

pytestmark = pytest.mark.engine

REPO = Path(__file__).resolve().parents[2]
INSTALL_TIMEOUT_S = 600
# Copy the checkout without what a developer's tree may hold beside the sources.
COPY_CHECKOUT = (
    "mkdir -p $SRC && tar -C /checkout --exclude=./.venv --exclude=./.git --exclude=./runs "
    "--exclude='*/__pycache__' -cf - . | tar -C $SRC --no-same-owner -xf -"
)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sources, readable by any uid: a clone may sit in a 0700 folder (`mktemp -d`), which the
    container's non-root user could not enter if the checkout itself were mounted."""
    copy = tmp_path_factory.mktemp("checkout") / "src"
    shutil.copytree(
        REPO, copy, symlinks=True, ignore=shutil.ignore_patterns(".venv", ".git", "runs")
    )
    for folder in (copy, *(path for path in copy.rglob("*") if path.is_dir())):
        folder.chmod(folder.stat().st_mode | 0o755)
    return copy


@pytest.fixture(scope="module")
def host_wheels(engine: DockerEngine, test_cache: Path) -> Path:
    """The wheels `pip install -e .` needs, for the base image's Python: the dependencies, the
    build backend, and hatchling's editable-install hook (`editables`)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    requirements = (
        *project["project"]["dependencies"],
        *project["build-system"]["requires"],
        "editables",
    )
    platform = probe_local_image(engine, LOCAL_BASE)
    folder = test_cache / "host-wheelhouse" / wheelhouse_key(requirements, platform)
    if not (folder / COMPLETE).is_file():
        export_wheelhouse(requirements, platform, folder)
    return folder


def run_in_base(
    engine: DockerEngine,
    script: str,
    checkout: Path,
    wheels: Path,
    *,
    user: str,
    read_only_rootfs: bool,
) -> str:
    """Run `script` (bash) in a network-less base-image container; return its whole output."""
    spec = ContainerSpec(
        image=LOCAL_BASE,
        command=("bash", "-c", script),
        name=f"mlorch-test-setup-{os.getpid()}",
        user=user,
        mounts=(Mount(checkout, "/checkout"), Mount(wheels, "/wheels")),
        labels=L.base_labels(role="test-setup-host"),
        read_only_rootfs=read_only_rootfs,
        # A writable scratch file system for the read-only case (TMPDIR, HOME, the copy).
        tmpfs={"/scratch": "rw,exec,size=2g"},
        environment={"TMPDIR": "/scratch"},
    )
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "setup.log"
        run_to_completion(
            engine,
            spec,
            timeout_s=INSTALL_TIMEOUT_S,
            log_file=log,
            on_line=lambda _line: None,
            what="setup-host.sh in the base image",
        )
        return log.read_text()


def marker(output: str, name: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith(f"{name} ")]
    assert len(lines) == 1, output
    return lines[0].removeprefix(f"{name} ")


def test_root_install_on_an_externally_managed_python(
    engine: DockerEngine, checkout: Path, host_wheels: Path
) -> None:
    script = f"""
set -euo pipefail
SRC=/src
{COPY_CHECKOUT}
echo "MARKER $(ls /usr/lib/python3*/EXTERNALLY-MANAGED)"
echo "SYSTEM_PIP $(python3 -m pip --version >/dev/null 2>&1 && echo present || echo absent)"
$SRC/scripts/setup-host.sh --skip-engine --wheelhouse /wheels
echo "VERSION $(mlorch --version)"
echo "ON_PATH $(command -v mlorch) -> $(readlink /usr/local/bin/mlorch)"
$SRC/scripts/setup-host.sh --skip-engine --wheelhouse /wheels 2>&1 | sed 's/^/AGAIN: /'
# What the old script did, with the venv's pip aimed at the system Python: PEP 668 refuses it.
if $SRC/.venv/bin/python -m pip --python /usr/bin/python3 install --no-index \\
        --find-links /wheels typer >/scratch/system-pip.log 2>&1; then
    echo "SYSTEM_INSTALL accepted"
else
    echo "SYSTEM_INSTALL refused $(grep -o externally-managed-environment /scratch/system-pip.log \\
        | head -n 1)"
fi
"""
    output = run_in_base(engine, script, checkout, host_wheels, user="0:0", read_only_rootfs=False)
    assert marker(output, "MARKER").endswith("/EXTERNALLY-MANAGED")
    assert marker(output, "SYSTEM_PIP") == "absent"
    assert marker(output, "VERSION") == f"mlorch {__version__}"
    assert marker(output, "ON_PATH") == "/usr/local/bin/mlorch -> /src/.venv/bin/mlorch"
    assert f"setup-host: ready: mlorch {__version__} in /src/.venv" in output
    again = [line for line in output.splitlines() if line.startswith("AGAIN: ")]
    assert again == [
        "AGAIN: setup-host: mlorch is already installed in /src/.venv (nothing changed)",
        f"AGAIN: setup-host: ready: mlorch {__version__} in /src/.venv",
    ]
    assert marker(output, "SYSTEM_INSTALL") == "refused externally-managed-environment"


def test_user_install_links_into_local_bin_and_says_it_is_not_on_path(
    engine: DockerEngine, checkout: Path, host_wheels: Path
) -> None:
    # A non-root user on a read-only root file system: everything lands under $HOME and the
    # checkout (both on a scratch file system here), and the script says how to reach `mlorch`.
    script = f"""
set -euo pipefail
export HOME=/scratch/home
SRC=/scratch/src
{COPY_CHECKOUT}
$SRC/scripts/setup-host.sh --skip-engine --wheelhouse /wheels
echo "LINK $(readlink $HOME/.local/bin/mlorch)"
echo "VERSION $(PATH=$HOME/.local/bin:$PATH mlorch --version)"
"""
    output = run_in_base(
        engine, script, checkout, host_wheels, user="65534:65534", read_only_rootfs=True
    )
    assert marker(output, "LINK") == "/scratch/src/.venv/bin/mlorch"
    assert marker(output, "VERSION") == f"mlorch {__version__}"
    assert (
        "setup-host: note: /scratch/home/.local/bin is not on PATH: run "
        "/scratch/home/.local/bin/mlorch, "
        "or add it:"
    ) in output

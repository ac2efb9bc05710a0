"""scripts/setup-host.sh without Docker: which Python builds the venv, and one line per refusal.

Fake interpreters on PATH stand in for the distribution's Python; `--no-apt` keeps the script from
installing anything, and `--skip-engine` from touching Docker.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.subprocess

REPO = Path(__file__).resolve().parents[2]
SETUP = REPO / "scripts" / "setup-host.sh"
PYTHON_ENV = REPO / "scripts" / "python-env.sh"
# Every name find_python tries: the real interpreters on this host's PATH must not answer first.
PYTHON_NAMES = ("python3", "python3.11", "python3.12", "python3.13", "python3.14")


def fake_python(
    folder: Path, version: str, *, has_venv: bool = True, names: tuple[str, ...] = PYTHON_NAMES
) -> Path:
    """Interpreters that report `version` and (optionally) lack ensurepip, like Debian without
    pythonX.Y-venv."""
    folder.mkdir(parents=True, exist_ok=True)
    venv_answer = "exit 0" if has_venv else "echo 'No module named ensurepip' >&2; exit 1"
    body = (
        "#!/bin/sh\n"
        'case "$*" in\n'
        f"  *ensurepip*) {venv_answer} ;;\n"
        f"  *version_info*) echo {version} ;;\n"
        '  *) echo "fake python: unexpected call: $*" >&2; exit 3 ;;\n'
        "esac\n"
    )
    for name in names:
        path = folder / name
        path.write_text(body)
        path.chmod(0o755)
    return folder / names[0]


def setup_host(
    tmp_path: Path, *args: str, fake_bin: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    path = os.environ["PATH"]
    if fake_bin is not None:
        path = f"{fake_bin}:{path}"
    return subprocess.run(
        ["bash", str(SETUP), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **os.environ,
            "PATH": path,
            "HOME": str(tmp_path / "home"),
            "MLORCH_VENV": str(tmp_path / "venv"),
            "MLORCH_BIN_DIR": str(tmp_path / "bin"),
            "TMPDIR": str(tmp_path),  # failure logs stay in the test's folder
            **(env or {}),
        },
        check=False,
    )


def stderr_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def in_python_env(snippet: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f'source "{PYTHON_ENV}"; {snippet}'],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_too_old_python_is_one_line_with_the_command(tmp_path: Path) -> None:
    python3 = fake_python(tmp_path / "fake", "3.10")
    result = setup_host(tmp_path, "--skip-engine", "--no-apt", fake_bin=python3.parent)
    assert result.returncode == 1, result.stderr
    lines = stderr_lines(result)
    assert len(lines) == 2, lines  # the missing thing, then the verdict
    assert lines[0].startswith("setup-host: missing: Python 3.11 or newer")
    assert f"python3 is 3.10 at {python3}" in lines[0]
    assert "apt-get install python3.11 python3.11-venv" in lines[0]
    assert "MLORCH_PYTHON" in lines[0]
    assert lines[1] == (
        "setup-host: error: 1 required thing(s) missing (listed above); "
        "install them and run this again"
    )
    assert not (tmp_path / "venv").exists()


def test_mlorch_python_that_is_too_old_is_refused(tmp_path: Path) -> None:
    python3 = fake_python(tmp_path / "fake", "3.9")
    result = setup_host(tmp_path, "--skip-engine", "--no-apt", env={"MLORCH_PYTHON": str(python3)})
    assert result.returncode == 1
    assert stderr_lines(result) == [
        f"setup-host: error: MLORCH_PYTHON={python3} is Python 3.9; mlorch needs 3.11 or newer: "
        "point MLORCH_PYTHON at one"
    ]


def test_missing_venv_module_names_the_debian_package(tmp_path: Path) -> None:
    python3 = fake_python(tmp_path / "fake", "3.12", has_venv=False)
    result = setup_host(tmp_path, "--skip-engine", "--no-apt", fake_bin=python3.parent)
    assert result.returncode == 1
    lines = stderr_lines(result)
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"setup-host: missing: the venv module of {python3} (Python 3.12)")
    assert lines[0].endswith("apt-get install python3.12-venv")


def test_a_folder_that_is_not_a_venv_is_never_cleared(tmp_path: Path) -> None:
    precious = tmp_path / "venv" / "notes.txt"
    precious.parent.mkdir()
    precious.write_text("keep me")
    result = setup_host(
        tmp_path, "--skip-engine", "--no-apt", env={"MLORCH_PYTHON": sys.executable}
    )
    assert result.returncode == 1
    assert stderr_lines(result) == [
        f"setup-host: error: {precious.parent} exists and is not a virtual environment; "
        "move it away or set MLORCH_VENV"
    ]
    assert precious.read_text() == "keep me"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--frobnicate",), "setup-host: error: unknown option --frobnicate (see --help)"),
        (("--wheelhouse",), "setup-host: error: --wheelhouse needs a folder"),
    ],
)
def test_usage_errors(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    result = setup_host(tmp_path, *args)
    assert result.returncode == 2
    assert stderr_lines(result) == [message]


def test_missing_wheelhouse_folder(tmp_path: Path) -> None:
    result = setup_host(tmp_path, "--skip-engine", "--wheelhouse", str(tmp_path / "nowhere"))
    assert result.returncode == 1
    assert stderr_lines(result) == [
        f"setup-host: error: wheelhouse folder not found: {tmp_path / 'nowhere'}"
    ]


@pytest.mark.parametrize(
    ("have", "want", "ok"),
    [
        ("3.11", "3.11", True),
        ("3.12", "3.11", True),
        ("3.9", "3.11", False),  # numeric, not lexicographic
        ("3.10", "3.11", False),
        ("4.0", "3.11", True),
        ("2.7", "3.11", False),
        ("garbage", "3.11", False),
    ],
)
def test_version_at_least(have: str, want: str, ok: bool) -> None:
    result = in_python_env(f"version_at_least {have} {want}")
    assert (result.returncode == 0) is ok, result.stderr


def test_min_python_is_read_from_pyproject() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    declared = re.fullmatch(r">=\s*([0-9.]+)", project["project"]["requires-python"])
    assert declared is not None
    result = in_python_env("min_python")
    assert result.stdout.strip() == declared.group(1)


def test_find_python_skips_old_interpreters(tmp_path: Path) -> None:
    # python3 is 3.10 (Ubuntu 22.04); a python3.12 further down PATH is the one to use.
    fake_python(tmp_path / "old", "3.10")
    (tmp_path / "old" / "python3.12").unlink()
    fake_python(tmp_path / "new", "3.12")
    result = in_python_env(f'PATH="{tmp_path / "old"}:{tmp_path / "new"}:$PATH"; find_python')
    assert result.returncode == 0, result.stdout
    assert result.stdout.strip() == str(tmp_path / "new" / "python3.12")


NOT_INSTALLED = "#!/bin/sh\nexit 127\n"


@pytest.mark.skipif(os.getuid() != 0, reason="the apt path is taken only as root")
@pytest.mark.parametrize(
    ("distro_python", "apt_python3", "packages", "lookups", "version"),
    [
        # Ubuntu 22.04: python3 is 3.10, apt's python3 too; apt offers python3.11.
        (
            "3.10",
            "3.10.6-1~22.04",
            ("python3.11", "python3.11-venv"),
            ["python3.11-venv"],
            "3.11",
        ),
        # Ubuntu 24.04 without any Python: apt's python3 is new enough.
        (None, "3.12.3-0ubuntu2", ("python3", "python3-venv"), [], "3.12"),
    ],
)
def test_root_installs_a_new_enough_python_with_apt(
    tmp_path: Path,
    distro_python: str | None,
    apt_python3: str,
    packages: tuple[str, str],
    lookups: list[str],
    version: str,
) -> None:
    # Fake apt-get/apt-cache record the calls; "installing" drops the interpreter onto PATH,
    # which must then build the venv.
    fake_python(tmp_path / "distro", distro_python or "3.10")
    for name in PYTHON_NAMES:
        # What is not installed yet; this also hides the host's real interpreters behind it.
        if distro_python is None or name == packages[0]:
            (tmp_path / "distro" / name).write_text(NOT_INSTALLED)
    installed = tmp_path / "installed"
    installed.mkdir()
    package = fake_python(tmp_path / "package", version, names=(packages[0],))
    calls = tmp_path / "apt-calls.txt"
    apt_get = tmp_path / "distro" / "apt-get"
    apt_get.write_text(
        "#!/bin/sh\n"
        f'echo "apt-get $*" >>{calls}\n'
        f'case "$*" in *install*{packages[1]}*) cp {package} {installed}/ ;; esac\n'
    )
    apt_cache = tmp_path / "distro" / "apt-cache"
    apt_cache.write_text(
        "#!/bin/sh\n"
        f'echo "apt-cache $*" >>{calls}\n'
        '[ "$1" != policy ] || printf "python3:\\n  Installed: (none)\\n'
        f'  Candidate: {apt_python3}\\n"\n'
    )
    apt_get.chmod(0o755)
    apt_cache.chmod(0o755)
    path = f"{installed}:{tmp_path / 'distro'}:{os.environ['PATH']}"
    result = setup_host(tmp_path, "--skip-engine", env={"PATH": path})
    assert calls.is_file(), result.stderr
    assert calls.read_text().splitlines() == [
        "apt-get update -qq -o Acquire::http::Timeout=30",
        "apt-cache policy python3",
        *(f"apt-cache show {name}" for name in lookups),
        *(f"apt-cache show {name}" for name in packages),
        f"apt-get install -y -qq -o DPkg::Lock::Timeout=120 {' '.join(packages)}",
    ]
    lines = stderr_lines(result)
    assert lines[:3] == [
        "setup-host: apt: updating the package lists",
        f"setup-host: apt: installing {' '.join(packages)}",
        f"setup-host: creating the virtual environment {tmp_path / 'venv'} "
        f"(Python {version} from {installed / packages[0]})",
    ]
    # The fake interpreter cannot build a venv: that failure is one line naming its log.
    assert result.returncode == 1
    assert len(lines) == 4, lines
    assert re.fullmatch(
        r"setup-host: error: venv failed \(exit 3\): fake python: unexpected call: "
        r"-m venv --clear \S+ \(log: \S+/venv\.log\)",
        lines[3],
    ), lines[3]

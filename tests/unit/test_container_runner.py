"""Engine-free: the container runner's waits, errors and clean-up over a canned docker API."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.engine.client import DockerEngine
from orchestrator.engine.container import ContainerSpec, run_to_completion
from orchestrator.errors import ContainerFailed, WaitTimeout
from tests.fake_docker import RUNNING, CannedAPI, exited, fake_client


def _spec() -> ContainerSpec:
    return ContainerSpec(
        image="img:1",
        command=("run",),
        name="mlorch-t",
        user="1000:1000",
        mounts=(),
        labels={"mlorch.tool": "mlorch"},
    )


def _run(api: CannedAPI, tmp_path: Path, timeout_s: float = 30) -> tuple[list[str], object]:
    lines: list[str] = []
    outcome = run_to_completion(
        DockerEngine(fake_client(api)),
        _spec(),
        timeout_s=timeout_s,
        log_file=tmp_path / "c.log",
        on_line=lines.append,
        what="test",
    )
    return lines, outcome


def test_success_streams_logs_and_removes(tmp_path: Path) -> None:
    api = CannedAPI([RUNNING, RUNNING, exited(0)], [b"hello\nwor", b"ld\nlast"])
    lines, _ = _run(api, tmp_path)
    assert lines == ["hello", "world", "last"]
    assert (tmp_path / "c.log").read_bytes() == b"hello\nworld\nlast"
    assert api.names()[0] == "create"
    assert api.names()[-1] == "remove"
    create = api.calls[0][1]
    assert create["user"] == "1000:1000"
    assert create["labels"] == {"mlorch.tool": "mlorch"}
    assert create["host_config"]["CapDrop"] == ["ALL"]
    assert create["host_config"]["ReadonlyRootfs"] is True
    assert not create["host_config"].get("Privileged", False)
    assert create["host_config"]["SecurityOpt"] == ["no-new-privileges:true"]
    assert create["host_config"]["NetworkMode"] == "none"


def test_nonzero_exit_carries_status_and_tail(tmp_path: Path) -> None:
    api = CannedAPI([exited(3)], [b"Traceback\nValueError: boom\n"])
    with pytest.raises(ContainerFailed) as info:
        _run(api, tmp_path)
    assert info.value.exit_status == 3
    assert "ValueError: boom" in info.value.log_tail
    assert api.names()[-1] == "remove"


def test_oom_and_kill_hints(tmp_path: Path) -> None:
    with pytest.raises(ContainerFailed) as oom:
        _run(CannedAPI([exited(137, oom=True)], []), tmp_path)
    assert "out of memory" in (oom.value.hint or "")
    with pytest.raises(ContainerFailed) as killed:
        _run(CannedAPI([exited(137)], []), tmp_path)
    assert "SIGKILL" in (killed.value.hint or "")


def test_timeout_kills_then_removes(tmp_path: Path) -> None:
    api = CannedAPI([RUNNING], [b"still going\n"])
    with pytest.raises(WaitTimeout) as info:
        _run(api, tmp_path, timeout_s=0.3)
    assert info.value.exit_code == 7
    assert api.names()[-2:] == ["kill", "remove"]


def test_ctrl_c_while_waiting_still_removes(tmp_path: Path) -> None:
    api = CannedAPI([RUNNING], [], interrupt_on_inspect=3)
    with pytest.raises(KeyboardInterrupt):
        _run(api, tmp_path)
    assert api.names()[-1] == "remove"


def test_engine_refusing_gpus_is_a_container_failure_with_a_hint(tmp_path: Path) -> None:
    import requests
    from docker.errors import APIError

    api = CannedAPI([RUNNING], [])
    response = requests.Response()
    response.status_code = 500
    api.start_error = APIError(
        "500 Server Error", response,
        explanation='could not select device driver "" with capabilities: [[gpu]]',
    )  # fmt: skip
    with pytest.raises(ContainerFailed) as info:
        _run(api, tmp_path)
    assert info.value.exit_code == 6
    assert "could not select device driver" in info.value.message
    assert "nvidia-container-toolkit" in (info.value.hint or "")
    assert api.names()[-1] == "remove"

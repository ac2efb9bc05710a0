"""Engine-free: the container runner's waits, errors and clean-up over a canned docker API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from contract.protocol import EXIT_SUT_FAILED
from orchestrator.engine import client as client_module
from orchestrator.engine import container as container_module
from orchestrator.engine.client import DockerEngine
from orchestrator.engine.container import PIDS_LIMIT, ContainerSpec, Mount, run_to_completion
from orchestrator.engine.owner import Owner
from orchestrator.errors import ContainerFailed, DiskFull, EngineWentAway, WaitTimeout
from tests.support.fake_docker import RUNNING, CannedAPI, exited, fake_client


@pytest.fixture(autouse=True)
def _no_settling(monkeypatch: pytest.MonkeyPatch) -> None:
    """A killed container's engine is watched for going away; the canned one answers at once."""
    monkeypatch.setattr(client_module, "ENGINE_SETTLE_S", 0.0)


def _spec(mem_limit: int | None = None) -> ContainerSpec:
    return ContainerSpec(
        image="img:1",
        command=("run",),
        name="mlorch-t",
        user="1000:1000",
        mounts=(),
        labels={"mlorch.tool": "mlorch"},
        mem_limit=mem_limit,
    )


def _run(
    api: CannedAPI, tmp_path: Path, timeout_s: float = 30, spec: ContainerSpec | None = None
) -> tuple[list[str], object]:
    lines: list[str] = []
    outcome = run_to_completion(
        DockerEngine(fake_client(api)),
        spec or _spec(),
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
    assert create["labels"] == {"mlorch.tool": "mlorch", **Owner.current().labels()}
    assert create["host_config"]["CapDrop"] == ["ALL"]
    assert create["host_config"]["ReadonlyRootfs"] is True
    assert not create["host_config"].get("Privileged", False)
    assert create["host_config"]["SecurityOpt"] == ["no-new-privileges:true"]
    assert create["host_config"]["NetworkMode"] == "none"
    assert create["host_config"]["PidsLimit"] == PIDS_LIMIT
    assert "Memory" not in create["host_config"]  # no memory limit unless asked for


def test_memory_limit_without_swap(tmp_path: Path) -> None:
    api = CannedAPI([exited(0)], [])
    _run(api, tmp_path, spec=_spec(mem_limit=8 << 30))
    host_config = api.calls[0][1]["host_config"]
    assert host_config["Memory"] == 8 << 30
    assert host_config["MemorySwap"] == 8 << 30
    assert host_config["PidsLimit"] == PIDS_LIMIT


def test_oom_with_a_memory_limit_suggests_raising_it(tmp_path: Path) -> None:
    with pytest.raises(ContainerFailed) as oom:
        _run(CannedAPI([exited(137, oom=True)], []), tmp_path, spec=_spec(mem_limit=1 << 30))
    assert "raise --memory" in (oom.value.hint or "")


def test_sut_abort_names_the_sut_error(tmp_path: Path) -> None:
    log = (
        b"Traceback (most recent call last):\n  ...\nValueError: zip() argument 2 is shorter\n"
        b'mlorch-fatal {"where": "encoding", "error": "ValueError: zip() argument 2 is shorter"}\n'
    )
    api = CannedAPI([RUNNING, exited(EXIT_SUT_FAILED)], [log])
    with pytest.raises(ContainerFailed) as info:
        _run(api, tmp_path)
    assert info.value.exit_code == 6
    assert info.value.exit_status == EXIT_SUT_FAILED
    assert info.value.message == (
        "test: the SUT failed in encoding: ValueError: zip() argument 2 is shorter"
    )
    assert "traceback" in (info.value.hint or "")
    assert "ValueError" in info.value.log_tail
    assert api.names()[-1] == "remove"


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


class _InterruptedCreate(CannedAPI):
    """Ctrl-C lands inside `containers.create`: the engine made the container, but the SDK's
    follow-up inspect never returned it to the caller."""

    def inspect_container(self, container: str) -> dict[str, Any]:
        if self.inspections == 0:
            self.inspections += 1
            raise KeyboardInterrupt
        return super().inspect_container(container)


def test_ctrl_c_inside_create_still_removes_the_container(tmp_path: Path) -> None:
    api = _InterruptedCreate([RUNNING], [])
    with pytest.raises(KeyboardInterrupt):
        _run(api, tmp_path)
    assert api.names() == ["create", "remove"]  # found by its name, then removed


class _CreatedLate(_InterruptedCreate):
    """…and the engine has not finished making it when the runner first looks for it."""

    def inspect_container(self, container: str) -> dict[str, Any]:
        if self.inspections == 1:
            from docker.errors import NotFound

            self.inspections += 1
            raise NotFound(f"No such container: {container}")
        return super().inspect_container(container)


def test_a_container_the_engine_finishes_after_the_interrupt_is_removed_too(
    tmp_path: Path,
) -> None:
    api = _CreatedLate([RUNNING], [])
    with pytest.raises(KeyboardInterrupt):
        _run(api, tmp_path)
    assert api.names() == ["create", "remove"]


class _RemovalRefusedWhileStarting(CannedAPI):
    """Ctrl-C lands while the engine is still starting the container: it refuses the first
    removals (a conflict), then removes it."""

    refusals = 2

    def start(self, container: str, *args: Any, **kwargs: Any) -> None:
        super().start(container, *args, **kwargs)
        raise KeyboardInterrupt

    def remove_container(
        self, container: str, v: bool = False, link: bool = False, force: bool = False
    ) -> None:
        from docker.errors import APIError

        if self.refusals:
            self.refusals -= 1
            self.calls.append(("refused", container))
            raise APIError(f"409 Conflict: container {container} is starting")
        super().remove_container(container, v=v, link=link, force=force)


def test_a_removal_refused_while_the_container_starts_is_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(container_module, "REMOVE_RETRY_S", 0.0)
    api = _RemovalRefusedWhileStarting([RUNNING], [])
    with pytest.raises(KeyboardInterrupt):
        _run(api, tmp_path)
    assert api.names() == ["create", "start", "refused", "refused", "remove"]


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


def test_the_engine_stopping_during_a_test_is_engine_unavailable(tmp_path: Path) -> None:
    """dockerd stopping ends its containers (143) and then stops answering: that is the engine
    going away (exit 3), not a failed test, and the removal that cannot happen is left to the
    next `up`/`down` instead of replacing the error."""
    api = CannedAPI([RUNNING, exited(143)], [b"working\n"])
    api.gone_on_inspect = 2
    with pytest.raises(EngineWentAway) as gone:
        _run(api, tmp_path)
    assert gone.value.exit_code == 3
    assert "stopped answering (waiting for test)" in gone.value.message
    assert api.names()[-1] == "remove"  # tried, and its failure did not replace the error


def test_a_test_whose_engine_went_away_after_it_exited(tmp_path: Path) -> None:
    api = CannedAPI([RUNNING, exited(143)], [])
    seen = CannedAPI.inspect_container

    def stop_once_exited(container: str) -> dict[str, Any]:
        state = seen(api, container)
        if state["State"]["Status"] == "exited":  # read it, then the engine stops answering
            api.engine_up = False
        return state

    api.inspect_container = stop_once_exited  # type: ignore[method-assign]
    with pytest.raises(EngineWentAway, match=r"stopped during the test .* status 143"):
        _run(api, tmp_path)


def test_a_full_disk_in_the_container_names_the_folder_and_its_free_space(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = tmp_path / "results"
    results.mkdir()
    spec = ContainerSpec(
        image="img:1", command=("run",), name="mlorch-t", user="1000:1000",
        mounts=(Mount(tmp_path / "model", "/model"), Mount(results, "/results", read_only=False)),
        labels={},
    )  # fmt: skip
    tail = b"Traceback (most recent call last):\nOSError: [Errno 28] No space left on device\n"
    monkeypatch.setattr(container_module, "_has_room", lambda folder: folder != results)
    with pytest.raises(DiskFull) as full:
        _run(CannedAPI([exited(1)], [tail]), tmp_path, spec=spec)
    assert full.value.exit_code == 9
    assert str(results) in full.value.message
    assert " free" in full.value.message
    assert "Traceback" not in full.value.message
    monkeypatch.setattr(container_module, "_has_room", lambda folder: True)
    with pytest.raises(DiskFull) as inside:  # the host folders have room: its own space filled
        _run(CannedAPI([exited(1)], [tail]), tmp_path, spec=spec)
    assert "inside the container: its /tmp (rw,exec,size=1g) or /dev/shm (1g)" in (
        inside.value.message
    )


def test_an_image_lookup_when_the_engine_is_gone_is_engine_went_away() -> None:
    """The engine stopping between two steps of preparation (its socket gone): the next call
    says so, exit 3, instead of a bare ConnectionError (exit 70); while the engine still
    answers, a transport hiccup is not called that."""
    from requests.exceptions import ConnectionError as RequestsConnectionError

    api = CannedAPI([RUNNING], [])

    def reset(image: str) -> dict[str, Any]:
        raise RequestsConnectionError("('Connection aborted.', FileNotFoundError(2))")

    api.inspect_image = reset  # type: ignore[method-assign]
    engine = DockerEngine(fake_client(api))
    with pytest.raises(RequestsConnectionError):
        engine.image_id("base:1")
    api.engine_up = False
    with pytest.raises(EngineWentAway, match=r"stopped answering \(looking up base:1\)") as gone:
        engine.image_id("base:1")
    assert gone.value.exit_code == 3


def test_an_engine_that_still_answers_while_it_stops_is_watched_until_it_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stopping dockerd answers pings on the connections it has open for a moment after its
    socket is gone: `went_away` watches for ENGINE_SETTLE_S before it says the engine stays."""
    monkeypatch.setattr(client_module, "ENGINE_SETTLE_S", 5.0)
    monkeypatch.setattr(client_module.time, "sleep", lambda _s: None)
    api = CannedAPI([RUNNING], [])
    pings = 0
    answer = CannedAPI.ping

    def stopping() -> bool:
        nonlocal pings
        pings += 1
        if pings == 3:
            api.engine_up = False
        return answer(api)

    api.ping = stopping  # type: ignore[method-assign]
    assert DockerEngine(fake_client(api)).went_away() is True
    assert pings == 3
    api.engine_up, pings = True, -(10**9)  # never stops: bounded by the settle time
    clock = iter(range(0, 100))
    monkeypatch.setattr(client_module.time, "monotonic", lambda: float(next(clock)))
    assert DockerEngine(fake_client(api)).went_away() is False

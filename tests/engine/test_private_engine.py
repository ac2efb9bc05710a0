"""The private engine of tests/support/private_engine.py: a dockerd of its own that a fault test
may stop and start, beside the shared one, which never notices."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import docker.errors
import pytest

from orchestrator.engine.client import DockerEngine
from orchestrator.images.catalog import LOCAL_BASE
from tests.support.private_engine import (
    NETNS_DIR,
    PrivateEngine,
    bridge_exists,
    private_engine,  # noqa: F401 (the fixture)
    process_alive,
    require_private_engine,
    running_private_engine,
    sweep_stale,
)

pytestmark = pytest.mark.engine

REPO = Path(__file__).resolve().parents[2]


def _shared_pings() -> bool:
    client = docker.from_env(timeout=10)
    try:
        return bool(client.ping())
    finally:
        client.close()


def _netns_inode(pid: int | str) -> int:
    return os.stat(f"/proc/{pid}/ns/net").st_ino


def test_starts_empty_and_runs_a_container(
    engine: DockerEngine,
    private_engine: PrivateEngine,  # noqa: F811
) -> None:
    assert private_engine.containers(all=True) == []
    assert private_engine.env == {"DOCKER_HOST": f"unix://{private_engine.socket}"}
    private_engine.load_images(LOCAL_BASE)
    assert private_engine.load_images(LOCAL_BASE) == []  # same id already there: nothing copied

    client = private_engine.client()
    try:
        output = client.containers.run(
            LOCAL_BASE, ["echo", "hello from the private engine"], network_mode="none", remove=True
        )
        info = client.info()
    finally:
        client.close()
    assert output == b"hello from the private engine\n"
    assert private_engine.containers(all=True) == []

    # its own engine, data-root and network namespace; the shared one's containerd is not its
    assert info["DockerRootDir"] == str(private_engine.data_root)
    assert info["DockerRootDir"] != engine.client.info()["DockerRootDir"]
    assert info["Driver"] == private_engine.storage_driver
    assert private_engine.pid is not None
    assert _netns_inode(private_engine.pid) != _netns_inode("self")
    containerd = private_engine.containerd_pid
    assert containerd is not None
    assert (
        f"{private_engine.exec_root}/containerd/" in Path(f"/proc/{containerd}/cmdline").read_text()
    )


def test_stop_and_start_keep_images_and_leave_the_shared_engine_alone(
    engine: DockerEngine,
    private_engine: PrivateEngine,  # noqa: F811
) -> None:
    private_engine.load_images(LOCAL_BASE)
    client = private_engine.client()
    try:
        client.containers.create(LOCAL_BASE, ["true"], network_mode="none", name="kept-on-disk")
    finally:
        client.close()
    dockerd, containerd = private_engine.pid, private_engine.containerd_pid
    assert dockerd is not None
    assert containerd is not None

    private_engine.stop()
    assert not private_engine.ping()
    assert private_engine.pid is None
    assert not Path(f"/proc/{dockerd}").exists()  # reaped: gone for real
    assert private_engine.containerd_pid is None
    assert _shared_pings()
    private_engine.stop()  # idempotent

    private_engine.start()
    private_engine.start()  # idempotent
    assert private_engine.ping()
    assert private_engine.pid not in (None, dockerd)
    client = private_engine.client()
    try:
        assert client.images.get(LOCAL_BASE).id == engine.client.images.get(LOCAL_BASE).id
    finally:
        client.close()
    assert [c.name for c in private_engine.containers(all=True)] == ["kept-on-disk"]
    assert private_engine.load_images(LOCAL_BASE) == []
    assert _shared_pings()


def test_teardown_leaves_nothing_and_the_shared_bridge_stays(engine: DockerEngine) -> None:
    had_docker0 = bridge_exists("docker0")
    with running_private_engine() as private:
        private.stop()
        private.start()
        private.load_images(LOCAL_BASE)
        client = private.client()
        try:  # a running container at teardown: removed, its mounts with it
            client.containers.run(
                LOCAL_BASE, ["sleep", "300"], network_mode="none", detach=True, name="running"
            )
        finally:
            client.close()
        # no bridge of its own, in its netns or on the host
        in_netns = subprocess.run(
            ["ip", "-n", private.netns, "-o", "link", "show"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        assert [line.split(":")[1].strip() for line in in_netns.stdout.splitlines()] == ["lo"]
        run_dir, netns = private.run_dir, private.netns
    assert not run_dir.exists()
    assert not (NETNS_DIR / netns).exists()
    assert str(run_dir) not in Path("/proc/self/mounts").read_text()
    assert bridge_exists("docker0") == had_docker0
    assert _shared_pings()


CRASHING_SESSION = textwrap.dedent(
    """
    import json, os
    from tests.support.private_engine import PrivateEngine
    engine = PrivateEngine()
    engine.start()
    print(json.dumps({"run_dir": str(engine.run_dir), "netns": engine.netns, "pid": engine.pid}))
    os._exit(0)  # no teardown: dockerd, its folder and netns stay behind
    """
)


def test_a_crashed_session_is_swept_by_the_next_engine(engine: DockerEngine) -> None:
    require_private_engine()
    crashed = subprocess.run(
        [sys.executable, "-c", CRASHING_SESSION],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    left = json.loads(crashed.stdout)
    assert process_alive(left["pid"])  # still running, its owner gone
    try:
        with running_private_engine() as private:
            assert private.ping()
            assert not Path(left["run_dir"]).exists()
            assert not (NETNS_DIR / left["netns"]).exists()
            assert not process_alive(left["pid"])
    finally:
        sweep_stale()  # where the sweep failed above: leave no dockerd running


def test_kill_is_a_crash_the_restart_recovers_from(
    engine: DockerEngine,
    private_engine: PrivateEngine,  # noqa: F811
) -> None:
    private_engine.load_images(LOCAL_BASE)
    client = private_engine.client()
    try:  # a SUT-like container that ends on SIGTERM at once
        container = client.containers.run(
            LOCAL_BASE,
            ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.2; done"],
            network_mode="none",
            detach=True,
            name="sut",
        )
        init = int(client.api.inspect_container(container.id)["State"]["Pid"])
    finally:
        client.close()

    private_engine.kill()
    assert not private_engine.ping()
    assert private_engine.containerd_pid is None
    assert process_alive(init)  # the shim keeps the container running, as after a real crash
    assert _shared_pings()

    private_engine.start()
    assert [(c.name, c.status) for c in private_engine.containers(all=True)] == [("sut", "exited")]
    assert not process_alive(init)

"""A second, private Docker engine that a test may stop, kill and restart mid-run: the shared engine
(and the other tests on it) never notice.

    def test_x(private_engine, tmp_path):          # the fixture; or `with running_private_engine()`
        private_engine.load_images("mlorch/base:bookworm")   # from the shared engine, once
        env = private_engine.env                    # {"DOCKER_HOST": "unix:///run/mlorch-fault-…"}
        private_engine.stop()                       # dockerd gone for real (SIGTERM, bounded)
        private_engine.start()                      # same data-root: the images are still there
        private_engine.kill()                       # or a crash: SIGKILL, containers live on
        assert private_engine.containers(all=True) == []

Isolation: dockerd runs in its own network namespace (`ip netns add mlorch-fault-<pid>`) with its
own data-root, exec-root, pidfile, socket, empty daemon config and its own managed containerd
(inside its exec-root), with `--bridge=none --iptables=false --ip-masq=false`: it creates no
bridge and touches no iptables rule, so the shared engine's docker0 and rules stay as they are.
SUT containers run with network_mode "none", which needs no bridge.

dockerd enters the namespace with `nsenter --net=/run/netns/<ns>` rather than `ip netns exec`:
the latter also unshares the mount namespace and remounts /sys, which hides the cgroup v1
hierarchies (dockerd: "Devices cgroup isn't mounted") and would hide dockerd's own mounts from the
host's /proc/mounts, where the teardown looks for what to unmount.

The data-root is a persistent cache (MLORCH_FAULT_ENGINE_ROOT, default /var/lib/mlorch-fault-engine,
`data/`, held by a lock file) so images loaded once stay for the next session; a second engine at
the same time gets a scratch data-root, deleted at teardown. Whatever a crashed session left (a
dockerd still running, its containerd and shims, mounts, the netns, pid and socket files) is swept
before an engine starts: a runtime folder whose owner lock nobody holds is stale.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NamedTuple

import docker.errors
import docker.utils
import pytest
import requests

PREFIX = "mlorch-fault-"
RUN_BASE = Path("/run")  # exec-root, socket, pidfile, log: short unix socket paths (~108 bytes)
NETNS_DIR = Path("/run/netns")  # where `ip netns add` keeps its namespaces
DEFAULT_CACHE_ROOT = Path("/var/lib/mlorch-fault-engine")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0  # dockerd's own shutdown waits up to 15 s for running containers
COMMAND_TIMEOUT_S = 30.0  # one `ip`, `umount` or docker query
LOAD_TIMEOUT_S = 600.0  # one `docker save | docker load` of a ~0.5 GB image
# process names (/proc/<pid>/comm, 15 characters at most) an engine's leftovers may have
ENGINE_COMMS = ("dockerd", "containerd", "containerd-shim", "runc", "docker-")


# dockerd's words when the storage driver cannot work on the data-root's file system
_DRIVER_FAILED = re.compile(r"error initializing graphdriver|driver not supported", re.IGNORECASE)


class EngineError(RuntimeError):
    """The private engine did not start, stop or load in time; the message says why and ends with
    the tail of its dockerd log where there is one."""


class EngineContainer(NamedTuple):
    name: str
    status: str  # created, running, exited, … (Docker's State)
    image: str
    id: str


# --- preconditions ------------------------------------------------------------------------------
def cannot_start_reason() -> str | None:
    """Why no private engine can run here (not root, no `ip netns`, no dockerd, …), or None."""
    if os.geteuid() != 0:
        return "a private Docker engine needs root (network namespace, dockerd, mounts)"
    for tool in ("ip", "nsenter", "dockerd", "docker", "umount"):
        if shutil.which(tool) is None:
            return f"a private Docker engine needs `{tool}`, not found on PATH"
    try:
        result = _run(["ip", "netns", "list"])
    except EngineError as exc:
        return f"`ip netns` does not work here: {exc}"
    if result.returncode != 0:
        return f"`ip netns` does not work here: {result.stderr.strip()}"
    return None


def bridge_exists(name: str = "docker0") -> bool:
    """Whether the host (this network namespace) has the link `name`: the shared engine's
    docker0 must outlive every private engine."""
    return _run(["ip", "link", "show", name]).returncode == 0


# --- small helpers ------------------------------------------------------------------------------
def _run(
    command: list[str], timeout: float = COMMAND_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise EngineError(f"{' '.join(command)}: no answer in {timeout:.0f}s") from exc
    except OSError as exc:
        raise EngineError(f"{' '.join(command)}: {exc}") from exc


def process_alive(pid: int) -> bool:
    """Running, not a zombie (the host's init may be slow to reap what it inherits)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        left = [pid for pid in pids if process_alive(pid)]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.1)


def _terminate(pids: list[int], timeout: float) -> None:
    """SIGTERM, a bounded wait, then SIGKILL: the engine's own processes only."""
    for sig, wait_s in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        pids = _wait_gone(pids, wait_s)
        if not pids:
            return
    raise EngineError(f"processes {pids} survived SIGKILL")


def _engine_processes(run_dir: Path, extra_marker: str | None = None) -> list[int]:
    """dockerd, containerd, shims and runc of the engine whose paths are under run_dir (their
    command lines name it: --exec-root, -address), or that name extra_marker (a data-root)."""
    markers = [f"{run_dir}/"] + ([extra_marker] if extra_marker else [])
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        if not _comm(pid).startswith(ENGINE_COMMS):
            continue
        cmdline = _cmdline(pid)
        if any(marker in cmdline for marker in markers) and process_alive(pid):
            found.append(pid)
    return found


def _container_inits(exec_root: Path) -> list[int]:
    """The init process of every container the engine's containerd still knows, checked against
    its cgroup (the id is in the path) so that a reused pid is never hit."""
    found = []
    tasks = exec_root / "containerd" / "daemon" / "io.containerd.runtime.v2.task"
    for init_pid in tasks.glob("*/*/init.pid"):
        pid = _read_pid(init_pid)
        container_id = init_pid.parent.name
        if pid is None or not process_alive(pid):
            continue
        with contextlib.suppress(OSError):
            if container_id in Path(f"/proc/{pid}/cgroup").read_text():
                found.append(pid)
    return found


_OCTAL = re.compile(r"\\([0-7]{3})")


def _mounts_under(*roots: Path) -> list[str]:
    """Mount points at or under the roots, deepest first (the order to unmount them in)."""
    prefixes = [str(root).rstrip("/") for root in roots]
    points = set()
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split(" ")
        if len(fields) < 2:
            continue
        point = _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), fields[1])
        if any(point == prefix or point.startswith(prefix + "/") for prefix in prefixes):
            points.add(point)
    return sorted(points, key=lambda point: (point.count("/"), len(point)), reverse=True)


def _unmount_under(*roots: Path) -> list[str]:
    """`umount -l` everything mounted under the roots; what is still mounted afterwards."""
    for point in _mounts_under(*roots):
        _run(["umount", "-l", point])
    return _mounts_under(*roots)


def _remove_tree(path: Path) -> None:
    """rm -rf, but never through a mount point that is still there (it would empty the mounted
    file system, not our folder)."""
    if not path.exists():
        return
    left = _unmount_under(path)
    if left:
        raise EngineError(f"not removing {path}: still mounted under it: {', '.join(left)}")
    shutil.rmtree(path, ignore_errors=True)


def _netns_delete(name: str) -> None:
    if (NETNS_DIR / name).exists():
        result = _run(["ip", "netns", "delete", name])
        if result.returncode != 0 and (NETNS_DIR / name).exists():
            raise EngineError(f"ip netns delete {name}: {result.stderr.strip()}")


def _try_lock(path: Path) -> IO[str] | None:
    """An exclusive flock on path, held while the returned file stays open; None if another
    process (or another open file in this one) holds it."""
    handle = path.open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def _stale_owner(run_dir: Path) -> tuple[bool, IO[str] | None]:
    """A runtime folder is stale when nobody holds its owner lock (the owner died: the kernel
    released it), or, lock file not yet there, when the pid in its name is dead. A stale one's
    lock comes back held, for the cleaning."""
    lock = run_dir / "owner.lock"
    if not lock.exists():
        match = re.fullmatch(rf"{PREFIX}(\d+)(-\d+)?", run_dir.name)
        return match is not None and not process_alive(int(match.group(1))), None
    handle = _try_lock(lock)
    return handle is not None, handle


def _kill_engine(run_dir: Path, data_root: Path | None = None) -> None:
    """Everything of an engine that must not outlive it: its containers' processes (SIGKILL: they
    are leftovers), dockerd (SIGTERM, then SIGKILL), then what a killed dockerd leaves: shims,
    containerd."""
    inits = _container_inits(run_dir / "exec")
    if inits:  # first, or dockerd would wait for each container's own stop timeout
        _terminate(inits, 0.5)
    dockerd = _read_pid(run_dir / "docker.pid")
    if dockerd is not None and _comm(dockerd) == "dockerd" and f"{run_dir}/" in _cmdline(dockerd):
        _terminate([dockerd], STOP_TIMEOUT_S)
    marker = f"--data-root={data_root} " if data_root else None
    leftovers = _engine_processes(run_dir, marker)
    if leftovers:
        _terminate(leftovers, 10.0)


def default_cache_root() -> Path:
    """Where the persistent data-root lives: MLORCH_FAULT_ENGINE_ROOT, or /var/lib/…"""
    return Path(os.environ.get("MLORCH_FAULT_ENGINE_ROOT") or DEFAULT_CACHE_ROOT)


def sweep_stale(run_base: Path = RUN_BASE, cache_root: Path | None = None) -> list[str]:
    """Clean what crashed sessions left: their engines, mounts, netns, runtime folders and
    scratch data-roots. Returns the names cleaned."""
    cache_root = cache_root or default_cache_root()
    cleaned = []
    for run_dir in sorted(run_base.glob(f"{PREFIX}*")):
        if not run_dir.is_dir():
            continue
        stale, lock = _stale_owner(run_dir)
        if not stale:
            continue
        try:  # the stale lock stays held meanwhile: a new owner picks another name
            scratch = cache_root / "scratch" / run_dir.name
            _kill_engine(run_dir, scratch)
            _unmount_under(run_dir, scratch)
            _netns_delete(run_dir.name)
            _remove_tree(scratch)
            _remove_tree(run_dir)
        finally:
            if lock is not None:
                lock.close()
        cleaned.append(run_dir.name)
    # a netns or scratch data-root whose runtime folder is gone (created after it, removed before)
    for netns in NETNS_DIR.glob(f"{PREFIX}*"):
        if not (run_base / netns.name).exists():
            _netns_delete(netns.name)
            cleaned.append(netns.name)
    for scratch in (cache_root / "scratch").glob(f"{PREFIX}*"):
        if not (run_base / scratch.name).exists():
            _remove_tree(scratch)
            cleaned.append(scratch.name)
    return sorted(set(cleaned))


# --- the engine ---------------------------------------------------------------------------------
@dataclass
class _Claim:
    """What this engine holds between setup and teardown."""

    owner_lock: IO[str]
    data_lock: IO[str] | None  # the persistent data-root's lock; None: a scratch data-root


class PrivateEngine:
    """One private dockerd: `start()`, `stop()`, `close()` (teardown), or use it as a context
    manager (started on enter, torn down on exit)."""

    def __init__(
        self,
        *,
        cache_root: Path | str | None = None,
        run_base: Path | str = RUN_BASE,
        storage_driver: str | None = None,
        start_timeout_s: float = START_TIMEOUT_S,
        stop_timeout_s: float = STOP_TIMEOUT_S,
    ) -> None:
        self.cache_root = Path(cache_root) if cache_root else default_cache_root()
        self.run_base = Path(run_base)
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        # the shared engine as this process sees it now (a test may point DOCKER_HOST elsewhere)
        self._shared_env = dict(os.environ)
        self._driver = storage_driver
        self._claim: _Claim | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._containerd: int | None = None
        self._fresh = False  # containers of an earlier session still to remove at first start
        self._log_offset = 0
        self.name = ""
        self.run_dir = Path()
        self.data_root = Path()

    # --- paths ----------------------------------------------------------------------------------
    @property
    def netns(self) -> str:
        return self.name

    @property
    def exec_root(self) -> Path:
        return self.run_dir / "exec"

    @property
    def socket(self) -> Path:
        return self.run_dir / "docker.sock"

    @property
    def pidfile(self) -> Path:
        return self.run_dir / "docker.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / "dockerd.log"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def env(self) -> dict[str, str]:
        """What a subprocess (`python -m orchestrator …`) needs to talk to this engine."""
        return {"DOCKER_HOST": self.url}

    @property
    def persistent(self) -> bool:
        return self._claim is not None and self._claim.data_lock is not None

    @property
    def storage_driver(self) -> str | None:
        return self._driver

    @property
    def pid(self) -> int | None:
        """dockerd's pid while it runs."""
        if self._proc is not None and self._proc.poll() is None:
            return self._proc.pid
        return None

    @property
    def containerd_pid(self) -> int | None:
        return self._containerd if self._containerd and process_alive(self._containerd) else None

    # --- setup and teardown ---------------------------------------------------------------------
    def _setup(self) -> None:
        """Sweep stale leftovers, claim a runtime folder, a data-root and a netns."""
        self.run_base.mkdir(parents=True, exist_ok=True)
        self.cache_root.mkdir(parents=True, exist_ok=True)
        sweep_stale(self.run_base, self.cache_root)
        owner_lock = None
        for n in range(1, 100):
            name = f"{PREFIX}{os.getpid()}" + (f"-{n}" if n > 1 else "")
            run_dir = self.run_base / name
            run_dir.mkdir(mode=0o711, exist_ok=True)
            owner_lock = _try_lock(run_dir / "owner.lock")
            if owner_lock is not None:
                break
        if owner_lock is None:
            raise EngineError(f"no free runtime folder {self.run_base}/{PREFIX}{os.getpid()}-N")
        self.name, self.run_dir = name, run_dir
        try:
            # a folder of this name left by an earlier engine of this process: start clean
            _kill_engine(run_dir)
            _netns_delete(name)
            for stale in (self.pidfile, self.socket, self.log_file):
                stale.unlink(missing_ok=True)
            data_lock = _try_lock(self.cache_root / "data.lock")
            if data_lock is not None:
                self.data_root = self.cache_root / "data"
                # no live session holds it: a dockerd of a crashed one may still use it
                for pid in _engine_processes(self.run_dir, f"--data-root={self.data_root} "):
                    _terminate([pid], self.stop_timeout_s)
                _unmount_under(self.data_root)
            else:
                self.data_root = self.cache_root / "scratch" / name
                _remove_tree(self.data_root)
            self._claim = _Claim(owner_lock, data_lock)
            self.data_root.mkdir(parents=True, exist_ok=True)
            self.exec_root.mkdir(exist_ok=True)
            # an empty daemon config: the host's /etc/docker/daemon.json is the shared engine's
            (self.run_dir / "daemon.json").write_text("{}\n")
            for command in (
                ["ip", "netns", "add", name],
                ["ip", "-n", name, "link", "set", "lo", "up"],
            ):
                result = _run(command)
                if result.returncode != 0:
                    raise EngineError(f"{' '.join(command)}: {result.stderr.strip()}")
        except BaseException:
            self._release()
            raise
        self._fresh = True
        if self._driver is None:
            self._driver = self._shared_driver()

    def _release(self) -> None:
        if self._claim is not None:
            self._claim.owner_lock.close()
            if self._claim.data_lock is not None:
                self._claim.data_lock.close()
        self._claim = None

    def _shared_driver(self) -> str:
        """The shared engine's storage driver (overlay2 if it does not answer)."""
        try:
            client = docker.DockerClient.from_env(environment=self._shared_env, timeout=10)
            try:
                return str(client.info().get("Driver") or "overlay2")
            finally:
                client.close()
        except (docker.errors.DockerException, requests.exceptions.RequestException, OSError):
            return "overlay2"

    def close(self) -> None:
        """Teardown: remove the containers (if the engine answers), stop it, kill whatever it left,
        unmount under its roots, delete its netns and folders (a scratch data-root too)."""
        if self._claim is None:
            return
        errors = []
        if self.ping():
            try:
                self.remove_containers()
            except (docker.errors.DockerException, requests.RequestException) as exc:
                errors.append(f"removing its containers: {exc}")
            if self.persistent:  # housekeeping: a shared engine gone away is no teardown error
                with contextlib.suppress(docker.errors.DockerException, requests.RequestException):
                    self._prune_images()
        steps = (
            self.stop,
            lambda: _kill_engine(self.run_dir, self.data_root),
            lambda: self._check_unmounted(_unmount_under(self.run_dir, self.data_root)),
            lambda: _netns_delete(self.name),
            lambda: None if self.persistent else _remove_tree(self.data_root),
        )
        for step in steps:
            try:
                step()
            except (EngineError, OSError) as exc:
                errors.append(str(exc))
        self._release()
        try:
            _remove_tree(self.run_dir)  # after the lock is released: nothing left to hold
        except (EngineError, OSError) as exc:
            errors.append(str(exc))
        if errors:
            raise EngineError(f"private engine {self.name} teardown: " + "; ".join(errors))

    @staticmethod
    def _check_unmounted(left: list[str]) -> None:
        if left:
            raise EngineError(f"still mounted after umount -l: {', '.join(left)}")

    def __enter__(self) -> PrivateEngine:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- start and stop -------------------------------------------------------------------------
    def _launch(self) -> subprocess.Popen[bytes]:
        for stale in (self.pidfile, self.socket):
            stale.unlink(missing_ok=True)
        # dockerd reuses a containerd whose pidfile names a live process; after a SIGKILL that
        # one is dead or an unreaped zombie (this host's init reaps slowly): dockerd would wait
        # 15 s on its dead socket, then give up
        containerd_pidfile = self.exec_root / "containerd" / "containerd.pid"
        containerd = _read_pid(containerd_pidfile)
        if containerd is not None and not process_alive(containerd):
            containerd_pidfile.unlink(missing_ok=True)
        self._log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        command = [
            "nsenter",
            f"--net={NETNS_DIR / self.netns}",
            "dockerd",
            f"--config-file={self.run_dir / 'daemon.json'}",
            f"--data-root={self.data_root}",
            f"--exec-root={self.exec_root}",
            f"--pidfile={self.pidfile}",
            f"--host={self.url}",
            f"--storage-driver={self._driver}",
            "--bridge=none",
            "--iptables=false",
            "--ip-masq=false",
            "--ip6tables=false",
        ]
        with self.log_file.open("ab") as log:
            log.write(f"--- {time.strftime('%H:%M:%S')} {' '.join(command)}\n".encode())
            log.flush()
            # its own session: a Ctrl-C on the test's terminal is for the test, not the engine
            return subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start(self) -> None:
        """Start dockerd (idempotent) and wait until it answers; EngineError with its log's tail
        if it does not within start_timeout_s. The first start removes the containers an
        earlier session left in the persistent data-root."""
        if self.pid is not None and self.ping():
            return
        if self._claim is None:
            self._setup()
        elif self.pid is not None:
            self.stop()  # running but not answering
        started = self._wait_started()
        if not started and self._driver != "vfs" and _DRIVER_FAILED.search(self._attempt_log()):
            # overlay2 on overlayfs (a nested container) fails: vfs works anywhere, slowly
            self.stop()
            self._driver = "vfs"
            started = self._wait_started()
        if not started:
            self.stop()
            raise EngineError(
                f"private dockerd {self.name} did not answer on {self.socket} within "
                f"{self.start_timeout_s:.0f}s; dockerd.log ends:\n{self.log_tail()}"
            )
        self._containerd = _read_pid(self.exec_root / "containerd" / "containerd.pid")
        if self._fresh:
            self.remove_containers()
            self._fresh = False

    def _wait_started(self) -> bool:
        """Launch and poll: True once it answers, False if it exits or the time runs out."""
        self._proc = self._launch()
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.ping(timeout=2):
                return True
            if self._proc.poll() is not None:
                return False
            time.sleep(0.2)
        return False

    def stop(self) -> None:
        """SIGTERM dockerd and wait (stop_timeout_s, then SIGKILL), then make sure its containerd
        is gone too. Idempotent. Containers it ran are stopped by dockerd, as on a real host."""
        self._end_dockerd(signal.SIGTERM, self.stop_timeout_s)
        self._end_containerd()

    def kill(self) -> None:
        """SIGKILL dockerd, as a crash: its containerd dies with it (a parent-death signal), the
        shims and the containers live on. start() comes back to them and, without live-restore,
        stops them (each within its own stop timeout); close() kills them. Idempotent."""
        self._end_dockerd(signal.SIGKILL, 10.0)
        self._end_containerd()

    def _end_dockerd(self, sig: signal.Signals, timeout: float) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
            return
        except subprocess.TimeoutExpired:
            proc.kill()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired as exc:
            raise EngineError(f"private dockerd {proc.pid} survived SIGKILL") from exc

    def _end_containerd(self) -> None:
        containerd = self._containerd or _read_pid(self.exec_root / "containerd" / "containerd.pid")
        self._containerd = None
        if (
            containerd is not None
            and process_alive(containerd)
            and _comm(containerd) == "containerd"
            and f"{self.run_dir}/" in _cmdline(containerd)
        ):
            _terminate([containerd], 10.0)

    # --- talking to it --------------------------------------------------------------------------
    def ping(self, timeout: float = 5) -> bool:
        """Whether the engine answers on its socket."""
        if not self.socket.exists():
            return False
        try:
            api = docker.APIClient(base_url=self.url, timeout=timeout)
        except docker.errors.DockerException:
            return False
        try:
            return bool(api.ping())
        except (docker.errors.DockerException, requests.exceptions.RequestException, OSError):
            return False
        finally:
            api.close()

    def client(self, timeout: int = 120) -> Any:
        """A docker.DockerClient on this engine (close it when done)."""
        return docker.DockerClient(base_url=self.url, timeout=timeout)

    def _shared_client(self) -> Any:
        return docker.DockerClient.from_env(environment=self._shared_env, timeout=60)

    def containers(self, all: bool = True) -> list[EngineContainer]:
        """The containers in this engine (all, or running only), for "nothing left behind"."""
        client = self.client(timeout=30)
        try:
            listed = client.api.containers(all=all)
        finally:
            client.close()
        return sorted(
            EngineContainer(
                name=str((entry.get("Names") or ["/"])[0]).lstrip("/"),
                status=str(entry.get("State", "")),
                image=str(entry.get("Image", "")),
                id=str(entry.get("Id", "")),
            )
            for entry in listed
        )

    def remove_containers(self) -> list[str]:
        """Force-remove every container (and anonymous volumes); the names removed."""
        client = self.client(timeout=60)
        try:
            removed = []
            for entry in client.api.containers(all=True):
                with contextlib.suppress(docker.errors.NotFound):
                    client.api.remove_container(entry["Id"], force=True, v=True)
                removed.append(str((entry.get("Names") or ["/"])[0]).lstrip("/"))
            client.api.prune_volumes()
            client.api.prune_networks()
            return removed
        finally:
            client.close()

    def _prune_images(self) -> None:
        """Keep the persistent cache bounded: images the shared engine no longer has go."""
        shared = self._shared_client()
        private = self.client(timeout=60)
        try:
            keep = {image["Id"] for image in shared.api.images(all=True)}
            for image in private.api.images():
                if image["Id"] not in keep:
                    with contextlib.suppress(docker.errors.APIError):
                        private.api.remove_image(image["Id"], force=True)
        finally:
            shared.close()
            private.close()

    def load_images(self, *refs: str, timeout: float = LOAD_TIMEOUT_S) -> list[str]:
        """Copy images from the shared engine (`docker save REF | docker -H <private> load`,
        streamed). An image already here under the same id costs nothing, one here under another
        tag only a tag. Returns the refs actually copied."""
        copied = []
        shared = self._shared_client()
        private = self.client(timeout=60)
        try:
            for ref in refs:
                try:
                    wanted = shared.api.inspect_image(ref)["Id"]
                except docker.errors.ImageNotFound as exc:
                    raise EngineError(f"{ref}: not in the shared engine") from exc
                if _image_id(private, ref) == wanted:
                    continue
                if _image_id(private, wanted) == wanted:
                    repository, tag = docker.utils.parse_repository_tag(ref)
                    private.api.tag(wanted, repository, tag or "latest")
                    continue
                self._stream_image(ref, timeout)
                if _image_id(private, ref) != wanted:
                    raise EngineError(f"{ref}: loaded, but the private engine has another id")
                copied.append(ref)
        finally:
            shared.close()
            private.close()
        return copied

    def _stream_image(self, ref: str, timeout: float) -> None:
        save = subprocess.Popen(
            ["docker", "save", ref],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self._shared_env,
        )
        load = subprocess.Popen(
            ["docker", "-H", self.url, "load", "--quiet"],
            stdin=save.stdout,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self._shared_env,
        )
        assert save.stdout is not None
        save.stdout.close()  # load holds the pipe: save gets SIGPIPE if load dies
        try:
            _, load_err = load.communicate(timeout=timeout)
            _, save_err = save.communicate(timeout=30)
        except subprocess.TimeoutExpired as exc:
            for proc in (save, load):
                proc.kill()
                proc.wait(timeout=10)
            raise EngineError(
                f"docker save {ref} | docker load: not done in {timeout:.0f}s"
            ) from exc
        if save.returncode != 0 or load.returncode != 0:
            raise EngineError(
                f"docker save {ref} | docker load: exit {save.returncode}/{load.returncode}: "
                f"{save_err.decode(errors='replace').strip()} "
                f"{load_err.decode(errors='replace').strip()}"
            )

    def facts(self) -> dict[str, object]:
        """What a failing test may want in its message: paths, pids, driver."""
        return {
            "name": self.name,
            "url": self.url,
            "data_root": str(self.data_root),
            "persistent": self.persistent,
            "driver": self._driver,
            "dockerd": self.pid,
            "containerd": self.containerd_pid,
        }

    def _attempt_log(self) -> str:
        """What dockerd logged since the last launch."""
        try:
            with self.log_file.open("rb") as log:
                log.seek(self._log_offset)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        """The end of dockerd's log, without the gRPC reconnect chatter."""
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return "(no dockerd.log)"
        kept = [line for line in text.splitlines() if "module=grpc" not in line]
        return "\n".join(kept[-lines:])


def _image_id(client: Any, ref: str) -> str | None:
    try:
        return str(client.api.inspect_image(ref)["Id"])
    except docker.errors.ImageNotFound:
        return None


# --- for tests ----------------------------------------------------------------------------------
def require_private_engine() -> None:
    """Skip the test where no private engine can run; under MLORCH_REQUIRE_ENGINE=1 (CI) fail
    instead: the convention of the `engine` fixture."""
    reason = cannot_start_reason()
    if reason is None:
        return
    if os.environ.get("MLORCH_REQUIRE_ENGINE") == "1":
        pytest.fail(f"MLORCH_REQUIRE_ENGINE=1 but {reason}")
    pytest.skip(reason)


@contextlib.contextmanager
def running_private_engine(**options: Any) -> Iterator[PrivateEngine]:
    """A started PrivateEngine, torn down on exit (require_private_engine first). Options go to
    PrivateEngine."""
    require_private_engine()
    with PrivateEngine(**options) as engine:
        yield engine


@pytest.fixture
def private_engine() -> Iterator[PrivateEngine]:
    """A fresh private engine per test (the image cache survives): no containers at start,
    none left after."""
    with running_private_engine() as engine:
        yield engine

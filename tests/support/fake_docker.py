"""A real `docker.DockerClient` over a canned low-level API, for engine-free tests.

Only the endpoints mlorch's container runner, `down` and the image build touch are canned; each
call is recorded so tests can assert what was created, killed, removed and built.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import docker

CONTAINER_ID = "c0ffee" * 10 + "abcd"


class CannedAPI(docker.APIClient):  # type: ignore[misc]
    """Answers with a scripted sequence of container states; records every call."""

    def __init__(
        self,
        states: list[dict[str, Any]],
        log_chunks: list[bytes],
        interrupt_on_inspect: int | None = None,
        listed: dict[str, dict[str, str]] | None = None,
    ) -> None:
        super().__init__(base_url="unix:///nonexistent/docker.sock", version="1.41")
        self.states = list(states)
        self.log_chunks = log_chunks
        self.interrupt_on_inspect = interrupt_on_inspect
        self.listed = dict(listed or {})  # existing containers: id → labels
        self.inspections = 0
        self.calls: list[tuple[str, Any]] = []
        # The build: events streamed with `build_pause_s` between them (then the image exists).
        self.build_events: list[dict[str, Any]] = []
        self.build_pause_s = 0.0
        self.built: set[str] = set()
        # The engine going away: pings fail; from the given inspection on, every call fails
        # as the SDK fails on a closed socket.
        self.engine_up = True
        self.gone_on_inspect: int | None = None

    def _gone(self) -> None:
        from requests.exceptions import ConnectionError as RequestsConnectionError

        if not self.engine_up:
            raise RequestsConnectionError("('Connection aborted.', FileNotFoundError(2))")

    def ping(self) -> bool:
        self._gone()
        return True

    def create_container(self, **kwargs: Any) -> dict[str, str]:
        self.calls.append(("create", kwargs))
        return {"Id": CONTAINER_ID}

    def inspect_container(self, container: str) -> dict[str, Any]:
        self.inspections += 1
        if self.gone_on_inspect is not None and self.inspections >= self.gone_on_inspect:
            self.engine_up = False
        self._gone()
        if self.interrupt_on_inspect is not None and self.inspections >= self.interrupt_on_inspect:
            raise KeyboardInterrupt
        if container in self.listed:
            labels = self.listed[container]
            return {
                "Id": container,
                "Name": f"/{container}",
                "State": RUNNING,
                "Config": {"Labels": labels},
            }
        state = self.states[0] if len(self.states) == 1 else self.states.pop(0)
        return {"Id": CONTAINER_ID, "Name": "/fake", "State": state, "Config": {"Labels": {}}}

    def containers(
        self, all: bool = False, filters: Any = None, **kwargs: Any
    ) -> list[dict[str, str]]:
        self.calls.append(("list", filters))
        return [{"Id": cid} for cid in self.listed]

    start_error: Exception | None = None

    def start(self, container: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append(("start", container))
        if self.start_error is not None:
            raise self.start_error

    def logs(self, container: str, **kwargs: Any) -> Iterator[bytes]:
        self.calls.append(("logs", kwargs))
        return iter(self.log_chunks)

    def kill(self, container: str, signal: Any = None) -> None:
        self.calls.append(("kill", container))

    def remove_container(
        self, container: str, v: bool = False, link: bool = False, force: bool = False
    ) -> None:
        self.calls.append(("remove", {"id": container, "v": v, "force": force}))
        self._gone()
        self.listed.pop(container, None)

    def build(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        self.calls.append(("build", kwargs))
        for event in self.build_events:
            time.sleep(self.build_pause_s)
            yield event
        self.built.add(kwargs["tag"])

    def inspect_image(self, image: str) -> dict[str, Any]:
        from docker.errors import ImageNotFound

        if image not in self.built:
            raise ImageNotFound(f"No such image: {image}")
        return {"Id": "sha256:" + "b" * 64, "RepoTags": [image]}

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


def fake_client(api: CannedAPI) -> docker.DockerClient:
    client = docker.DockerClient(base_url="unix:///nonexistent/docker.sock", version="1.41")
    client.api = api
    return client


RUNNING = {"Status": "running", "ExitCode": 0, "OOMKilled": False}


def exited(code: int, oom: bool = False) -> dict[str, Any]:
    return {"Status": "exited", "ExitCode": code, "OOMKilled": oom}

"""The one adapter around the docker SDK client.

Everything that talks to the engine goes through `DockerEngine`; SDK exceptions are mapped to
mlorch's exception tree here and nowhere else.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.engine import labels as L
from orchestrator.errors import (
    BuildFailed,
    ContainerFailed,
    EngineUnavailable,
    EngineWentAway,
    ImageError,
)

API_TIMEOUT_S = 60


ENGINE_SETTLE_S = 10.0  # how long an engine suspected of going away is watched


@dataclass(frozen=True)
class ImageFacts:
    """What `docker image inspect` says about where an image came from."""

    image_id: str
    repo_digests: tuple[str, ...]  # `repo@sha256:…` per registry it was pulled from or pushed to
    comment: str  # e.g. the message of `docker import`


class DockerEngine:
    """A connected docker client plus the few operations mlorch needs."""

    def __init__(self, client: Any) -> None:
        self.client = client

    @classmethod
    def connect(cls, timeout: int = API_TIMEOUT_S) -> DockerEngine:
        """Connect from the environment (DOCKER_HOST or the default socket) and ping."""
        from docker.errors import DockerException

        import docker

        try:
            client = docker.from_env(timeout=timeout)
            client.ping()
        except DockerException as exc:
            raise EngineUnavailable(f"cannot reach the Docker engine: {_short(exc)}") from exc
        return cls(client)

    def info(self) -> dict[str, Any]:
        with self.engine_call("reading the engine's facts"):
            return dict(self.client.info())

    @property
    def is_local(self) -> bool:
        """True when the daemon listens on a local socket (its files are this host's)."""
        return str(getattr(self.client.api, "base_url", "")) == "http+docker://localhost"

    # images
    def image_id(self, ref: str) -> str | None:
        from docker.errors import ImageNotFound

        try:
            with self.engine_call(f"looking up {ref}"):
                return str(self.client.images.get(ref).id)
        except ImageNotFound:
            return None

    def image_facts(self, ref: str) -> ImageFacts | None:
        from docker.errors import ImageNotFound

        try:
            with self.engine_call(f"looking up {ref}"):
                attrs = self.client.images.get(ref).attrs
        except ImageNotFound:
            return None
        return ImageFacts(
            image_id=str(attrs["Id"]),
            repo_digests=tuple(str(d) for d in attrs.get("RepoDigests") or ()),
            comment=str(attrs.get("Comment") or ""),
        )

    def image_labels(self, ref: str) -> dict[str, str]:
        with self.engine_call(f"reading the labels of {ref}"):
            return dict(self.client.images.get(ref).labels or {})

    def tag(self, source: str, target: str) -> None:
        repository, _, tag = target.rpartition(":")
        with self.engine_call(f"tagging {target}"):
            self.client.images.get(source).tag(repository, tag)

    def pull(self, ref: str) -> str:
        from docker.errors import APIError, DockerException

        try:
            with self.engine_call(f"pulling {ref}"):
                image = self.client.images.pull(ref)
        except APIError as exc:
            raise ImageError(f"cannot pull {ref}: {exc.explanation or _short(exc)}") from exc
        except DockerException as exc:
            raise ImageError(f"cannot pull {ref}: {_short(exc)}") from exc
        return str(image.id)

    def build(
        self,
        context: Path,
        tag: str,
        labels: dict[str, str],
        on_line: Callable[[str], None],
        timeout: float,
    ) -> str:
        """Build `context` as `tag`, streaming the build output; return the image id.

        The whole build (context upload included) must finish within `timeout` seconds. The
        engine's stream is read in a helper thread, so a step that prints nothing cannot hold
        the deadline up; when it passes, the stream is abandoned and mlorch's exit closes the
        connection, which makes the engine cancel the build.
        """
        stream = _BuildStream(self.client.api, context, tag, labels, timeout)
        log: list[str] = []
        deadline = time.monotonic() + timeout
        stream.start()
        try:
            while True:
                try:
                    kind, payload = stream.events.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    raise BuildFailed(
                        f"the build did not finish within its deadline of {timeout:.0f} s",
                        "\n".join(log[-40:]),
                        hint="raise --build-timeout (or `build_timeout_s` under [run]); the log "
                        "tail shows the step it was on",
                    ) from None
                if kind == "end":
                    break
                if kind == "error":
                    failure = _build_error(payload, log)
                    if isinstance(failure, BuildFailed) and self.went_away():
                        raise EngineWentAway(
                            f"the Docker engine stopped answering (building {tag}): "
                            f"{_short(payload)}"
                        ) from payload
                    if failure is payload:
                        raise payload
                    raise failure from payload
                if "error" in payload:
                    detail = payload.get("errorDetail", {}).get("message") or payload["error"]
                    raise BuildFailed(
                        str(detail).strip(),
                        "\n".join(log[-40:]),
                        hint="the build log tail is above; `mlorch render` shows the Dockerfile",
                    )
                text = payload.get("stream")
                if text:
                    for line in text.rstrip("\n").splitlines():
                        log.append(line)
                        on_line(line)
        finally:
            stream.abandon()
        image_id = self.image_id(tag)
        if image_id is None:
            raise BuildFailed(
                "the engine reported success but the image is missing", "\n".join(log[-40:])
            )
        return image_id

    # containers
    def labelled_containers(self, extra: dict[str, str] | None = None) -> list[Any]:
        filters = [f"{L.TOOL}={L.TOOL_VALUE}"] + [f"{k}={v}" for k, v in (extra or {}).items()]
        # Another mlorch may remove one of them between the listing and its inspection.
        with self.engine_call("listing mlorch's containers"):
            found = self.client.containers.list(
                all=True, filters={"label": filters}, ignore_removed=True
            )
            return list(found)

    def remove_container(self, container: Any) -> None:
        from docker.errors import APIError, NotFound

        try:
            container.remove(force=True, v=True)
        except NotFound:
            pass
        except APIError as exc:
            if "already in progress" not in str(exc):
                raise

    @contextmanager
    def mapped_errors(self, what: str) -> Iterator[None]:
        """Map SDK errors: the engine refusing a request (APIError) is a container failure with
        a hint; a transport failure means the engine is unavailable."""
        from docker.errors import APIError, DockerException
        from requests.exceptions import ConnectionError as RequestsConnectionError

        try:
            yield
        except APIError as exc:
            detail = exc.explanation or _short(exc)
            raise ContainerFailed(
                f"{what}: {detail}", exit_status=None, hint=_api_hint(str(detail))
            ) from exc
        except (DockerException, RequestsConnectionError) as exc:
            raise EngineWentAway(
                f"the Docker engine stopped answering ({what}): {_short(exc)}"
            ) from exc

    @contextmanager
    def engine_call(self, what: str) -> Iterator[None]:
        """A transport failure while `what` (the socket gone, the connection reset) when the
        engine no longer answers: the engine went away. Everything else passes unchanged."""
        from docker.errors import APIError, DockerException
        from requests.exceptions import RequestException

        try:
            yield
        except APIError:
            raise
        except (DockerException, RequestException) as exc:
            if not self.went_away():
                raise
            raise EngineWentAway(
                f"the Docker engine stopped answering ({what}): {_short(exc)}"
            ) from exc

    def went_away(self) -> bool:
        """After a failure: whether the engine is going away. It does not answer, or stops
        answering within ENGINE_SETTLE_S: a stopping dockerd still serves the connections it has
        open (a ping on one) for a moment after it has closed its socket."""
        deadline = time.monotonic() + ENGINE_SETTLE_S
        while self.answers():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.5)
        return True

    def answers(self) -> bool:
        """Whether the engine still answers a ping: after a failure, tells the engine going away
        from the work failing."""
        try:
            return bool(self.client.ping())
        except Exception:
            return False


class _BuildStream(threading.Thread):
    """Reads one build's event stream into a queue: ("chunk", dict), then ("error", exception)
    or ("end", None). Stops reading once abandoned."""

    def __init__(
        self, api: Any, context: Path, tag: str, labels: dict[str, str], timeout: float
    ) -> None:
        super().__init__(name="docker-build", daemon=True)
        self.api = api
        self.args = {
            "path": str(context),
            "tag": tag,
            "labels": labels,
            "rm": True,
            "forcerm": True,
            "decode": True,
            # Per-read timeout of the HTTP stream: never shorter than the whole deadline, so a
            # long silent step is bounded by the deadline, not cut by a read timeout.
            "timeout": int(timeout) + 30,
            "pull": False,
        }
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._abandoned = threading.Event()

    def run(self) -> None:
        try:
            stream = self.api.build(**self.args)
            for chunk in stream:
                if self._abandoned.is_set():
                    stream.close()
                    return
                self.events.put(("chunk", chunk))
        except BaseException as exc:
            self.events.put(("error", exc))
            return
        self.events.put(("end", None))

    def abandon(self) -> None:
        self._abandoned.set()


def _build_error(exc: BaseException, log: list[str]) -> BaseException:
    """The BuildFailed for an exception raised while reading the build stream."""
    from docker.errors import DockerException
    from requests.exceptions import RequestException
    from urllib3.exceptions import HTTPError

    if isinstance(exc, DockerException | RequestException | HTTPError):
        return BuildFailed(_short(exc), "\n".join(log[-40:]))
    return exc


def _api_hint(detail: str) -> str | None:
    if "device driver" in detail and "gpu" in detail:
        return (
            "GPUs were requested but the engine cannot provide them: install "
            "nvidia-container-toolkit (`nvidia-ctk runtime configure`), or use --device cpu"
        )
    if "No such image" in detail:
        return "the image is gone: run `mlorch build` again"
    return None


def _short(exc: BaseException) -> str:
    text = str(exc)
    with contextlib.suppress(ValueError, AttributeError):  # API errors may carry a JSON body
        text = json.loads(text).get("message", text)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__

"""spec → image: base image, platform probe, Dockerfile rendering, content-addressed build.

The image tag is the sha256 of the base image's id, the rendered Dockerfile and every file of the
build context (wheels, requirements, backend code): a second `up` with nothing changed finds the
tag and builds nothing, and a re-pulled or re-bootstrapped base under the same name rebuilds.
Every cached step (local base bootstrap, probe, wheelhouse, build, pip freeze) runs under its
per-key lock, so two mlorch processes never do the same work at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from contract.digest import file_sha256
from contract.locks import atomic_write_text
from contract.protocol import PROBE_PREFIX, last_json_line
from orchestrator import __version__
from orchestrator.cachelock import cache_lock
from orchestrator.config import BUILD_TIMEOUT_S, Device
from orchestrator.console import Terminal
from orchestrator.engine import labels as L
from orchestrator.engine.client import DockerEngine, ImageFacts
from orchestrator.engine.container import ContainerSpec, run_to_completion
from orchestrator.errors import ContainerFailed, ImageError
from orchestrator.images.catalog import CUDA_BASES, BackendDef, local_base
from orchestrator.images.containers import CONTAINER_UID
from orchestrator.images.gpu_stack import gpu_stack_problems
from orchestrator.images.wheelhouse import (
    DOWNLOAD_TIMEOUT_S,
    PIP_REQUIREMENT,
    Platform,
    Wheelhouse,
    WheelhouseTarget,
    ensure_wheelhouse,
    sdist_name,
    wheelhouse_key,
)
from orchestrator.paths import cache_dir, container_packages, docker_dir

PROBE_TIMEOUT_S = 120
# The `docker import --message` of docker/bootstrap-base-image.sh: how a bootstrapped base is known.
BOOTSTRAP_COMMENT = "mlorch local base image"
BOOTSTRAP_TIMEOUT_S = 1800
# What a base image offers: its Python and glibc (for the wheels), and its CUDA and TensorRT (for
# the GPU stack check). NGC images set CUDA_VERSION; CUDA installs write version.json.
PROBE_CODE = """
import importlib.metadata as m, json, os, platform, sys
def cuda():
    if os.environ.get("CUDA_VERSION"):
        return os.environ["CUDA_VERSION"]
    try:
        with open("/usr/local/cuda/version.json") as f:
            return json.load(f)["cuda"]["version"]
    except Exception:
        return None
def tensorrt():
    for name in ("tensorrt", "tensorrt_cu13", "tensorrt_cu12"):
        try:
            return m.version(name)
        except Exception:
            pass
    return os.environ.get("TRT_VERSION")
print(@PREFIX@ + " " + json.dumps({"python": "%d.%d" % sys.version_info[:2],
      "glibc": platform.libc_ver()[1], "machine": platform.machine(),
      "cuda": cuda(), "tensorrt": tensorrt()}))
"""
PROBE_CODE = PROBE_CODE.replace("@PREFIX@", repr(PROBE_PREFIX))
PROBE_VERSION = 3


@dataclass(frozen=True)
class BaseImage:
    ref: str
    image_id: str
    fallback: bool  # True when the local bootstrap replaced an unreachable default
    repo_digests: tuple[str, ...] = ()  # registry digests; empty for an image made on this host
    bootstrapped: bool = False  # made by docker/bootstrap-base-image.sh

    @property
    def digest(self) -> str:
        """The registry digest of `ref` when it came from a registry, else its image id."""
        repository = _repository(self.ref)
        matching = [d for d in self.repo_digests if d.partition("@")[0] == repository]
        return (matching or list(self.repo_digests) or [self.image_id])[0]


def _repository(ref: str) -> str:
    """`name` of `name:tag` or `name@digest` (a registry port's colon is not a tag)."""
    name = ref.partition("@")[0]
    head, sep, tail = name.rpartition(":")
    return head if sep and "/" not in tail else name


def _base(engine: DockerEngine, ref: str, image_id: str, *, fallback: bool) -> BaseImage:
    """The base image `ref` with what the engine knows of its origin."""
    facts = engine.image_facts(ref) or ImageFacts(image_id, (), "")
    return BaseImage(
        ref,
        facts.image_id,
        fallback=fallback,
        repo_digests=facts.repo_digests,
        bootstrapped=facts.comment.startswith(BOOTSTRAP_COMMENT),
    )


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    image_id: str
    dockerfile_sha256: str
    base: BaseImage
    platform: Platform
    built_now: bool
    freeze: list[str]


def render_dockerfile(
    backend: BackendDef, device: Device, base_image: str, pip_wheel: str | None = None
) -> str:
    """Render the backend's Dockerfile template for `device` on `base_image`."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(docker_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    name, version = PIP_REQUIREMENT.split("==")
    # A catalogued NGC base on cuda: its entrypoint (forward compatibility) and its TensorRT.
    cuda_base = CUDA_BASES.get(base_image) if device is Device.CUDA else None
    text = env.get_template(backend.template).render(
        backend=backend.name,
        device=device.value,
        base_image=base_image,
        module=backend.module,
        system_site_packages=backend.system_site_packages,
        pip_wheel=pip_wheel or f"{name}-{version}-py3-none-any.whl",
        uid=CONTAINER_UID,
        mlorch_version=__version__,
        gpu_libraries=backend.gpu_libraries if device is Device.CUDA else (),
        entrypoint=cuda_base.entrypoint if cuda_base is not None else None,
        imports_tensorrt=cuda_base is not None and backend.needs_tensorrt,
        native_sdists=[sdist_name(source) for source in backend.native_sources],
    )
    return text.strip() + "\n"


def resolve_base_image(
    engine: DockerEngine,
    backend: BackendDef,
    device: Device,
    requested: str | None,
    terminal: Terminal,
) -> BaseImage:
    """Find, pull or (for the default only) bootstrap the base image."""
    ref = requested or backend.default_base[device]
    local = local_base()
    image_id = engine.image_id(ref)
    if image_id:
        return _base(engine, ref, image_id, fallback=False)
    try:
        with terminal.status(f"pulling base image {ref}"):
            pulled = engine.pull(ref)
        return _base(engine, ref, pulled, fallback=False)
    except ImageError as exc:
        if requested:
            raise ImageError(
                f"base image {ref} is not present and cannot be pulled",
                hint="load it with `docker load`, or build a local one with "
                f"docker/bootstrap-base-image.sh and pass --base-image {local}",
            ) from exc
        if device is Device.CUDA:
            # The local bootstrap has no CUDA: falling back would build an image whose GPU
            # libraries cannot load. Say so instead.
            raise ImageError(
                f"--device cuda needs the NGC base {ref} ({_describe_cuda_base(ref)}), "
                "which is not present and cannot be pulled",
                hint=f"on an air-gapped host `docker load` it (docker save {ref} on a connected "
                "one), or pass --base-image with a local CUDA 13 image that has TensorRT",
            ) from exc
        terminal.warn(
            f"{exc.message}; using the locally bootstrapped {local} instead "
            "(pass --base-image to choose)"
        )
    local_id = engine.image_id(local)
    if local_id is None:
        what = f"bootstrapping the local base image {local}"
        with cache_lock("base", local, what, terminal, BOOTSTRAP_TIMEOUT_S):
            local_id = engine.image_id(local) or bootstrap_local_base(engine, terminal, local)
    return _base(engine, local, local_id, fallback=True)


def _describe_cuda_base(ref: str) -> str:
    facts = CUDA_BASES.get(ref)
    if facts is None:
        return "CUDA + TensorRT"
    return f"CUDA {facts.cuda}, TensorRT {facts.tensorrt}, Python {facts.python}"


def bootstrap_local_base(engine: DockerEngine, terminal: Terminal, tag: str) -> str:
    """Run docker/bootstrap-base-image.sh (debootstrap + docker import)."""
    script = docker_dir() / "bootstrap-base-image.sh"
    with terminal.status(f"bootstrapping local base image {tag} (debootstrap, ~1 min)"):
        try:
            result = subprocess.run(
                ["bash", str(script), tag],
                capture_output=True,
                text=True,
                timeout=BOOTSTRAP_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ImageError("base image bootstrap timed out") from exc
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["failed"])[-1]
        raise ImageError(
            f"cannot bootstrap {tag}: {last}",
            hint=f"run `sudo bash {script}` by hand, or pass --base-image with a local image",
        )
    image_id = engine.image_id(tag)
    if image_id is None:
        raise ImageError(f"{tag} is missing after its bootstrap reported success")
    terminal.success(f"built local base image {tag}")
    return image_id


def probe_platform(
    engine: DockerEngine, base: BaseImage, terminal: Terminal | None = None
) -> Platform:
    """Python version and glibc of the base image (run once per image id, then cached)."""
    facts = probe_base(engine, base, terminal)
    return Platform(str(facts["python"]), str(facts["glibc"]), str(facts["machine"]))


def probe_base(
    engine: DockerEngine, base: BaseImage, terminal: Terminal | None = None
) -> dict[str, str | None]:
    """Python, glibc, machine, CUDA and TensorRT versions of a base image (cached per id)."""
    key = base.image_id.replace(":", "_")
    cache_file = cache_dir() / "probes" / f"{key}.v{PROBE_VERSION}.json"
    if not cache_file.is_file():
        with cache_lock("probe", key, f"probing {base.ref}", terminal, PROBE_TIMEOUT_S):
            if not cache_file.is_file():
                facts = _probe(engine, base)
                atomic_write_text(cache_file, json.dumps(facts) + "\n")
                return facts
    return dict(json.loads(cache_file.read_text()))


def _probe(engine: DockerEngine, base: BaseImage) -> dict[str, str | None]:
    spec = ContainerSpec(
        image=base.image_id,
        command=("python3", "-c", PROBE_CODE),
        name=f"mlorch-probe-{os.getpid()}-{base.image_id[-8:]}",
        user="65534:65534",
        mounts=(),
        labels=L.base_labels(role="probe"),
    )
    with tempfile.TemporaryDirectory() as tmp:
        try:
            outcome = run_to_completion(
                engine,
                spec,
                timeout_s=PROBE_TIMEOUT_S,
                log_file=Path(tmp) / "probe.log",
                on_line=lambda _line: None,
                what=f"probe of {base.ref}",
            )
        except ContainerFailed as exc:
            raise ImageError(
                f"base image {base.ref} has no usable python3 ({exc.message})",
                hint="mlorch needs python3 (3.10+) with the venv module in the base image",
            ) from exc
    found = last_json_line(PROBE_PREFIX, outcome.log_tail)
    if found is None:
        raise ImageError(f"probe of {base.ref} printed nothing usable")
    return found


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def probe_local_image(engine: DockerEngine, ref: str) -> Platform:
    """The platform of an image already present in the engine (probed; nothing is pulled)."""
    image_id = engine.image_id(ref)
    if image_id is None:
        raise ImageError(
            f"base image {ref} is not present here, so its platform cannot be probed",
            hint=f"load it here (`docker load`), or give its platform instead of --base-image: "
            f"--python X.Y --glibc 2.N (`python3 --version` and `ldd --version` in {ref})",
        )
    return probe_platform(engine, BaseImage(ref, image_id, fallback=False))


def stage_context(
    backend: BackendDef,
    device: Device,
    base: BaseImage,
    wheelhouse: Wheelhouse,
    root: Path,
    requirements_list: tuple[str, ...] | None = None,
) -> tuple[Path, str, str]:
    """Assemble the build context; return (folder, dockerfile, content digest).

    The digest covers the base image's id, not only its name: the same tag re-pulled or
    re-bootstrapped is another base, and the image built on the old one is stale.
    """
    dockerfile = render_dockerfile(backend, device, base.ref, wheelhouse.pip_wheel)
    digest = hashlib.sha256()
    digest.update(b"base\0" + base.image_id.encode())
    digest.update(b"Dockerfile\0" + dockerfile.encode())
    pins = requirements_list or backend.requirements_for(device, base.ref)
    requirements = "".join(f"{req}\n" for req in pins)
    digest.update(b"requirements.txt\0" + requirements.encode())

    # Named after this process, so a later mlorch can remove it if this one is killed.
    folder = Path(tempfile.mkdtemp(prefix=f"context-{os.getpid()}-", dir=root))
    (folder / "Dockerfile").write_text(dockerfile)
    (folder / "requirements.txt").write_text(requirements)
    wheel_dir = folder / "wheelhouse"
    wheel_dir.mkdir()
    for wheel in [*wheelhouse.wheels(), *wheelhouse.sdists()]:
        digest.update(f"wheel\0{wheel.name}\0{_file_sha256(wheel)}".encode())
        _link_or_copy(wheel, wheel_dir / wheel.name)
    for source in container_packages():
        files = [*source.rglob("*.py"), *source.rglob("*.cc")]  # .cc: the native issue path
        for path in sorted(files):
            rel = path.relative_to(source.parent)
            data = path.read_bytes()
            digest.update(f"src\0{rel}\0".encode() + hashlib.sha256(data).digest())
            target = folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    return folder, dockerfile, digest.hexdigest()


def remove_stale_contexts(root: Path) -> None:
    """Remove build contexts staged by mlorch processes that no longer exist (SIGKILL)."""
    for folder in root.glob("context-*-*"):
        pid = folder.name.split("-")[1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(folder, ignore_errors=True)


def _file_sha256(path: Path) -> str:
    """sha256 of a wheel, memoised by (path, size, mtime) because wheels are large and immutable."""
    stat = path.stat()
    memo = path.with_name(f".{path.name}.sha256")
    stamp = f"{stat.st_size}:{stat.st_mtime_ns}"
    if memo.is_file():
        saved_stamp, _, saved = memo.read_text().partition(" ")
        if saved_stamp == stamp:
            return saved.strip()
    digest = file_sha256(path)
    atomic_write_text(memo, f"{stamp} {digest}\n")
    return digest


def _probe_and_announce(
    engine: DockerEngine, backend: BackendDef, device: Device, base: BaseImage, terminal: Terminal
) -> tuple[dict[str, str | None], Platform]:
    """The base's facts and platform, said once; a TensorRT other than the catalog's named."""
    facts = probe_base(engine, base, terminal)
    platform = Platform(str(facts["python"]), str(facts["glibc"]), str(facts["machine"]))
    gpu_facts = f", CUDA {facts['cuda']}" if facts.get("cuda") else ""
    gpu_facts += f", TensorRT {facts['tensorrt']}" if facts.get("tensorrt") else ""
    terminal.info(
        f"base image {base.ref}: Python {platform.python}, glibc {platform.glibc}{gpu_facts}"
    )
    catalogued = CUDA_BASES.get(base.ref)
    found_trt = facts.get("tensorrt") if device is Device.CUDA and backend.needs_tensorrt else None
    if catalogued is not None and found_trt and found_trt != catalogued.tensorrt:
        terminal.warn(
            f"{base.ref} has TensorRT {found_trt}, the catalog pins {catalogued.tensorrt}: the "
            "API conformance tests covered the pinned version (engines are cached per version)"
        )
    return facts, platform


def _wheelhouse(
    backend: BackendDef,
    device: Device,
    base: BaseImage,
    platform: Platform,
    requirements: tuple[str, ...],
    given: Path | None,
    terminal: Terminal,
) -> Wheelhouse:
    key = wheelhouse_key(requirements, platform, backend.native_sources)
    what = f"downloading the wheelhouse for Python {platform.python}"
    with (
        # A given wheelhouse is only read; the cached one is filled under its key's lock.
        cache_lock("wheelhouse", key, what, terminal, DOWNLOAD_TIMEOUT_S)
        if given is None
        else contextlib.nullcontext(),
        terminal.status(f"wheelhouse for Python {platform.python} ({len(requirements)} pins)"),
    ):
        return ensure_wheelhouse(
            requirements,
            platform,
            cache_dir(),
            given,
            WheelhouseTarget(backend.name, device.value, base.ref),
            backend.native_sources,
        )


def _check_gpu_stack(
    backend: BackendDef, base: BaseImage, facts: dict[str, str | None], wheelhouse: Wheelhouse
) -> None:
    problems = gpu_stack_problems(
        base.ref, facts.get("cuda"), facts.get("tensorrt"), wheelhouse.wheels(),
        backend.needs_tensorrt,
    )  # fmt: skip
    if problems:
        raise ImageError(
            f"GPU stack mismatch for {backend.name} on {base.ref}: {'; '.join(problems)}",
            hint=f"use the pinned NGC base {backend.default_base[Device.CUDA]} "
            f"({_describe_cuda_base(backend.default_base[Device.CUDA])}), or a base whose CUDA "
            "major matches the GPU wheels",
        )


def _build_unless_present(
    engine: DockerEngine,
    context: Path,
    tag: str,
    labels: dict[str, str],
    terminal: Terminal,
    on_build_line: Callable[[str], None] | None,
    build_timeout_s: float,
) -> tuple[str, bool]:
    """(image id, whether it was built now): the content tag is built once, under its lock."""
    image_id = engine.image_id(tag)
    if image_id is None:
        with cache_lock("build", tag, f"building {tag}", terminal, build_timeout_s):
            image_id = engine.image_id(tag)  # another mlorch may have built it meanwhile
            if image_id is None:
                with terminal.status(f"building {tag}"):
                    image_id = engine.build(
                        context, tag, labels, on_build_line or terminal.debug, build_timeout_s
                    )
                terminal.success(f"built {tag}")
                return image_id, True
    terminal.success(f"image {tag} is up to date (nothing to build)")
    return image_id, False


def ensure_image(
    engine: DockerEngine,
    backend: BackendDef,
    device: Device,
    requested_base: str | None,
    given_wheelhouse: Path | None,
    terminal: Terminal,
    on_build_line: Callable[[str], None] | None = None,
    build_timeout_s: float = BUILD_TIMEOUT_S,
) -> BuiltImage:
    """Resolve the base, fetch wheels, and build the SUT image unless its content tag exists.

    The build as a whole must finish within `build_timeout_s`.
    """
    base = resolve_base_image(engine, backend, device, requested_base, terminal)
    facts, platform = _probe_and_announce(engine, backend, device, base, terminal)
    # The stack's pins follow the base asked for (a local stand-in base keeps them).
    requirements = backend.requirements_for(device, requested_base or base.ref)
    wheelhouse = _wheelhouse(
        backend, device, base, platform, requirements, given_wheelhouse, terminal
    )
    if device is Device.CUDA:
        _check_gpu_stack(backend, base, facts, wheelhouse)
    staging_root = cache_dir() / "build"
    staging_root.mkdir(parents=True, exist_ok=True)
    remove_stale_contexts(staging_root)
    context, dockerfile, digest = stage_context(
        backend, device, base, wheelhouse, staging_root, requirements
    )
    try:
        tag = f"{backend.image_repository(device)}:{digest[:16]}"
        dockerfile_sha = hashlib.sha256(dockerfile.encode()).hexdigest()
        labels = L.base_labels(backend=backend.name, role="sut-image")
        labels[L.DOCKERFILE_SHA] = dockerfile_sha
        labels[L.BASE_IMAGE] = base.ref
        labels[L.BASE_IMAGE_ID] = base.image_id
        image_id, built_now = _build_unless_present(
            engine, context, tag, labels, terminal, on_build_line, build_timeout_s
        )
        engine.tag(tag, f"{backend.image_repository(device)}:latest")
    finally:
        shutil.rmtree(context, ignore_errors=True)
    return BuiltImage(
        tag=tag,
        image_id=image_id,
        dockerfile_sha256=dockerfile_sha,
        base=base,
        platform=platform,
        built_now=built_now,
        freeze=image_freeze(engine, tag, terminal),
    )


def image_freeze(engine: DockerEngine, tag: str, terminal: Terminal | None = None) -> list[str]:
    """`pip freeze` of the image's venv, recorded at build time."""
    key = tag.replace("/", "_").replace(":", "_")
    cache_file = cache_dir() / "freeze" / f"{key}.txt"
    if not cache_file.is_file():
        with cache_lock("freeze", key, f"reading pip freeze of {tag}", terminal, PROBE_TIMEOUT_S):
            if not cache_file.is_file():
                lines = _freeze(engine, tag)
                atomic_write_text(cache_file, "\n".join(lines) + "\n")
                return lines
    return cache_file.read_text().splitlines()


def _freeze(engine: DockerEngine, tag: str) -> list[str]:
    spec = ContainerSpec(
        image=tag,
        entrypoint=("cat", "/opt/venv/pip-freeze.txt"),
        command=(),
        name=f"mlorch-freeze-{os.getpid()}",
        user=f"{CONTAINER_UID}:{CONTAINER_UID}",
        mounts=(),
        labels=L.base_labels(role="freeze"),
    )
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "freeze.log"
        run_to_completion(
            engine,
            spec,
            timeout_s=PROBE_TIMEOUT_S,
            log_file=log,
            on_line=lambda _line: None,
            what="pip freeze of the image",
        )
        return [ln for ln in log.read_text().splitlines() if "==" in ln]

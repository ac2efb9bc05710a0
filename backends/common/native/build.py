"""Build mlorch's native LoadGen issue path: LoadGen's C++ sources + mlorch_loadgen.cc.

Standard library only, runnable as a file (`python build.py ...`): the image's build stage runs
it before the backend code is copied in, and the tests run it on the host.

The LoadGen sources come from the mlcommons-loadgen sdist of the release the image installs
(`--expect-version`, or the installed `mlcommons-loadgen` with `--match-installed`): the issue
path then runs the same LoadGen as the Python bindings, never another one. The output folder
gets `libmlorch_loadgen.so` and `build.json`; without a C++ compiler, only a `build.json` that
says so (exit 0 with `--optional`, else 3), and the harness runs the Python issue path.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

LIBRARY = "libmlorch_loadgen.so"
RECORD = "build.json"
SHIM = Path(__file__).with_name("mlorch_loadgen.cc")
# LoadGen's library sources (its setup.py's list, without the pybind and C bindings).
LOADGEN_SOURCES = (
    "early_stopping.cc",
    "issue_query_controller.cc",
    "loadgen.cc",
    "logging.cc",
    "test_settings_internal.cc",
    "utils.cc",
    "version.cc",
    "results.cc",
    "generated/version_generated.cc",
)
FLAGS = ("-std=c++17", "-O3", "-fPIC", "-pthread")
EXIT_NO_COMPILER = 3
EXIT_FAILED = 4


class BuildError(Exception):
    def __init__(self, message: str, status: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.status = status


def find_sdist(where: Path, version: str | None) -> Path:
    """The mlcommons-loadgen sdist `where` is, or the one (of `version`) inside that folder."""
    if where.is_file():
        return where
    pattern = f"mlcommons_loadgen-{version}.tar.gz" if version else "mlcommons_loadgen-*.tar.gz"
    found = sorted(where.glob(pattern))
    if not found:
        raise BuildError(f"no {pattern} in {where}")
    return found[-1]


def compiler() -> str | None:
    name = os.environ.get("CXX", "g++")
    return shutil.which(name)


def _run(command: list[str], cwd: Path) -> None:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise BuildError(f"{' '.join(command[:2])} … failed:\n{tail}")


def _extract(sdist: Path, root: Path) -> None:
    """Unpack the sdist's regular files and folders only, none outside `root` (Pythons before
    3.11.4, e.g. Debian bookworm's, have no extraction filters)."""
    with tarfile.open(sdist) as archive:
        members = archive.getmembers()
        for member in members:
            target = (root / member.name).resolve()
            if not (member.isfile() or member.isdir()) or not target.is_relative_to(root.resolve()):
                raise BuildError(f"{sdist.name}: unexpected member {member.name!r}")
        for member in members:
            target = root / member.name
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            source = archive.extractfile(member)
            if source is None:
                raise BuildError(f"{sdist.name}: cannot read {member.name!r}")
            target.write_bytes(source.read())


def source_digest(sdist: Path) -> str:
    digest = hashlib.sha256()
    digest.update(sdist.read_bytes())
    digest.update(SHIM.read_bytes())
    digest.update(" ".join(FLAGS).encode())
    return digest.hexdigest()


def build(sdist: Path, out: Path, cxx: str, jobs: int) -> dict[str, object]:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mlorch-native-") as temp:
        root = Path(temp)
        _extract(sdist, root)
        tops = [path for path in root.iterdir() if path.is_dir()]
        if len(tops) != 1 or not (tops[0] / "loadgen.h").is_file():
            raise BuildError(f"{sdist.name} does not hold LoadGen's sources (no loadgen.h)")
        src = tops[0]
        version = (src / "VERSION.txt").read_text().strip()
        major, minor = [*version.split("."), "0"][:2]
        defines = [f"-DMAJOR_VERSION={major}", f"-DMINOR_VERSION={minor}"]
        objects = root / "obj"
        objects.mkdir()
        # LoadGen's own symbols stay hidden: the Python bindings' copy may be loaded beside it.
        jobs_list = [
            [cxx, *FLAGS, "-fvisibility=hidden", *defines, "-I.", "-c", name,
             "-o", str(objects / (name.replace("/", "_") + ".o"))]
            for name in LOADGEN_SOURCES
        ]  # fmt: skip
        jobs_list.append(
            [cxx, *FLAGS, *defines, "-I.", "-c", str(SHIM), "-o", str(objects / "shim.o")]
        )
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            list(pool.map(lambda command: _run(command, src), jobs_list))
        library = out / LIBRARY
        partial = out / (LIBRARY + ".partial")
        _run(
            [cxx, "-shared", "-pthread", "-o", str(partial), *sorted(map(str, objects.iterdir()))],
            src,
        )
        partial.replace(library)
    compiler_version = subprocess.run(
        [cxx, "--version"], capture_output=True, text=True, check=False
    ).stdout.splitlines()[:1]
    return {
        "built": True,
        "library": LIBRARY,
        "loadgen_version": version,
        "sdist": sdist.name,
        "source_sha256": source_digest(sdist),
        "compiler": compiler_version[0] if compiler_version else cxx,
        "flags": list(FLAGS),
    }


def installed_loadgen() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("mlcommons-loadgen")
    except metadata.PackageNotFoundError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdist", type=Path, required=True, help="sdist file or folder")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--expect-version", help="the LoadGen release the sdist must be")
    parser.add_argument(
        "--match-installed", action="store_true",
        help="the sdist must be the release of the installed mlcommons-loadgen",
    )  # fmt: skip
    parser.add_argument("--optional", action="store_true", help="no compiler: record, exit 0")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    expected = args.expect_version
    if args.match_installed:
        expected = installed_loadgen()
        if expected is None:
            print("native build: mlcommons-loadgen is not installed", file=sys.stderr)
            return EXIT_FAILED
    args.out.mkdir(parents=True, exist_ok=True)
    cxx = compiler()
    try:
        if cxx is None:
            raise BuildError(
                f"no C++ compiler ({os.environ.get('CXX', 'g++')}) in this image",
                EXIT_NO_COMPILER,
            )
        sdist = find_sdist(args.sdist, expected)
        record = build(sdist, args.out, cxx, args.jobs)
        if expected and record["loadgen_version"] != expected:
            raise BuildError(
                f"{sdist.name} is LoadGen {record['loadgen_version']}, expected {expected}"
            )
    except BuildError as exc:
        reason = str(exc).splitlines()[0]
        (args.out / LIBRARY).unlink(missing_ok=True)
        (args.out / RECORD).write_text(json.dumps({"built": False, "reason": reason}) + "\n")
        print(f"native build: {exc}", file=sys.stderr)
        if args.optional and exc.status == EXIT_NO_COMPILER:
            return 0
        return exc.status
    (args.out / RECORD).write_text(json.dumps(record, indent=2) + "\n")
    print(f"native build: {LIBRARY} (LoadGen {record['loadgen_version']}, {record['compiler']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

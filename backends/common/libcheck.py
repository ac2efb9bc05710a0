"""Build-time check of a GPU image: every shared library its GPU libraries need must resolve.

`python -m backends.common.libcheck onnxruntime:capi/libonnxruntime_providers_cuda.so ...` runs
`ldd` on each matching file of each (not imported) package and fails the image build when a
dependency is "not found" — e.g. a CUDA 13 provider on a CUDA 12 base (libcublas.so.13 missing).
No GPU is needed. The driver's own libraries (libcuda, libnvidia-*) are exempt: the NVIDIA
container toolkit mounts them when a GPU container starts.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

DRIVER_LIBRARIES = re.compile(r"^(libcuda\.so|libnvidia-|libnvcuvid\.so|libnvoptix\.so)")
_NOT_FOUND = re.compile(r"^\s*(\S+)\s*=>\s*not found")


def package_dir(module: str) -> Path | None:
    """Folder of a top-level package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def missing_dependencies(library: Path) -> list[str]:
    """Sonames `ldd` cannot resolve for `library`, driver libraries excepted."""
    result = subprocess.run(
        ["ldd", str(library)], capture_output=True, text=True, timeout=60, check=False
    )
    missing = []
    for line in result.stdout.splitlines():
        match = _NOT_FOUND.match(line)
        if match and not DRIVER_LIBRARIES.match(match.group(1)):
            missing.append(match.group(1))
    return missing


def check(specs: list[str]) -> list[str]:
    """Problems for `module:glob` specs; empty when every library resolves."""
    problems = []
    for spec in specs:
        modules, _, pattern = spec.partition(":")
        # `a|b`: the first of these packages that holds matching libraries (packagings differ).
        found = [(m, package_dir(m)) for m in modules.split("|")]
        candidates = [(m, f, sorted(f.glob(pattern or "*.so"))) for m, f in found if f]
        if not candidates:
            problems.append(f"{modules}: package not installed in the image")
            continue
        module, folder, files = next((c for c in candidates if c[2]), candidates[0])
        if not files:
            problems.append(f"{module}: no {pattern} under {folder}")
        for library in files:
            missing = missing_dependencies(library)
            if missing:
                rel = library.relative_to(folder.parent)
                problems.append(f"{rel} needs {', '.join(missing)} (not found)")
    return problems


def main(argv: list[str]) -> int:
    problems = check(argv)
    for problem in problems:
        print(f"mlorch-libcheck: {problem}", file=sys.stderr)
    if problems:
        print(
            "mlorch-libcheck: GPU libraries cannot load in this image: the base image's CUDA "
            "libraries do not match the GPU wheels (see above)",
            file=sys.stderr,
        )
        return 1
    print(f"mlorch-libcheck: {len(argv)} GPU library set(s) resolve", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

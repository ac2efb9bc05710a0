"""ctypes binding of mlorch's native LoadGen issue path (`libmlorch_loadgen.so`).

The library holds its own LoadGen (the same release as the `mlperf_loadgen` bindings, built from
its sdist by `build.py`) behind a small C ABI. What it changes against the Python bindings: the
SUT's issue callback gets LoadGen's QuerySample array itself, as one numpy structured array
(`SAMPLE_DTYPE`, zero copy: LoadGen keeps the array until the test ends), and a batch is
completed with one call that builds the responses in C++ (`complete`). No Python object is made
per sample, on either side.
"""

from __future__ import annotations

import ctypes
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

LIBRARY = "libmlorch_loadgen.so"
RECORD = "build.json"
ABI_VERSION = 1
# Where the image's build stage puts the library; MLORCH_NATIVE_LOADGEN names another folder.
IMAGE_FOLDER = Path("/opt/mlorch/native")
FOLDER_ENV = "MLORCH_NATIVE_LOADGEN"
# LoadGen's QuerySample: {ResponseId id; QuerySampleIndex index;}, both 64-bit.
SAMPLE_DTYPE = np.dtype([("id", "<u8"), ("index", "<u8")])
# Issues of at most this many samples reach the SUT as two lists, bigger ones as one view.
SMALL_ISSUE = 64

_SCENARIOS = {"SingleStream": 0, "MultiStream": 1, "Server": 2, "Offline": 3}
_MODES = {"SubmissionRun": 0, "AccuracyOnly": 1, "PerformanceOnly": 2, "FindPeakPerformance": 3}

_ISSUE = ctypes.CFUNCTYPE(None, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t)
_FLUSH = ctypes.CFUNCTYPE(None, ctypes.c_size_t)
_INDICES = ctypes.CFUNCTYPE(None, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t)


class NativeUnavailable(RuntimeError):
    """The library is not there, or cannot be loaded; the message says why."""


@dataclass(frozen=True)
class BuildRecord:
    built: bool
    reason: str = ""
    loadgen_version: str = ""
    compiler: str = ""

    @classmethod
    def read(cls, folder: Path) -> BuildRecord:
        path = folder / RECORD
        if not path.is_file():
            return cls(False, f"no native build in {folder}")
        data = json.loads(path.read_text())
        return cls(
            bool(data.get("built")),
            str(data.get("reason", "")),
            str(data.get("loadgen_version", "")),
            str(data.get("compiler", "")),
        )


def describe(folder: Path | None = None) -> str:
    """One line on the issue path this image runs; raises when a built library does not load
    (the image build stops there rather than at the first test)."""
    folder = native_folder() if folder is None else folder
    record = BuildRecord.read(folder)
    if not record.built:
        return f"Python issue path: {record.reason}"
    NativeLoadGen(folder)
    return f"native issue path: LoadGen {record.loadgen_version} ({record.compiler})"


def native_folder() -> Path:
    given = os.environ.get(FOLDER_ENV)
    return Path(given) if given else IMAGE_FOLDER


def _as_int_list(pointer: int, count: int) -> list[int]:
    if not count:
        return []
    return (ctypes.c_uint64 * count).from_address(pointer)[:]


def samples_lists(pointer: int, count: int) -> tuple[list[int], list[int]]:
    """The ids and QSL indices of LoadGen's QuerySample array at `pointer`, as two lists
    (cheapest for the few samples of a Server or SingleStream query: ~0.4 µs)."""
    pairs = (ctypes.c_uint64 * (2 * count)).from_address(pointer)
    return pairs[0::2], pairs[1::2]


def samples_view(pointer: int, count: int) -> np.ndarray:
    """LoadGen's QuerySample array at `pointer` as a structured numpy view (no copy)."""
    if not count:
        return np.empty(0, SAMPLE_DTYPE)
    buffer = (ctypes.c_char * (count * SAMPLE_DTYPE.itemsize)).from_address(pointer)
    return np.frombuffer(memoryview(buffer), SAMPLE_DTYPE, count)


_pinned = threading.local()


def _pin_thread_state() -> None:
    """Keep the Python thread state of this thread (LoadGen's issue thread) for its life.

    A ctypes callback on a thread Python did not start makes a thread state on entry and frees
    it on return: ~5 µs a query (SingleStream p50 through a null engine: 89 µs, 83 µs pinned,
    82 µs on the bindings' path). One extra PyGILState_Ensure, never released, keeps it; the
    callback's own release still lets the GIL go (it was not held on entry), and interpreter
    shutdown clears the state with the others."""
    ensure = ctypes.pythonapi.PyGILState_Ensure
    ensure.restype = ctypes.c_int
    ensure()
    _pinned.done = True


class NativeLoadGen:
    """One loaded library. One test per process, as with the bindings (LoadGen's globals)."""

    def __init__(self, folder: Path | None = None) -> None:
        folder = native_folder() if folder is None else folder
        self.record = BuildRecord.read(folder)
        if not self.record.built:
            raise NativeUnavailable(self.record.reason or f"no {LIBRARY} in {folder}")
        try:
            lib = ctypes.CDLL(str(folder / LIBRARY))
        except OSError as exc:
            raise NativeUnavailable(f"{LIBRARY} does not load: {exc}") from exc
        lib.mlorch_abi_version.restype = ctypes.c_int
        if lib.mlorch_abi_version() != ABI_VERSION:
            raise NativeUnavailable(
                f"{LIBRARY} speaks ABI {lib.mlorch_abi_version()}, this code {ABI_VERSION}"
            )
        lib.mlorch_settings_new.restype = ctypes.c_void_p
        lib.mlorch_settings_new.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.mlorch_settings_free.argtypes = [ctypes.c_void_p]
        lib.mlorch_settings_from_config.restype = ctypes.c_int
        lib.mlorch_settings_from_config.argtypes = [ctypes.c_void_p] + [ctypes.c_char_p] * 3
        lib.mlorch_settings_set.restype = ctypes.c_int
        lib.mlorch_settings_set.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_double]
        lib.mlorch_settings_get.restype = ctypes.c_double
        lib.mlorch_settings_get.argtypes = [
            ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int)
        ]  # fmt: skip
        lib.mlorch_start_test.restype = None
        lib.mlorch_start_test.argtypes = [
            ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
            ctypes.c_size_t, ctypes.c_size_t, ctypes.c_size_t, _ISSUE, _FLUSH, _INDICES, _INDICES,
        ]  # fmt: skip
        lib.mlorch_complete.restype = None
        lib.mlorch_complete.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t
        ]  # fmt: skip
        self._lib = lib
        self._complete = lib.mlorch_complete

    def settings(self, scenario: str, mode: str) -> NativeSettings:
        return NativeSettings(self._lib, scenario, mode)

    def complete(self, ids: np.ndarray, data: np.ndarray) -> None:
        """Complete the samples `ids` (uint64, any stride) with one `data` row each (C order).

        The GIL is released during the call; `data` only has to live until it returns (LoadGen
        copies what it logs)."""
        count = len(ids)
        if len(data) != count:
            raise ValueError(f"{len(data)} responses for {count} samples")
        if not count:
            return
        if ids.dtype != np.uint64:
            ids = ids.astype(np.uint64)
        if not data.flags.c_contiguous:
            data = np.ascontiguousarray(data)
        row = data.nbytes // count
        self._complete(ids.ctypes.data, ids.strides[0], data.ctypes.data, row, count)

    def start_test(
        self,
        settings: NativeSettings,
        output_dir: Path,
        audit_config: str,
        *,
        name: str,
        total_count: int,
        performance_count: int,
        issue: Callable[[np.ndarray], None],
        issue_lists: Callable[[list[int], list[int]], None],
        flush: Callable[[], None],
        load: Callable[[list[int]], None],
        unload: Callable[[list[int]], None],
        on_error: Callable[[BaseException], None],
        enable_trace: bool = False,
    ) -> None:
        """Run one test (blocks, GIL released). An issue of up to SMALL_ISSUE samples goes to
        `issue_lists(ids, indices)`, a bigger one to `issue(view)`. An exception in a callback
        goes to `on_error` (a callback cannot raise through LoadGen's C++ frames)."""

        def on_issue(_client: int, pointer: int, count: int) -> None:
            if not getattr(_pinned, "done", False):
                _pin_thread_state()
            if count <= SMALL_ISSUE:
                issue_lists(*samples_lists(pointer, count))
            else:
                issue(samples_view(pointer, count))

        def guarded(function: Callable[..., None]) -> Callable[..., None]:
            def call(*args: Any) -> None:
                try:
                    function(*args)
                except BaseException as exc:  # handed to on_error
                    on_error(exc)

            return call

        # The ctypes callbacks must stay referenced until StartTest returns.
        callbacks = (
            _ISSUE(guarded(on_issue)),
            _FLUSH(guarded(lambda _c: flush())),
            _INDICES(guarded(lambda _c, pointer, count: load(_as_int_list(pointer, count)))),
            _INDICES(guarded(lambda _c, pointer, count: unload(_as_int_list(pointer, count)))),
        )
        self._lib.mlorch_start_test(
            settings.handle, str(output_dir).encode(), audit_config.encode(),
            1 if enable_trace else 0, name.encode(), total_count, performance_count, 0,
            *callbacks,
        )  # fmt: skip
        del callbacks


class NativeSettings:
    """LoadGen's TestSettings inside the library: from user.conf, then a few named fields."""

    def __init__(self, lib: Any, scenario: str, mode: str) -> None:
        if scenario not in _SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}")
        if mode not in _MODES:
            raise ValueError(f"unknown mode {mode!r}")
        self._lib = lib
        self.handle = lib.mlorch_settings_new(_SCENARIOS[scenario], _MODES[mode])

    def __del__(self) -> None:
        handle, self.handle = getattr(self, "handle", None), None
        if handle:
            self._lib.mlorch_settings_free(handle)

    def from_config(self, path: Path, model: str, scenario: str) -> int:
        return int(
            self._lib.mlorch_settings_from_config(
                self.handle, str(path).encode(), model.encode(), scenario.encode()
            )
        )

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("_lib", "handle"):
            object.__setattr__(self, name, value)
            return
        if self._lib.mlorch_settings_set(self.handle, name.encode(), float(value)) != 0:
            raise AttributeError(f"the native issue path cannot set TestSettings.{name}")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == "handle":
            raise AttributeError(name)
        ok = ctypes.c_int(0)
        value = self._lib.mlorch_settings_get(self.handle, name.encode(), ctypes.byref(ok))
        if not ok.value:
            raise AttributeError(f"the native issue path cannot read TestSettings.{name}")
        return value

"""A stand-in SUT for the real-LoadGen tests that need a process of their own (LoadGen allows
one test per process): `python -m tests.loadgen.standin --conf C --out DIR [--out DIR2]`.

Offline, PerformanceOnly, 8 samples answered with a zero. Each `--out` is one `run_test` through
the project's driver; a refusal is printed as `REFUSED: <reason>`. `--delay` holds every query
(to outlast a minimum duration); `--complete-twice` completes the first sample a second time.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np


class Qsl:
    total_count = 8
    performance_count = 8

    def load(self, indices: list[int]) -> None:
        pass

    def unload(self, indices: list[int]) -> None:
        pass


def sut_class(delay: float, complete_twice: bool) -> type:
    import mlperf_loadgen as lg

    class Sut:
        def issue_queries(self, samples: list[Any]) -> None:
            time.sleep(delay)
            out = np.zeros(1, np.float32)
            responses = [lg.QuerySampleResponse(s.id, out.ctypes.data, out.nbytes) for s in samples]
            lg.QuerySamplesComplete(responses)
            if complete_twice:
                lg.QuerySamplesComplete(responses[:1])

        def flush_queries(self) -> None:
            pass

        def stop(self) -> None:
            pass

    return Sut


def main() -> None:
    from backends.common.loadgen_driver import TestRequest, run_test

    parser = argparse.ArgumentParser()
    parser.add_argument("--conf", type=Path, required=True)
    parser.add_argument("--out", type=Path, action="append", required=True)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--complete-twice", action="store_true")
    args = parser.parse_args()
    sut = sut_class(args.delay, args.complete_twice)
    for out in args.out:
        try:
            run_test(TestRequest("Offline", "PerformanceOnly", args.conf, out), Qsl(), sut)
        except RuntimeError as exc:
            print("REFUSED:", exc, flush=True)  # noqa: T201 (read by the test)


if __name__ == "__main__":
    main()

"""Container commands every backend image answers: `prepare` (dataset → cache) and `synthetic`.

Each backend's `__main__` adds its own commands (`run`, `throughput`, ...) to the same parser, so
the host drives every image the same way for the shared steps.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

from contract.protocol import BAD_IMAGES_EXIT, bad_image_line, progress_line

Command = Callable[[argparse.Namespace], int]


def progress_printer(total: int) -> Callable[[int, int], None]:
    step = max(1, total // 20)

    def report(done: int, todo: int) -> None:
        if done % step == 0 or done == todo:
            print(progress_line(done, todo), flush=True)

    return report


def _prepare(args: argparse.Namespace) -> int:
    """Preprocess; damaged images and unusable inputs end in lines for the host, no traceback."""
    from backends.common.preprocess import BadImages, prepare_cache

    report = progress_printer(args.count)
    try:
        done = prepare_cache(
            args.dataset, args.cache, args.count, args.workers, report, args.format, args.val_map
        )
    except BadImages as exc:
        for relpath, reason in exc.failures:
            print(bad_image_line(relpath, reason), flush=True)
        number = len(exc.failures)
        print(f"prepare: {number} image{'s' * (number != 1)} could not be decoded", flush=True)
        return BAD_IMAGES_EXIT
    except (OSError, ValueError) as exc:
        print(f"prepare failed: {exc}", flush=True)
        return 1
    print(f"preprocessed {done} images ({args.format}) into {args.cache}", flush=True)
    return 0


def _synthetic(args: argparse.Namespace) -> int:
    from backends.common.synthetic import make_synthetic_assets

    made = make_synthetic_assets(
        args.out, args.images, args.seed, lambda n: print(progress_line(n), flush=True)
    )
    print(f"synthetic assets: {made.images} images, {made.distinct_labels} labels", flush=True)
    return 0


def add_test_arguments(parser: argparse.ArgumentParser, *, loadgen: bool) -> None:
    """The arguments every backend's `run` (loadgen=True: one LoadGen test) and `throughput`
    (loadgen=False: the raw engine) take; each backend adds its own engine options."""
    from contract.resnet50 import PERFORMANCE_SAMPLE_COUNT

    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    if not loadgen:
        parser.add_argument("--seconds", type=float, default=20.0)
        return
    parser.add_argument("--scenario", required=True)
    parser.add_argument("--mode", required=True)
    parser.add_argument("--performance-count", type=int, default=PERFORMANCE_SAMPLE_COUNT)
    parser.add_argument("--user-conf", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--audit-config", type=Path, default=None)
    parser.add_argument(
        "--sizing",
        choices=["quick", "full"],
        default=None,
        help="measure the SUT first and size the performance test from it",
    )


def add_test_commands(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    throughput_help: str,
    engine_arguments: Callable[[argparse.ArgumentParser, bool], None],
) -> None:
    """`run` (one LoadGen test) and `throughput` (the raw engine, the benchmarks' baseline):
    the shared test arguments, then the backend's own (`engine_arguments(parser, loadgen)`)."""
    for name, helptext, loadgen in (
        ("run", "run one LoadGen test", True),
        ("throughput", throughput_help, False),
    ):
        command = sub.add_parser(name, help=helptext)
        add_test_arguments(command, loadgen=loadgen)
        engine_arguments(command, loadgen)


def add_common_commands(sub: argparse._SubParsersAction) -> dict[str, Command]:  # type: ignore[type-arg]
    prepare = sub.add_parser("prepare", help="preprocess the dataset into the cache")
    prepare.add_argument("--dataset", type=Path, required=True)
    prepare.add_argument("--cache", type=Path, required=True)
    prepare.add_argument("--count", type=int, required=True)
    prepare.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    prepare.add_argument("--format", choices=["fp32", "int8"], default="fp32")
    prepare.add_argument(
        "--val-map", type=Path, default=None, help="a filtered list instead of DATASET/val_map.txt"
    )

    synthetic = sub.add_parser("synthetic", help="generate the synthetic model and dataset")
    synthetic.add_argument("--out", type=Path, required=True)
    synthetic.add_argument("--images", type=int, default=64)
    synthetic.add_argument("--seed", type=int, default=0)
    return {"prepare": _prepare, "synthetic": _synthetic}

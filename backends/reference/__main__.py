"""Container entry point: `python -m backends.reference prepare|run ...`.

`prepare` fills the preprocessed cache; `run` executes one LoadGen test (one per process).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _prepare(args: argparse.Namespace) -> int:
    from backends.common.imagenet import prepare_cache

    total = args.count
    step = max(1, total // 20)

    def report(done: int, todo: int) -> None:
        if done % step == 0 or done == todo:
            print(f"mlorch-progress {done} {todo}", flush=True)

    done = prepare_cache(args.dataset, args.cache, args.count, args.workers, report)
    print(f"preprocessed {done} images into {args.cache}", flush=True)
    return 0


def _run(args: argparse.Namespace) -> int:
    from backends.common.dataset import PreprocessedImagenet
    from backends.common.loadgen_driver import TestRequest, run_test
    from backends.reference.sut import OnnxRuntimeModel, ReferenceSUT

    threads = args.threads or os.cpu_count() or 1
    qsl = PreprocessedImagenet(args.cache, args.count, args.performance_count)
    model = OnnxRuntimeModel(args.model, args.device, args.intra_op_threads)
    print(
        f"reference SUT: {args.scenario}/{args.mode}, {model.facts['providers']}, "
        f"threads={threads}, max_batchsize={args.max_batchsize}, samples={qsl.total_count}",
        flush=True,
    )
    request = TestRequest(
        scenario=args.scenario,
        mode=args.mode,
        user_conf=args.user_conf,
        output_dir=args.output,
        audit_config=args.audit_config,
    )
    facts = {
        "backend": "reference",
        "device": args.device,
        "threads": threads,
        "max_batchsize": args.max_batchsize,
        **model.facts,
    }
    run_test(
        request,
        qsl,
        lambda: ReferenceSUT(model, qsl, args.scenario, threads, args.max_batchsize),
        facts,
    )
    print("LoadGen test finished", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backends.reference")
    sub = parser.add_subparsers(dest="command", required=True)

    prepare = sub.add_parser("prepare", help="preprocess the dataset into the cache")
    prepare.add_argument("--dataset", type=Path, required=True)
    prepare.add_argument("--cache", type=Path, required=True)
    prepare.add_argument("--count", type=int, required=True)
    prepare.add_argument("--workers", type=int, default=os.cpu_count() or 1)

    run = sub.add_parser("run", help="run one LoadGen test")
    run.add_argument("--scenario", required=True)
    run.add_argument("--mode", required=True)
    run.add_argument("--model", type=Path, required=True)
    run.add_argument("--cache", type=Path, required=True)
    run.add_argument("--count", type=int, required=True)
    run.add_argument("--performance-count", type=int, default=1024)
    run.add_argument("--user-conf", type=Path, required=True)
    run.add_argument("--output", type=Path, required=True)
    run.add_argument("--audit-config", type=Path, default=None)
    run.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    run.add_argument("--threads", type=int, default=0)
    run.add_argument("--intra-op-threads", type=int, default=0)
    run.add_argument("--max-batchsize", type=int, default=32)

    args = parser.parse_args(argv)
    return _prepare(args) if args.command == "prepare" else _run(args)


if __name__ == "__main__":
    sys.exit(main())

"""Container entry point: `python -m backends.reference prepare|synthetic|run|throughput ...`.

`prepare` and `synthetic` are the shared commands (backends.common.cli); `run` executes one
LoadGen test (one per process); `throughput` measures raw onnxruntime speed for the benchmarks.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def warm_up_batch_sizes(scenario: str, max_batchsize: int, total: int) -> tuple[int, ...]:
    """The batch shapes a scenario will run: warming others would only cost time."""
    if scenario in ("SingleStream", "Server"):
        return (1,)
    if scenario == "MultiStream":
        return (min(8, max_batchsize, total),)  # samples_per_query of resnet50 MultiStream
    return (min(max_batchsize, total),)


def _run(args: argparse.Namespace) -> int:
    from backends.common.dataset import PreprocessedImagenet
    from backends.common.loadgen_driver import TestRequest, run_test
    from backends.reference.sut import OnnxRuntimeModel, ReferenceSUT

    threads = args.threads or os.cpu_count() or 1
    qsl = PreprocessedImagenet(args.cache, args.count, args.performance_count)
    model = OnnxRuntimeModel(args.model, args.device, args.intra_op_threads)
    model.warm_up(warm_up_batch_sizes(args.scenario, args.max_batchsize, qsl.total_count))
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
        sizing=args.sizing,
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
        lambda complete=None: ReferenceSUT(
            model, qsl, args.scenario, threads, args.max_batchsize, complete
        ),
        facts,
    )
    print("LoadGen test finished", flush=True)
    return 0


def _throughput(args: argparse.Namespace) -> int:
    """Raw onnxruntime throughput: the SUT's model, batch and threads, no LoadGen."""
    import threading
    import time

    import numpy as np

    from backends.common.dataset import PreprocessedImagenet
    from backends.reference.sut import OnnxRuntimeModel
    from contract.protocol import THROUGHPUT_PREFIX, json_line

    threads = args.threads or os.cpu_count() or 1
    qsl = PreprocessedImagenet(args.cache, args.count, args.count)
    qsl.load(list(range(qsl.total_count)))
    model = OnnxRuntimeModel(args.model, args.device, args.intra_op_threads)
    indices = [i % qsl.total_count for i in range(args.max_batchsize)]
    batch = qsl.batch(indices)
    model.predict(batch)  # warm-up
    done = [0] * threads
    deadline = time.monotonic() + args.seconds

    def work(worker: int) -> None:
        while time.monotonic() < deadline:
            model.predict(np.ascontiguousarray(qsl.batch(indices)), worker)
            done[worker] += len(indices)

    started = time.monotonic()
    pool = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.monotonic() - started
    record = {
        "samples_per_second": sum(done) / elapsed,
        "threads": threads,
        "batch": args.max_batchsize,
        "seconds": elapsed,
        **model.facts,
    }
    print(json_line(THROUGHPUT_PREFIX, record), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    from backends.common.cli import add_common_commands, add_test_commands

    parser = argparse.ArgumentParser(prog="python -m backends.reference")
    sub = parser.add_subparsers(dest="command", required=True)
    commands = add_common_commands(sub)

    def engine_arguments(command: argparse.ArgumentParser, loadgen: bool) -> None:
        command.add_argument("--model", type=Path, required=True)
        command.add_argument("--threads", type=int, default=0)
        command.add_argument("--intra-op-threads", type=int, default=0)
        command.add_argument("--max-batchsize", type=int, default=32)

    add_test_commands(sub, "raw onnxruntime throughput (benchmark baseline)", engine_arguments)

    args = parser.parse_args(argv)
    commands.update(run=_run, throughput=_throughput)
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())

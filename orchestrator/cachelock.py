"""The per-key lock of one host cache entry, as mlorch's steps take it.

Two `mlorch up` on one host may need the same cache entry (a wheelhouse, a probe, the synthetic
assets, a preprocessed dataset, an image build) at once. Whoever takes the entry's lock fills it;
the other is told once that it waits, then finds the entry complete and reuses it. The locks are
`contract.locks.exclusive` (flock: released when their process dies, even by SIGKILL), in
`$MLORCH_CACHE/locks/`: outside the folders lent to containers, so a container never needs them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from contract.locks import LockTimeout, exclusive
from orchestrator.console import Terminal
from orchestrator.errors import WaitTimeout
from orchestrator.paths import cache_dir

# The holder needs up to its own bounded step (its timeout) plus its checks before and after.
MARGIN_S = 120.0


def lock_path_for(kind: str, key: str) -> str:
    """File name of the lock of cache entry `key` of `kind` (any characters in `key`)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", f"{kind}-{key}") + ".lock"


@contextmanager
def cache_lock(
    kind: str, key: str, what: str, terminal: Terminal | None, step_timeout_s: float
) -> Iterator[None]:
    """Hold the lock of cache entry `key` of `kind` (e.g. "wheelhouse", its key) for the block.

    `what` completes "waiting for another mlorch to finish …" (e.g. "preprocessing 64 images").
    Waits at most the holder's own step timeout plus a margin.
    """
    path = cache_dir() / "locks" / lock_path_for(kind, key)
    say = terminal or Terminal()
    timeout_s = step_timeout_s + MARGIN_S
    try:
        with exclusive(
            path,
            timeout_s=timeout_s,
            on_wait=lambda: say.info(f"waiting for another mlorch to finish {what}"),
        ):
            yield
    except LockTimeout as exc:
        raise WaitTimeout(
            f"another mlorch did not finish {what} within {timeout_s:.0f} s",
            exit_status=None,
            hint=f"check the other mlorch process; its lock is {path}",
        ) from exc

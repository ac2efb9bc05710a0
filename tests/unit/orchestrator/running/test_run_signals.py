"""How `up` takes SIGTERM and SIGHUP: as Ctrl-C, unless the user started it with them ignored."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from orchestrator.running.up import signals_as_interrupt


@pytest.fixture
def dispositions() -> Iterator[None]:
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


@pytest.mark.usefixtures("dispositions")
def test_sigterm_becomes_an_interrupt_and_is_restored_after() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), signals_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) == before


@pytest.mark.usefixtures("dispositions")
def test_nohup_keeps_sighup_ignored() -> None:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as `nohup mlorch up ...` starts it
    with signals_as_interrupt():
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        os.kill(os.getpid(), signal.SIGHUP)  # nothing happens
        assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_IGN, signal.SIG_DFL)
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN

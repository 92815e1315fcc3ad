"""A signal stops at once outside finishing and only asks inside it, in this process (real commands
interrupted are in tests/e2e/test_interrupt.py)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from pathways import interrupt


def test_a_signal_stops_at_once_outside_finishing_and_only_asks_inside():
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with interrupt.handled():
        with pytest.raises(interrupt.Interrupted) as raised:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # (the handler runs in this thread at once)
        assert (raised.value.exit_status, interrupt.exit_status(), interrupt.signal_name()) == (143, 143, "SIGTERM")
        interrupt.reset()
        with interrupt.finishing():
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGTERM)  # a second one changes nothing while finishing
            time.sleep(0.1)
            assert interrupt.requested() and interrupt.exit_status() == 130  # the first signal counts
        with pytest.raises(interrupt.Interrupted):  # asked already: nothing new begins
            with interrupt.finishing():
                pass
    assert not interrupt.requested() and interrupt.exit_status() == 0
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before

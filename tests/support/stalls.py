"""Say where a call that should take milliseconds spent seconds: every thread's stack, taken while it waits.

The fuzzing's requests take milliseconds. One CI run saw a single request of the fuzzing take over 10 s, once
(its replay took milliseconds), and no local run could make it happen again. ``watch`` makes the next one explain
itself: past ``after_s`` it writes every thread's Python stack to a file, and the test's warnings name the file.
"""

from __future__ import annotations

import faulthandler
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: One file for the whole run (faulthandler keeps one pending dump per process, so calls never overlap).
STALL_LOG = Path(tempfile.gettempdir()) / "gongping-stalls.txt"


class SlowCall(UserWarning):
    """A call took far longer than it should; the stacks taken while it waited are in ``STALL_LOG``."""


@contextmanager
def watch(label: str, *, after_s: float = 3.0) -> Iterator[None]:
    """Dump every thread's stack to ``STALL_LOG`` if the block is still running after ``after_s``; warn then.

    A quick block writes nothing; a slow one's stacks are followed by a line naming it and its duration.
    """
    with STALL_LOG.open("a", encoding="utf-8") as log:
        started = time.monotonic()
        faulthandler.dump_traceback_later(after_s, repeat=False, file=log)
        try:
            yield
        finally:
            faulthandler.cancel_dump_traceback_later()
            took = time.monotonic() - started
            if took >= after_s:
                log.write(f"=== {label} took {took:.1f} s; above, every thread's stack at {after_s} s\n")
    if took >= after_s:
        warnings.warn(
            SlowCall(f"{label} took {took:.1f} s; the threads' stacks are in {STALL_LOG}"), stacklevel=3
        )

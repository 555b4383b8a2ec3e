"""The one-machine mode's process supervisor: keep every child running, restart the dead with backoff.

Each child runs in its own session (process group): Ctrl-C reaches only us and we stop the children in order
(SIGTERM, then SIGKILL of the whole group after a grace period, which takes Celery's pool processes along).
A child that dies is restarted after 1 s, doubling to 30 s while it keeps dying; a child that ran 60 s before
dying starts again from 1 s.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

MIN_DELAY = 1.0
MAX_DELAY = 30.0
STABLE_AFTER = 60.0
GRACE = 15.0


@dataclass
class Child:
    """One supervised process and its restart state."""

    name: str
    args: Sequence[str]
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    delay: float = MIN_DELAY
    restart_at: float | None = None
    restarts: int = 0


def _kill_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Signal the child's whole process group (its own pool processes too); gone already is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


class Supervisor:
    """Start the children, restart any that dies, stop them all."""

    def __init__(
        self,
        children: Mapping[str, Sequence[str]],
        *,
        cwd: Path,
        log: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.children = [Child(name, args) for name, args in children.items()]
        self.cwd = cwd
        self.log = log
        self.clock = clock

    def _spawn(self, child: Child) -> None:
        child.proc = subprocess.Popen(child.args, cwd=self.cwd, start_new_session=True)
        child.started_at = self.clock()
        child.restart_at = None

    def start(self) -> None:
        """Start every child."""
        for child in self.children:
            self._spawn(child)

    def step(self) -> None:
        """Notice children that died and schedule their restart; restart those whose delay has passed."""
        now = self.clock()
        for child in self.children:
            assert child.proc is not None
            if child.restart_at is None:
                code = child.proc.poll()
                if code is None:
                    continue
                # Whatever the dead leader left in its group (Celery's pool processes) goes with it.
                _kill_group(child.proc, signal.SIGKILL)
                if now - child.started_at >= STABLE_AFTER:
                    child.delay = MIN_DELAY
                child.restart_at = now + child.delay
                self.log(
                    f"{child.name} 已退出（退出码 {code}），{child.delay:g} 秒后重启"
                    f" / {child.name} exited with {code}; restarting in {child.delay:g} s"
                )
                child.delay = min(child.delay * 2, MAX_DELAY)
            elif now >= child.restart_at:
                self._spawn(child)
                child.restarts += 1
                pid = child.proc.pid
                self.log(f"{child.name} 已重启（进程 {pid}）/ {child.name} restarted (pid {pid})")

    def stop(self, grace: float = GRACE) -> None:
        """SIGTERM every running child, then SIGKILL each group still alive after ``grace`` seconds."""
        procs = [c.proc for c in self.children if c.proc is not None]
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            _kill_group(proc, signal.SIGKILL)
            proc.wait()

"""Test-only fault-injection pause points, so a fault test can kill a process at a known place in a task.

Inert unless ``GONGPING_ENVIRONMENT=test`` and ``GONGPING_FAULT_PAUSE`` names the point (``point=seconds``,
comma-separated); a production process never pauses. On reaching an armed point the process touches
``$GONGPING_FAULT_SIGNAL_DIR/<point>`` (so the test knows where it is) and sleeps.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def pause(point: str) -> None:
    """Sleep here if a fault test armed ``point``; a no-op otherwise."""
    spec = os.environ.get("GONGPING_FAULT_PAUSE")
    if not spec or os.environ.get("GONGPING_ENVIRONMENT") != "test":
        return
    for item in spec.split(","):
        name, _, seconds = item.partition("=")
        if name.strip() == point:
            signal_dir = os.environ.get("GONGPING_FAULT_SIGNAL_DIR")
            if signal_dir:
                Path(signal_dir, point).touch()
            time.sleep(float(seconds or 60))
            return

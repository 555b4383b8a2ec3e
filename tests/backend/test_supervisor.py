"""``gongping run`` keeps its children alive: restarts with backoff, and stops them all on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from backend import supervisor
from backend.config import ROOT
from backend.supervisor import Supervisor


def _wait(condition: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_restarts_back_off_double_to_the_cap_and_reset_after_a_stable_run(tmp_path: Path) -> None:
    now = [1000.0]
    logged: list[str] = []
    crash = [sys.executable, "-c", "raise SystemExit(3)"]
    sup = Supervisor({"worker": crash}, cwd=tmp_path, log=logged.append, clock=lambda: now[0])
    sup.start()
    child = sup.children[0]
    delays: list[float] = []
    for _ in range(7):
        assert child.proc is not None
        child.proc.wait()
        sup.step()  # noticed: a restart is scheduled
        assert child.restart_at is not None
        delays.append(child.restart_at - now[0])
        sup.step()  # not yet due
        assert child.restart_at is not None
        now[0] = child.restart_at
        sup.step()  # due: started again
        assert child.restart_at is None
    assert delays == [1, 2, 4, 8, 16, 30, 30] and child.restarts == 7
    assert "worker 已退出（退出码 3），1 秒后重启 / worker exited with 3; restarting in 1 s" in logged
    assert any(line.startswith("worker 已重启") and "/ worker restarted (pid" in line for line in logged)
    # A run of 60 s counts as healthy: the next death waits 1 s again.
    assert child.proc is not None
    child.proc.wait()
    now[0] += supervisor.STABLE_AFTER
    sup.step()
    assert child.restart_at == now[0] + 1
    sup.stop()


def test_stop_terms_then_kills_the_whole_group(tmp_path: Path) -> None:
    # A child that ignores SIGTERM and has a child of its own (as Celery's pool processes are).
    stubborn = [
        sys.executable,
        "-c",
        "import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
        "print(p.pid, flush=True); time.sleep(60)",
    ]
    polite = [sys.executable, "-c", "import time; time.sleep(60)"]
    sup = Supervisor({"stubborn": stubborn, "polite": polite}, cwd=tmp_path, log=lambda _line: None)
    sup.start()
    time.sleep(1.0)
    pids = [c.proc.pid for c in sup.children if c.proc is not None]
    started = time.monotonic()
    sup.stop(grace=1.0)
    assert time.monotonic() - started < 10
    assert all(c.proc is not None and c.proc.returncode is not None for c in sup.children)
    assert sup.children[1].proc is not None and sup.children[1].proc.returncode == -signal.SIGTERM
    assert sup.children[0].proc is not None and sup.children[0].proc.returncode == -signal.SIGKILL
    _wait(lambda: not any(_alive(p) for p in _group_members(pids[0])), "the grandchild to die", 10)


def _complaint_photo_is_processed(base: str) -> None:
    from backend.demo import DEMO_PASSWORD
    from tests.factories import complaint_json
    from tests.fixtures.media_images import jpeg, photo_like

    with httpx.Client(base_url=base, timeout=30) as client:
        token = client.post(
            "/api/v1/auth/token", data={"username": "consumer_demo", "password": DEMO_PASSWORD}
        )
        assert token.status_code == 200, token.text
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        filed = client.post(
            "/api/v1/complaint-form",
            data={"complaint": json.dumps(complaint_json(), ensure_ascii=False)},
            files=[("photos", ("p.jpg", jpeg(photo_like(640, 480, seed=7)), "image/jpeg"))],
            headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert filed.status_code == 201, filed.text
        complaint_id = filed.json()["id"]

        def processed() -> bool:
            photos = client.get(f"/api/v1/complaints/{complaint_id}", headers=headers).json()["photos"]
            return bool(photos) and all(p["status"] == "processed" for p in photos)

        _wait(processed, "the restarted worker to process the photo", 90)


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text[text.rindex(")") + 2 :].split()  # state, ppid, pgrp, ...


def _alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _group_members(pgid: int) -> list[int]:
    return [pid for pid in _all_pids() if (f := _stat(pid)) is not None and int(f[2]) == pgid]


def _children(ppid: int) -> list[int]:
    return [pid for pid in _all_pids() if (f := _stat(pid)) is not None and int(f[1]) == ppid and f[0] != "Z"]


def _descendants(ppid: int) -> list[int]:
    found = _children(ppid)
    return found + [d for pid in found for d in _descendants(pid)]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.slow
def test_gongping_run_survives_kill_9_of_its_worker_and_stops_everything_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "GONGPING_DATABASE_URL": f"sqlite:///{tmp_path / 'gongping.db'}",
        "GONGPING_BROKER_URL": "filesystem://",
        "GONGPING_BROKER_DIR": str(tmp_path / "broker"),
        "GONGPING_MEDIA_DIR": str(tmp_path / "media"),
        "GONGPING_HOST": "127.0.0.1",
        "GONGPING_PORT": str(port),
    }
    log = (tmp_path / "run.log").open("wb")
    parent = subprocess.Popen(
        [sys.executable, "-m", "backend.cli", "run"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert parent.poll() is None, (tmp_path / "run.log").read_text()
        try:
            return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def worker_pid() -> int | None:
        for pid in _children(parent.pid):
            if "celery" in _cmdline(pid) and " worker " in _cmdline(pid):
                return pid
        return None

    try:
        _wait(healthy, "/healthz", 120)
        _wait(lambda: worker_pid() is not None, "the worker", 30)
        old = worker_pid()
        assert old is not None
        os.kill(old, signal.SIGKILL)
        _wait(lambda: worker_pid() not in (None, old), "a new worker", 30)
        assert healthy()
        # The product goes on: a complaint filed now has its photo processed by the restarted worker.
        _complaint_photo_is_processed(base)
        text = (tmp_path / "run.log").read_text()
        assert "worker 已退出" in text and "/ worker restarted (pid" in text
        everyone = [parent.pid, *_descendants(parent.pid)]
        assert len(_children(parent.pid)) == 4
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=60) == 0
        _wait(lambda: not any(_alive(pid) for pid in everyone), "every child to be gone", 20)
        assert "已停止 / stopped" in (tmp_path / "run.log").read_text()
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for pid in _descendants(parent.pid):
            os.kill(pid, signal.SIGKILL)
        log.close()

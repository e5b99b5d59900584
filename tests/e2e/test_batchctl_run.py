"""``batchctl run`` as a user runs it: every part up, a crashed part restarted, Ctrl-C stops
all of them."""

import signal
import socket
import subprocess
import sys
import time

import httpx

from tests.integration.conftest import wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def children(pid: int) -> dict[str, int]:
    out = subprocess.run(
        ["ps", "-ww", "-o", "pid=,args=", "--ppid", str(pid)],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    parts = {}
    for line in out.splitlines():
        child, _, args = line.strip().partition(" ")
        name = args.split("batchctl", 1)[-1].strip()
        parts[name] = int(child)
    return parts


def test_run_restarts_a_crashed_part_and_stops_all_on_ctrl_c(stack_env):
    port = free_port()
    run = subprocess.Popen(
        [sys.executable, "-m", "batchctl", "run", "--port", str(port)],
        env=stack_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: _ready(port), 60, "the API of `batchctl run` to be ready")
        parts = children(run.pid)
        assert {"projector", "worker --job-type query", "worker --job-type enrollment"} <= set(
            parts
        ), parts
        assert any(name.startswith("api") for name in parts)

        crashed = parts["worker --job-type query"]
        subprocess.run(["kill", "-9", str(crashed)], check=True)
        restarted = wait_for(
            lambda: (
                (pid := children(run.pid).get("worker --job-type query")) not in (None, crashed)
                and pid
            ),
            30,
            "the crashed worker to be restarted",
        )
        assert restarted != crashed

        run.send_signal(signal.SIGINT)
        assert run.wait(40) == 0
        time.sleep(0.5)
        for pid in [*parts.values(), restarted]:
            assert subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode != 0
    finally:
        if run.poll() is None:
            run.kill()
        output = run.communicate()[0]
    assert "exited with code -9; restarting" in output


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False

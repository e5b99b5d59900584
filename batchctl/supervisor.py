"""Runs the parts as child processes, restarts any that crash, and stops them all cleanly on
Ctrl-C or SIGTERM."""

import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from rich.console import Console

console = Console(stderr=True)


@dataclass
class Part:
    name: str
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = field(default=0.0)


def _terminate_with_parent() -> None:
    """In the child, before exec: get SIGTERM if the supervisor dies (even by SIGKILL), so
    that no part outlives it. Linux only; elsewhere a no-op."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def batchctl_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "batchctl", *args]


class Supervisor:
    def __init__(
        self, parts: list[Part], env: dict[str, str] | None = None, log_file: str | None = None
    ):
        self.parts = parts
        self.env = {**os.environ, **(env or {})}
        self.log_file = log_file
        self.stopping = False

    def _start(self, part: Part) -> None:
        out = open(self.log_file, "ab") if self.log_file else None  # noqa: SIM115
        part.process = subprocess.Popen(
            part.args,
            env={**self.env, **part.env},
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
            preexec_fn=_terminate_with_parent,
        )
        part.started_at = time.monotonic()
        if out is not None:
            out.close()

    def start_all(self) -> None:
        for part in self.parts:
            self._start(part)

    def check(self) -> None:
        """Restart parts that exited, with a growing delay for those that crash at once."""
        now = time.monotonic()
        for part in self.parts:
            if part.process is None or part.process.poll() is None or self.stopping:
                continue
            if part.next_start == 0.0:
                lived = now - part.started_at
                delay = 1.0 if lived > 30 else min(30.0, 2.0 ** min(part.restarts, 5))
                console.print(
                    f"[yellow]{part.name} exited with code "
                    f"{part.process.returncode}; restarting in {delay:.0f}s[/]"
                )
                part.next_start = now + delay
            elif now >= part.next_start:
                part.restarts += 1
                part.next_start = 0.0
                self._start(part)

    def stop_all(self, timeout_s: float = 20.0) -> None:
        self.stopping = True
        for part in self.parts:
            if part.process is not None and part.process.poll() is None:
                part.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for part in self.parts:
            if part.process is None:
                continue
            try:
                part.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                part.process.kill()
                part.process.wait()

    def run_forever(self) -> None:
        self.start_all()
        self.keep_running()

    def keep_running(self) -> None:
        """Restart the started parts that exit, until SIGINT or SIGTERM; then stop all."""

        def _stop(signum: int, frame: object) -> None:
            raise KeyboardInterrupt

        # Explicitly, also for SIGINT: a shell starts background jobs with SIGINT ignored.
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        try:
            while True:
                time.sleep(0.5)
                self.check()
        except KeyboardInterrupt:
            console.print("stopping all parts ...")
        finally:
            self.stop_all()


def stack_parts(
    job_types: list[str], api_port: int | None = None, metrics_port: int | None = None
) -> list[Part]:
    """The API, the projector, the notifier and a worker per job type. ``metrics_port``: the
    projector's metrics port, the workers' the ones after it, then the notifier's (the API
    serves /metrics itself)."""
    api_args = ["api"] + (["--port", str(api_port)] if api_port else [])

    def metrics(offset: int) -> dict[str, str]:
        return {"METRICS_PORT": str(metrics_port + offset)} if metrics_port else {}

    return [
        Part("api", batchctl_command(*api_args)),
        Part("projector", batchctl_command("projector"), metrics(0)),
        *(
            Part(f"worker:{t}", batchctl_command("worker", "--job-type", t), metrics(1 + n))
            for n, t in enumerate(job_types)
        ),
        Part("notifier", batchctl_command("notifier"), metrics(1 + len(job_types))),
    ]

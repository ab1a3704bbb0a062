"""Helpers for tests that run the real server or workers as child processes."""

from __future__ import annotations

import subprocess


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Ask a child to stop (SIGTERM: clean shutdown); kill it if it has not within ``timeout``."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)

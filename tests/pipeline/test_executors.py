"""Executors: every task's value reaches the driver, progress counts arrive, and local pool
workers do not outlive a killed runner."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path

    from ivi_rl.pipeline.executors import LocalPool

    def slow(task, progress):
        Path(sys.argv[1], f"worker_{os.getpid()}").touch()
        time.sleep(120)

    if __name__ == "__main__":
        LocalPool(2).run(slow, [0, 1], print, print)
    """
)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # an exited worker may wait as a zombie for a reaper


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


@pytest.mark.skipif(not Path("/proc").exists(), reason="reads process states from /proc")
def test_workers_exit_when_the_runner_is_killed(tmp_path):
    script = tmp_path / "runner.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    runner = subprocess.Popen([sys.executable, str(script), str(tmp_path)], env=env)
    try:
        deadline = time.monotonic() + 120
        while len(list(tmp_path.glob("worker_*"))) < 2:
            assert time.monotonic() < deadline, "workers did not start"
            time.sleep(0.2)
        workers = [int(p.name.split("_")[1]) for p in tmp_path.glob("worker_*")]
        children = _children(runner.pid)  # the workers and multiprocessing's helpers
        assert set(workers) <= set(children)
        runner.send_signal(signal.SIGTERM)  # not the process group: the workers get nothing
        runner.wait(timeout=30)
        deadline = time.monotonic() + 15  # they poll their parent every second
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in children if _alive(pid)]
    finally:
        runner.kill()
        for p in tmp_path.glob("worker_*"):
            pid = int(p.name.split("_")[1])
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


PROGRESS_SCRIPT = textwrap.dedent(
    """
    from ivi_rl.pipeline.executors import LocalPool

    def steps(task, progress):
        for _ in range(task):
            progress(10)
        return task * 100

    if __name__ == "__main__":
        counts, done = [], {}
        LocalPool(2).run(steps, [1, 2, 3, 4], done.__setitem__, counts.append)
        print(sum(counts), len(counts), sorted(done.items()))
    """
)


def test_workers_report_every_progress_count(tmp_path):
    script = tmp_path / "progress.py"
    script.write_text(PROGRESS_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    out = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "100 10 [(1, 100), (2, 200), (3, 300), (4, 400)]"


def test_in_process_hands_every_value_to_on_done_with_one_thread_and_restores_the_count():
    import torch

    from ivi_rl.pipeline.executors import InProcess

    before = torch.get_num_threads()
    seen, counts = {}, []

    def task(n, progress):
        progress(n)
        return n * 10, torch.get_num_threads()

    InProcess().run(task, [1, 2, 3], seen.__setitem__, counts.append)
    assert seen == {1: (10, 1), 2: (20, 1), 3: (30, 1)}
    assert counts == [1, 2, 3]
    assert torch.get_num_threads() == before


def test_a_failing_task_stops_the_run_and_keeps_what_was_handed_over():
    from ivi_rl.pipeline.executors import InProcess

    seen = []

    def task(n, progress):
        if n == 2:
            raise FloatingPointError("task 2 diverged")
        return n

    with pytest.raises(FloatingPointError, match="task 2 diverged"):
        InProcess().run(task, [1, 2, 3], lambda t, v: seen.append(v), lambda n: None)
    assert seen == [1]

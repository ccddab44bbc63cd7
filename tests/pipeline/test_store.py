"""Task scratch folders: removed after a task, and after a killed one by the next task."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ivi_rl.pipeline.store import _scratch_prefix, in_scratch, remove_orphaned_scratch

pytestmark = pytest.mark.skipif(os.name == "nt", reason="orphans are found by POSIX pids")

_HOLD_SCRATCH = """
import sys, time
from ivi_rl.pipeline.store import in_scratch

def run(task, progress, scratch):
    print(scratch, flush=True)
    time.sleep(60)

in_scratch(run, None, lambda n: None, "test")
"""


def _dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(proc.stdout)


def test_scratch_is_removed_after_the_task(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    seen = []

    def run(task, progress, scratch):
        (scratch / "f.txt").write_text("x")
        seen.append(scratch)
        return task

    assert in_scratch(run, 7, lambda n: None, "where") == 7
    assert seen[0].name.startswith(_scratch_prefix(os.getpid()))
    assert not seen[0].exists()


def test_only_dead_processes_of_this_host_lose_their_scratch(tmp_path):
    dead = tmp_path / f"{_scratch_prefix(_dead_pid())}abc"
    live = tmp_path / f"{_scratch_prefix(os.getpid())}abc"
    other_host = tmp_path / f"ivi_rl_task_00000000_{_dead_pid()}_abc"
    unrelated = tmp_path / "ivi_rl_task_old"
    for folder in (dead, live, other_host, unrelated):
        folder.mkdir()
        (folder / "f.txt").write_text("x")
    assert remove_orphaned_scratch(tmp_path) == [dead]
    assert not dead.exists()
    assert live.exists() and other_host.exists() and unrelated.exists()


def test_a_killed_task_leaves_scratch_the_next_task_removes(tmp_path, monkeypatch):
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD_SCRATCH], env=env, stdout=subprocess.PIPE, text=True
    )
    scratch = Path(proc.stdout.readline().strip())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert scratch.parent == tmp_path and scratch.is_dir()  # killed: no cleanup of its own
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    in_scratch(lambda task, progress, s: None, None, lambda n: None, "next")
    assert not scratch.exists()

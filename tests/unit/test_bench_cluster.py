"""The cluster bench's CPU readings (issue 19): a component's CPU is its whole process tree's, the time of
children that already exited (reaped) included, and nothing of processes outside the tree."""

from __future__ import annotations

import subprocess
import sys
import time

from bench.cluster import tree_cpu_s

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"
PARENT = (
    "import subprocess, sys, time\n"
    f"subprocess.run([sys.executable, '-c', {BURN!r}])\n"
    "print('reaped', flush=True)\n"
    f"child = subprocess.Popen([sys.executable, '-c', {BURN + 'time.sleep(30)' + chr(10)!r}])\n"
    "time.sleep(30)\n"
)


def test_a_trees_cpu_holds_its_live_and_its_exited_children() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline().strip() == "reaped"
        before, _ = tree_cpu_s([parent.pid])
        # The exited child's 0.3 s, reaped by the parent, is in the tree's time.
        assert before >= 0.3
        deadline = time.monotonic() + 30
        after, count = before, 0
        while after - before < 0.25 and time.monotonic() < deadline:
            time.sleep(0.05)
            after, count = tree_cpu_s([parent.pid])
        # The live child's burn is seen through the tree, and it is one of the tree's two processes.
        assert after - before >= 0.25
        assert count == 2
        assert tree_cpu_s([2**22 + 17]) == (0.0, 0)  # no such process: nothing
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()

"""course_utils.offline: the network guard survives a second import of the module (nnsight's remote="local"
dry run re-imports the course's modules) without stacking guards or changing the error class."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import socket, sys
import course_utils.offline as first
first.block_network()
error = first.NetworkBlockedError
del sys.modules["course_utils.offline"]
import course_utils.offline as second
second.block_network()
try:
    socket.create_connection(("93.184.216.34", 80), timeout=1)
    raise SystemExit("connected although the network is blocked")
except error:
    pass
second.unblock_network()
assert getattr(socket.socket.connect, "_course_original", None) is None, "a guard is still installed"
print("ok")
"""


def test_guard_is_idempotent_across_reimports():
    run = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stdout + run.stderr

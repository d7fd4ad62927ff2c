"""A lease on a run directory, so that two live processes never train the same run.

``filelock.SoftFileLease`` does the work: a marker file (``RUN_DIR/.lease``: host, pid,
token) refreshed by a heartbeat thread. A holder that died on this host is taken over at
once; a holder on another host (a shared file system, a cluster) is taken over once its
claim has stayed unrefreshed for ``LEASE_S`` seconds. A live holder is one clear error.
"""
from __future__ import annotations

import contextlib
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

from fasbench.errors import FasbenchError

LEASE = ".lease"
#: seconds an unrefreshed claim must be seen before another host takes it over (heartbeat: a third)
LEASE_S = 90.0


@contextlib.contextmanager
def run_lease(run_dir: Path, what: str = "this run") -> Iterator[None]:
    import filelock

    run_dir.mkdir(parents=True, exist_ok=True)
    lease = filelock.SoftFileLease(str(run_dir / LEASE), lease_duration=LEASE_S, timeout=0)
    try:
        lease.acquire()
    except filelock.Timeout:
        owner = lease.owner
        host = getattr(owner, "hostname", None) or "?"
        pid = getattr(owner, "pid", None)
        if host == socket.gethostname():  # alive: a dead holder of this host is taken over at once
            raise FasbenchError(
                f"{run_dir} is being trained by another process (pid {pid} on this machine); wait for it to finish, "
                f"or give {what} another --out"
            ) from None
        print(f"fasbench: {run_dir} is leased by {host} pid {pid}; waiting up to {1.5 * LEASE_S:.0f} s for its lease "
              "to expire (a live holder keeps it)", file=sys.stderr)
        try:
            lease.acquire(timeout=1.5 * LEASE_S)
        except filelock.Timeout:
            raise FasbenchError(
                f"{run_dir} is being trained by {host} pid {pid} (its lease is alive); wait for it to finish, "
                f"or give {what} another --out"
            ) from None
    try:
        yield
    finally:
        lease.release()

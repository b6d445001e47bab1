"""Running multi-rank (DDP) commands in tests on a port no other process can take meanwhile."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess


@contextlib.contextmanager
def reserved_port():
    """A localhost port for a DDP run's MASTER_PORT, held for the block: bound with SO_REUSEADDR
    and kept open (not listening). Rank 0's TCPStore sets SO_REUSEADDR too, so it can listen on
    the port; any other process asking the kernel for a free port (binding port 0, as Lightning's
    own MASTER_PORT probe does) is never given it. Probing and releasing a port instead leaves a
    window in which another process can take it before rank 0 binds it."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def run_ddp(command: list[str], env: dict | None = None, attempts: int = 3, **kwargs) -> subprocess.CompletedProcess:
    """subprocess.run (text, captured) of a multi-rank command on a reserved MASTER_PORT. Retried on
    a fresh port if rank 0 still found its port in use: a process that probed a free port without
    holding it can bind it after we reserved it (rare; nothing here can prevent it)."""
    for attempt in range(attempts):
        with reserved_port() as port:
            run_env = {**(os.environ if env is None else env), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
            out = subprocess.run(command, capture_output=True, text=True, env=run_env, **kwargs)
        if out.returncode == 0 or "EADDRINUSE" not in out.stderr or attempt == attempts - 1:
            return out
    raise AssertionError("unreachable")

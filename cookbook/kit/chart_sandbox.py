"""Run untrusted matplotlib code, one forked child per snippet, and save what each draws (06's chart-to-code).

    python -I chart_sandbox.py OUT < {"codes": [...], "timeout_s": 20, "dpi": 100}

The parent imports matplotlib once (Agg, no display); each child gets a fresh working directory ``OUT/<i>``,
a new session (its whole process group is killed at the deadline), limits on CPU time, memory and file size,
no network (a network namespace of its own where the kernel allows one, and Python's sockets refused in
any case), then runs the snippet as ``__main__`` and saves its last figure as ``chart.png`` with what it
plotted (``artists.json``). The parent prints one JSON line: the status of each snippet. A guard against
mistakes and casual misuse, not a jail: run code from strangers at scale in a container without a network.
Standard library and matplotlib only (the script runs with ``-I``: no site-packages of the user, no cwd).
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any


def _no_network() -> bool:
    """Cut this process off the network: a new user+network namespace if the kernel allows, and Python's
    sockets refused either way. True when the namespace was made (06)."""
    import ctypes
    import socket

    isolated = False
    try:
        isolated = ctypes.CDLL(None, use_errno=True).unshare(0x10000000 | 0x40000000) == 0  # NEWUSER | NEWNET
    except (OSError, AttributeError):
        pass

    class Refused(socket.socket):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise OSError("the chart sandbox has no network")

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OSError("the chart sandbox has no network")

    socket.socket = Refused  # type: ignore[misc]
    socket.create_connection = refuse  # type: ignore[assignment]
    sys.modules["_socket"].socket = Refused  # type: ignore[attr-defined]
    return isolated


def _limits(timeout_s: float) -> None:
    """CPU seconds, address space (2 GiB above what the parent already maps) and file size (06)."""
    resource.setrlimit(resource.RLIMIT_CPU, (int(timeout_s) + 1, int(timeout_s) + 2))
    resource.setrlimit(resource.RLIMIT_FSIZE, (50 * 2**20, 50 * 2**20))
    try:
        mapped = int(next(line.split()[1] for line in Path("/proc/self/status").read_text().splitlines()
                          if line.startswith("VmSize:"))) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (mapped + 2 * 2**30, mapped + 2 * 2**30))
    except (OSError, StopIteration, ValueError):
        pass


def artists(fig: Any) -> dict[str, Any]:
    """What a drawn figure shows: the kinds of plot, every text, and the plotted y values (bar heights, line
    and marker y), in drawing order (06)."""
    from matplotlib.collections import PathCollection
    from matplotlib.container import BarContainer

    kinds: list[str] = []
    texts: list[str] = [fig._suptitle.get_text()] if getattr(fig, "_suptitle", None) else []
    values: list[float] = []
    for ax in fig.axes:
        for bars in (c for c in ax.containers if isinstance(c, BarContainer)):
            kinds.append("bar")
            values += [float(p.get_height()) for p in bars.patches]
        for line in ax.lines:
            y = [float(v) for v in line.get_ydata()]
            if len(y) > 2 or len(set(y)) > 1:  # not a flat reference line (axhline)
                kinds.append("line")
                values += y
        for coll in ax.collections:
            if isinstance(coll, PathCollection) and len(coll.get_offsets()):
                kinds.append("scatter")
                values += [float(v) for v in coll.get_offsets()[:, 1]]
        texts += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
        texts += [t.get_text() for t in ax.get_xticklabels() + ax.get_yticklabels()]
        texts += [t.get_text() for t in ax.texts]
        legend = ax.get_legend()
        if legend is not None:
            texts += [t.get_text() for t in legend.get_texts()]
    return {"kinds": kinds, "texts": [t.strip() for t in texts if t and t.strip()],
            "values": [v for v in values if v == v]}


def _child(code: str, folder: Path, timeout_s: float, dpi: int) -> int:
    os.setsid()
    os.chdir(folder)
    for fd, name in ((1, "stdout.txt"), (2, "stderr.txt")):
        os.dup2(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), fd)
    isolated = _no_network()
    _limits(timeout_s)
    import matplotlib.pyplot as plt

    try:
        exec(compile(code, "answer.py", "exec"), {"__name__": "__main__"})
        if not plt.get_fignums():
            print("the code drew no figure", file=sys.stderr)
            return 3
        fig = plt.figure(plt.get_fignums()[-1])
        fig.savefig(folder / "chart.png", dpi=dpi)
        (folder / "artists.json").write_text(json.dumps({**artists(fig), "isolated": isolated}))
        return 0
    except BaseException:  # noqa: BLE001 (the model's code may raise anything, SystemExit included)
        traceback.print_exc(limit=3)
        return 1


def main(out: Path, codes: list[str], timeout_s: float, dpi: int) -> list[dict[str, Any]]:
    """Run each snippet in its own child, at most ``timeout_s`` seconds each; their statuses (06)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401 (imported once here, shared by every child)

    results = []
    for i, code in enumerate(codes):
        folder = out / str(i)
        folder.mkdir(parents=True, exist_ok=True)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                status = _child(code, folder, timeout_s, dpi)
            finally:
                os._exit(status)
        deadline, status = time.monotonic() + timeout_s, None
        while status is None:
            done, code_status = os.waitpid(pid, os.WNOHANG)
            if done:
                status = os.waitstatus_to_exitcode(code_status)
            elif time.monotonic() > deadline:
                os.killpg(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                status = "timeout"
            else:
                time.sleep(0.01)
        err = (folder / "stderr.txt").read_text(errors="replace")[-600:] if (folder / "stderr.txt").exists() else ""
        kind = {0: "ok", 3: "no figure", "timeout": "timeout"}.get(status, "error")
        results.append({"status": kind, "exit": status, "error": err if kind != "ok" else ""})
    return results


if __name__ == "__main__":
    job = json.loads(sys.stdin.read())
    print(json.dumps(main(Path(sys.argv[1]), job["codes"], float(job["timeout_s"]), int(job["dpi"]))))

"""Local OpenAI-compatible servers that always stop (04_vllm_serving), and ``make serve``.

``start`` runs ``transformers serve`` or the ``vllm serve`` command of a ``cb.serving`` plan on loopback, waits
for ``/health`` and returns a ``Server``; servers still running stop at exit (atexit) and, on Linux, when the
Python process that started them dies. ``python -m cookbook.runtime.server`` is what ``make serve`` runs.
"""

from __future__ import annotations

import atexit
import ipaddress
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cookbook.kit.hardware import Hardware
from cookbook.kit.show import Pretty
from cookbook.serving import VllmPlan, choose_backend, plan_for

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def transformers_command(model: str, host: str = "127.0.0.1", port: int = 8000,
                         extra: tuple[str, ...] = ()) -> list[str]:
    """``transformers serve`` argv that preloads ``model`` (a hub id or a local folder)."""
    exe = Path(sys.executable).with_name("transformers")
    head = [str(exe)] if exe.exists() else ["transformers"]
    return [*head, "serve", "--host", host, "--port", str(port), *extra, str(model)]


def _launch_spec(kind: str, model: str, host: str, port: int, plan: VllmPlan | None,
                 extra: tuple[str, ...] = (), vllm_env: str | None = None) -> tuple[list[str], dict[str, str], str]:
    """argv, environment and the model name clients send, for ``start`` and ``make serve``."""
    from cookbook.kit.environment import hf_cache_dir

    env = dict(os.environ, HF_HUB_DISABLE_UPDATE_CHECK="1")
    if Path(model).is_dir():
        env["HF_HUB_OFFLINE"] = "1"  # a local folder: never ask the hub
    if kind == "transformers":
        # transformers serve scans the hub cache for /v1/models and fails with CacheNotFound when
        # the folder does not exist yet (fresh machines, CI).
        hf_cache_dir().mkdir(parents=True, exist_ok=True)
        return transformers_command(model, host, port, extra), env, model
    if plan.value("--hf-overrides"):
        env["VLLM_ALLOW_LONG_MAX_MODEL_LEN"] = "1"  # YaRN: a context beyond the config's 256K
    env.update(dict(plan.env))
    argv = plan.command(host, port) + list(extra)
    argv[0] = vllm_executable(vllm_env)
    return argv, env, plan.value("--served-model-name") or plan.model


def vllm_executable(vllm_env: str | None = None) -> str:
    """The ``vllm`` command of ``vllm_env`` (``hardware().vllm_env``), else ``vllm`` on the PATH."""
    exe = Path(vllm_env or sys.prefix) / "bin" / "vllm"
    return str(exe) if exe.exists() else "vllm"


def _check_loopback(host: str) -> None:
    try:
        loopback = host in LOOPBACK or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"host={host!r}: cb.runtime.server starts servers on loopback only (127.0.0.1). To serve a "
                         "room, run the printed command yourself with --host 0.0.0.0 behind your network's firewall.")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_free(host: str, port: int) -> bool:
    """True when a bind as servers do it (``SO_REUSEADDR``: TIME_WAIT does not count) succeeds."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def _die_with_parent() -> None:
    """Linux: SIGTERM the server when the Python process that started it dies, even by SIGKILL
    (a crashed notebook kernel), where atexit handlers never run."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class ServerError(RuntimeError):
    """A server did not start or died; the message ends with the tail of its log."""


_LIVE: dict[int, Server] = {}


def _stop_all() -> None:
    for server in list(_LIVE.values()):
        server.stop()


atexit.register(_stop_all)  # servers this process started stop when it exits


@dataclass
class Server(Pretty):
    """A running OpenAI-compatible server on loopback. Use it as a context manager, or call stop()."""

    kind: str
    model: str
    host: str
    port: int
    process: subprocess.Popen
    log_path: Path
    argv: list[str]
    started_s: float = 0.0
    _log_file: Any = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What an OpenAI client needs: ``http://127.0.0.1:PORT/v1``."""
        return self.url + "/v1"

    @property
    def running(self) -> bool:
        """True while the server process has not exited."""
        return self.process.poll() is None

    def logs(self, tail: int = 40) -> str:
        """The last ``tail`` lines of the server's log."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-tail:])

    def stop(self, timeout: float = 10.0) -> int | None:
        """Terminate the server's whole process group (SIGTERM, then SIGKILL). Safe to call twice."""
        _LIVE.pop(id(self), None)
        if self.process.poll() is None:
            for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(self.process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.process.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self._log_file is not None and not self._log_file.closed:
            self._log_file.close()
        return self.process.poll()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __str__(self) -> str:
        state = "running" if self.running else f"stopped (exit {self.process.poll()})"
        return (f"{self.kind} serve on {self.base_url}  [{state}]\n  model: {self.model}\n"
                f"  log: {self.log_path}\n  command: {shlex.join(self.argv)}")


def wait_healthy(server: Server, timeout: float = 180.0, interval: float = 0.5,
                 progress: float | None = None) -> float:
    """Poll ``/health`` until it answers 200; raise ``ServerError`` with the log tail if the process
    dies or ``timeout`` seconds pass. Every ``progress`` seconds, print how long it has waited. Returns
    the seconds waited."""
    t0 = said = time.monotonic()
    while True:
        if progress and time.monotonic() - said >= progress:
            said = time.monotonic()
            print(f"  waiting for {server.kind} serve on {server.url}: {said - t0:.0f} s | "
                  f"{server.logs(1).strip()[-100:]}", flush=True)
        if not server.running:
            raise ServerError(f"{server.kind} serve exited with code {server.process.returncode} before it was "
                              f"healthy.\n--- last lines of {server.log_path} ---\n{server.logs()}")
        try:
            with urllib.request.urlopen(server.url + "/health", timeout=2.0) as r:
                if r.status == 200:
                    return time.monotonic() - t0
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):  # HTTPError included
            pass
        if time.monotonic() - t0 > timeout:
            server.stop()
            raise ServerError(f"{server.kind} serve was not healthy after {timeout:.0f} s (stopped it).\n"
                              f"--- last lines of {server.log_path} ---\n{server.logs()}")
        time.sleep(interval)


def start(model: str | os.PathLike, *, kind: str = "transformers", hw: Hardware | None = None,
          host: str = "127.0.0.1", port: int | None = None, timeout: float | None = None,
          log_dir: str | os.PathLike | None = None, threads: int | None = None, extra: tuple[str, ...] = (),
          plan: VllmPlan | None = None, progress: float | None = 30.0) -> Server:
    """Start ``transformers serve`` (or ``vllm serve``: ``kind="vllm"``/``"auto"``) for ``model`` on loopback,
    wait until ``/health`` answers, and return a ``Server`` (04); ``with start(path) as server:`` stops it
    even when the body raises. Call it from the main thread (on Linux the server dies with that thread)."""
    from cookbook.kit.hardware import hardware

    _check_loopback(host)
    model = str(model)
    hw = hw or hardware()
    if kind == "auto":
        kind, _ = choose_backend(hw, model)
    if kind not in ("transformers", "vllm"):
        raise ValueError(f"kind={kind!r}: use 'transformers', 'vllm' or 'auto'.")
    port = port or free_port(host)
    if not port_free(host, port):  # else /health would be answered by that server, and "healthy" a lie
        raise ServerError(f"port={port}: something already listens on {host}:{port}; pass another port, "
                          "or none for a free one.")
    if kind == "vllm" and plan is None:
        plan = plan_for(hw, model)
    if timeout is None:  # vLLM imports torch, vLLM and transformers in each process: minutes on a small CPU
        timeout = 900.0 if kind == "vllm" else 180.0
    argv, env, served = _launch_spec(kind, model, host, port, plan, extra, hw.vllm_env)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    logs = Path(log_dir) if log_dir else Path(tempfile.gettempdir()) / "cookbook-servers"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{kind}-{port}.log"
    log_file = open(log_path, "w")  # noqa: SIM115 - closed by Server.stop
    print("$", shlex.join(argv), file=log_file, flush=True)
    process = subprocess.Popen(
        argv, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env=env, start_new_session=True,  # its own process group: stop() kills workers too
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
    )
    server = Server(kind, served, host, port, process, log_path, argv, _log_file=log_file)
    _LIVE[id(server)] = server
    try:
        server.started_s = wait_healthy(server, timeout=timeout, progress=progress)
    except BaseException:
        server.stop()
        raise
    return server


def running_servers() -> list[Server]:
    """Servers this Python process started and has not stopped yet."""
    return list(_LIVE.values())


def local_model(name: str | None = None) -> str:
    """What a server loads for this run's model: the tiny checkpoint's folder in a smoke run, else the id (04)."""
    from cookbook.runtime.loading import fetch
    from cookbook.runtime.settings import settings, tiny_flavour

    name = name or settings().model
    return str(fetch(name)) if tiny_flavour(name) else name


def main(argv: list[str] | None = None) -> int:
    """``python -m cookbook.runtime.server`` (``make serve``): vLLM when installed with a CUDA GPU, else transformers serve."""
    import argparse

    from cookbook.kit.hardware import hardware

    p = argparse.ArgumentParser(prog="python -m cookbook.runtime.server", description=main.__doc__)
    p.add_argument("--model", default=None, help="hub id or folder (default: COOKBOOK_MODEL's pick)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--backend", choices=("auto", "vllm", "transformers"), default="auto")
    p.add_argument("--served-model-name", default=None)
    p.add_argument("--dry-run", action="store_true", help="print the command and exit")
    args = p.parse_args(argv)

    hw = hardware()
    model = local_model(args.model)
    backend, reason = choose_backend(hw, model) if args.backend == "auto" else (args.backend, "chosen with --backend")
    plan = plan_for(hw, model, args.served_model_name) if backend == "vllm" else None
    if plan is not None:
        print(plan.explain())
    cmd, env, served = _launch_spec(backend, model, args.host, args.port, plan, vllm_env=hw.vllm_env)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"backend: {backend} ({reason})\n$ {shlex.join(cmd)}")
    print("\nClients (notebooks, learners) set:\n"
          f"  export COOKBOOK_BASE_URL=http://{host}:{args.port}/v1\n"
          f"  export COOKBOOK_SERVED_MODEL={shlex.quote(served)}\n"
          "  export COOKBOOK_API_KEY=EMPTY", flush=True)
    if args.dry_run:
        return 0
    # Started as a child, not exec'd: start-up shows progress, and Ctrl-C or SIGTERM stops the server's
    # whole process group (vLLM's engine and workers included) before this exits.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    server = None
    try:
        server = start(model, kind=backend, hw=hw, host=args.host, port=args.port, plan=plan, progress=15.0)
        print(f"{backend} serve is healthy after {server.started_s:.0f} s on {server.base_url}. Ctrl-C stops it.\n"
              f"log: {server.log_path}", flush=True)
        server.process.wait()
        print(f"{backend} serve exited with code {server.process.returncode}; last lines:\n{server.logs(20)}")
        return server.process.returncode or 1
    except KeyboardInterrupt:
        print(f"\nstopping {backend} serve ...", flush=True)
        return 0
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())

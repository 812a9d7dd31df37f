"""Run the real ``snapcloud`` CLI in a child process that SIGKILLs itself at a chosen point.

Two ways in::

    python -m tests.reliability.killpoints [--kill SPEC] [--log FILE] [--witness DIR]
        [--lease-skew S] [--config JSON] -- import --host h --store file:///... a.csv
    python -m tests.reliability.killpoints --serve

The first runs one command in a fresh interpreter. The second is a fork server
for the kill-point tests: it imports snapcloud once, then reads one JSON request
per line on stdin, forks a child per request that runs ``snapcloud.cli.main``
with the request's hooks, waits for it (SIGKILLing it after ``kill_after_s``
when asked) and answers one JSON line. A forked child is a real process: it
dies by SIGKILL with whatever it had written on disk or sent to the store, and
the next command is another process. Forking saves the ~1.3 s interpreter and
import start-up per command that would otherwise cap the number of kill points.

Kill specs (``SPEC``), checked in the child itself, so the point is exact:

- ``mut:N:before`` -- SIGKILL just before the N-th mutating request (put or
  delete) reaches the store;
- ``mut:N:after`` -- after the store applied the N-th mutating request, before
  its caller sees the reply (the reply is lost with the process);
- ``spool:N:write`` -- halfway through writing the N-th recorder spool file;
- ``spool:N:rename`` -- the N-th spool file written and fsynced, not yet renamed
  into place (never acknowledged);
- ``spool:N:dirsync`` -- renamed into place, directory not yet fsynced, ``put``
  not returned (not acknowledged, but it is in the spool).

``--log FILE`` appends ``put KEY`` / ``delete KEY`` for every mutating request
(written before the request is sent) and ``KILL SPEC`` just before the child
kills itself, so the parent counts the mutations of a clean run and confirms
that a kill point was reached. ``--witness DIR`` copies every spool file the
recorder's ``Spool.put`` acknowledged into DIR (atomically, before ``put``
returns): the parent's record of what was acknowledged. ``--lease-skew S`` runs
``snapcloud compact`` with its lease clock S seconds ahead: a later run, after a
killed compactor's lease expired. ``--config JSON`` replaces the
``SnapshotConfig`` the CLI opens stores with (scaled-down retention ages).
"""

from __future__ import annotations

import argparse
import builtins
import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
MUTATIONS = ("put", "delete")
SPOOL_PHASES = ("write", "rename", "dirsync")


# ---------------------------------------------------------------------------- child side


@dataclass(frozen=True)
class KillSpec:
    """Where the child kills itself: ``kind`` mut|spool, the ``n``-th event, ``phase``."""

    kind: str
    n: int
    phase: str

    @classmethod
    def parse(cls, text: str) -> KillSpec:
        kind, n, phase = text.split(":")
        ok = (kind == "mut" and phase in ("before", "after")) or (
            kind == "spool" and phase in SPOOL_PHASES
        )
        if not ok or not n.isdigit() or int(n) < 1:
            raise ValueError(f"bad kill spec {text!r}")
        return cls(kind, int(n), phase)

    def __str__(self) -> str:
        return f"{self.kind}:{self.n}:{self.phase}"


class _Log:
    """Line log shared by the hooks; written with ``os.write`` so a kill loses nothing."""

    def __init__(self, path: str | None) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if path else None

    def line(self, text: str) -> None:
        if self.fd is not None:
            os.write(self.fd, (text.replace("\n", " ") + "\n").encode())


class _Killer:
    """Counts events by kind and kills this process at the spec's event."""

    def __init__(self, spec: KillSpec | None, log: _Log) -> None:
        self.spec = spec
        self.log = log
        self.counts = {"mut": 0, "spool": 0}
        self.lock = threading.Lock()

    def event(self, kind: str, what: str) -> int:
        with self.lock:
            self.counts[kind] += 1
            n = self.counts[kind]
            self.log.line(what)
            return n

    def point(self, kind: str, n: int, phase: str, what: str) -> None:
        spec = self.spec
        if spec is not None and (spec.kind, spec.n, spec.phase) == (kind, n, phase):
            self.log.line(f"KILL {spec} at {what}")
            os.kill(os.getpid(), signal.SIGKILL)


class KillingStore:
    """Wraps an ``ObjectStore``; counts its mutating requests and dies where told."""

    def __init__(self, inner: Any, killer: _Killer) -> None:
        self.inner = inner
        self.description = inner.description
        self._killer = killer

    def __repr__(self) -> str:
        return f"KillingStore({self.inner!r})"

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _mutate(self, op: str, key: str, call: Any) -> Any:
        what = f"{op} {key}"
        n = self._killer.event("mut", what)
        self._killer.point("mut", n, "before", what)
        result = call()
        self._killer.point("mut", n, "after", what)
        return result

    def put(
        self, key: str, data: bytes, *, if_absent: bool = False, if_match: str | None = None
    ) -> str:
        return self._mutate(  # type: ignore[no-any-return]
            "put", key, lambda: self.inner.put(key, data, if_absent=if_absent, if_match=if_match)
        )

    def delete(self, key: str) -> None:
        self._mutate("delete", key, lambda: self.inner.delete(key))


class _SpoolOs:
    """Stands in for ``os`` inside ``snapcloud.recorder._spool``: kill points around the rename."""

    def __init__(self, killer: _Killer) -> None:
        self._killer = killer
        self._pending: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def replace(self, src: Any, dst: Any) -> None:
        name = Path(src).name
        n = self._pending.pop(name, None)
        if n is not None:
            self._killer.point("spool", n, "rename", f"spool rename {Path(dst).name}")
        os.replace(src, dst)
        if n is not None:
            self._killer.point("spool", n, "dirsync", f"spool dirsync {Path(dst).name}")


class _TornFile:
    """A spool temp file whose ``write`` dies halfway at the spec's spool file."""

    def __init__(self, fh: IO[bytes], n: int, killer: _Killer) -> None:
        self._fh = fh
        self._n = n
        self._killer = killer

    def __enter__(self) -> _TornFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)

    def write(self, data: bytes) -> int:
        spec = self._killer.spec
        if spec is not None and (spec.kind, spec.n, spec.phase) == ("spool", self._n, "write"):
            self._fh.write(data[: len(data) // 2])
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._killer.point("spool", self._n, "write", f"spool write {len(data) // 2} bytes")
        return self._fh.write(data)


def _install_spool_hooks(killer: _Killer, witness: str | None) -> None:
    from snapcloud.recorder import _spool

    spool_os = _SpoolOs(killer)

    def spool_open(file: Any, mode: str = "r", *args: Any, **kw: Any) -> Any:
        fh = builtins.open(file, mode, *args, **kw)  # noqa: SIM115 (the spool closes it)
        if mode == "wb" and Path(file).name.startswith(_spool._TMP_PREFIX):
            n = killer.event("spool", f"spool {Path(file).name}")
            spool_os._pending[Path(file).name] = n
            return _TornFile(fh, n, killer)
        return fh

    setattr(_spool, "os", spool_os)  # noqa: B010 (a test hook replacing a module global)
    setattr(_spool, "open", spool_open)  # noqa: B010
    if witness is None:
        return
    original = _spool.Spool.put
    wdir = Path(witness)
    wdir.mkdir(parents=True, exist_ok=True)

    def put(self: Any, snapshot: Any) -> Path:
        path: Path = original(self, snapshot)
        tmp = wdir / f".tmp-{uuid.uuid4().hex}"
        shutil.copyfile(path, tmp)
        os.replace(tmp, wdir / path.name)
        return path

    setattr(_spool.Spool, "put", put)  # noqa: B010


def install(
    *,
    kill: str | None = None,
    log: str | None = None,
    witness: str | None = None,
    lease_skew: float | None = None,
    config: dict[str, Any] | None = None,
) -> None:
    """Patch this process's snapcloud so the CLI runs with the kill hooks (child side)."""
    import snapcloud.cli._app as cli_app
    import snapcloud.cli._retention as cli_retention
    from snapcloud.models import SnapshotConfig
    from snapcloud.store import _repo

    killer = _Killer(KillSpec.parse(kill) if kill else None, _Log(log))
    opener = getattr(_repo, "open_store")  # noqa: B009

    def open_store(*args: Any, **kw: Any) -> Any:
        return KillingStore(opener(*args, **kw), killer)

    setattr(_repo, "open_store", open_store)  # noqa: B010
    _install_spool_hooks(killer, witness)
    if config is not None:
        fixed = SnapshotConfig(**config)
        setattr(cli_app, "SnapshotConfig", lambda: fixed)  # noqa: B010
    if lease_skew is not None:
        base = getattr(cli_retention, "Compactor")  # noqa: B009

        def skewed(*args: Any, **kw: Any) -> Any:
            return base(*args, clock=lambda: time.time() + lease_skew, **kw)

        setattr(cli_retention, "Compactor", skewed)  # noqa: B010


def run_cli(argv: Sequence[str], **hooks: Any) -> int:
    """Install the hooks, run ``snapcloud argv``, return its exit status (child side)."""
    install(**hooks)
    from snapcloud.cli import main

    try:
        return main(list(argv))
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()


# ---------------------------------------------------------------------------- fork server


def _serve_one(req: dict[str, Any]) -> dict[str, Any]:
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: becomes the command, exits with its status or dies by SIGKILL
        rc = 70
        try:
            os.chdir(req.get("cwd") or ROOT)
            devnull = os.open(os.devnull, os.O_RDONLY)  # stdin carries the server's requests
            os.dup2(devnull, 0)
            os.close(devnull)
            for fd, path in ((1, req["stdout"]), (2, req["stderr"])):
                target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(target, fd)
                os.close(target)
            for name, value in (req.get("env") or {}).items():
                os.environ[name] = value
            rc = run_cli(req["argv"], **req.get("hooks", {}))
        except BaseException:  # a bug in the harness: report it, never return to the loop
            import traceback

            traceback.print_exc()
        finally:
            os._exit(rc)
    killed_by_parent = False
    after = req.get("kill_after_s")
    if after is not None and not _exited_within(pid, float(after)):
        os.kill(pid, signal.SIGKILL)
        killed_by_parent = True
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return {
        "pid": pid,
        "returncode": code,
        "killed_by_parent": killed_by_parent,
        "seconds": time.monotonic() - started,
    }


def _exited_within(pid: int, seconds: float) -> bool:
    """Whether child ``pid`` ends within ``seconds`` (it is not reaped here)."""
    if hasattr(os, "pidfd_open"):
        fd = os.pidfd_open(pid)
        try:
            ready, _, _ = select.select([fd], [], [], seconds)
        finally:
            os.close(fd)
        return bool(ready)
    time.sleep(seconds)  # no pidfd (old kernel or not Linux): the kill time is all that matters
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def serve() -> None:
    """Answer one JSON request per stdin line with one JSON line (until stdin closes)."""
    import boto3  # noqa: F401  (imported once here, not in every child)
    import botocore.session  # noqa: F401

    import snapcloud.cli  # noqa: F401
    from snapcloud.collectors import CpuCollector  # noqa: F401

    out = sys.stdout
    out.write(json.dumps({"ready": os.getpid()}) + "\n")
    out.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            reply = _serve_one(json.loads(line))
        except Exception as exc:  # answer, so the caller never hangs
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()


# ---------------------------------------------------------------------------- parent side


@dataclass
class Outcome:
    """How one child ended: ``returncode`` (negative: killed by that signal) and its output."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    log: list[str] = field(default_factory=list)
    killed_by_parent: bool = False
    seconds: float = 0.0

    @property
    def killed(self) -> bool:
        return self.returncode == -signal.SIGKILL

    @property
    def self_killed(self) -> bool:
        """Killed at its own kill point (the log says which)."""
        return self.killed and any(line.startswith("KILL ") for line in self.log)

    @property
    def mutations(self) -> list[str]:
        """The mutating requests the child sent (or was about to send when killed before it)."""
        return [line for line in self.log if line.split(" ", 1)[0] in MUTATIONS]

    @property
    def spool_writes(self) -> list[str]:
        """The spool files the child started to write."""
        return [line for line in self.log if line.startswith("spool ")]

    def describe(self) -> str:
        tail = "\n".join(self.stderr.splitlines()[-15:])
        return f"snapcloud {' '.join(self.argv)} -> {self.returncode}\n{tail}"


def child_env() -> dict[str, str]:
    """The environment of a child: this one without ``SNAPCLOUD_*``, with the repo importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPCLOUD_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["OPENBLAS_NUM_THREADS"] = "1"
    return env


class ForkServer:
    """A ``killpoints --serve`` process, driven by one thread at a time."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.killpoints", "--serve"],
            cwd=ROOT,
            env=child_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        if not first.startswith('{"ready"'):
            raise RuntimeError(f"fork server did not start: {first!r}")
        self._n = 0

    def run(
        self,
        argv: Sequence[str],
        *,
        kill: str | None = None,
        kill_after_s: float | None = None,
        witness: Path | None = None,
        lease_skew: float | None = None,
        config: dict[str, Any] | None = None,
        cwd: Path | None = None,
    ) -> Outcome:
        """Run ``snapcloud argv`` in a forked child with the given hooks; wait for its end."""
        self._n += 1
        base = self.workdir / f"c{self._n}"
        log = base.with_suffix(".log")
        hooks: dict[str, Any] = {"kill": kill, "log": str(log), "lease_skew": lease_skew}
        if witness is not None:
            hooks["witness"] = str(witness)
        if config is not None:
            hooks["config"] = config
        req = {
            "argv": list(argv),
            "hooks": hooks,
            "stdout": str(base.with_suffix(".out")),
            "stderr": str(base.with_suffix(".err")),
            "cwd": str(cwd) if cwd else None,
            "kill_after_s": kill_after_s,
        }
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"fork server died (exit {self.proc.poll()})")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"fork server: {reply['error']}")
        outcome = Outcome(
            argv=list(argv),
            returncode=reply["returncode"],
            stdout=_read(base.with_suffix(".out")),
            stderr=_read(base.with_suffix(".err")),
            log=_read(log).splitlines(),
            killed_by_parent=reply["killed_by_parent"],
            seconds=reply["seconds"],
        )
        for suffix in (".out", ".err", ".log"):
            base.with_suffix(suffix).unlink(missing_ok=True)
        return outcome

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


@contextlib.contextmanager
def fork_servers(workdir: Path, count: int) -> Iterator[list[ForkServer]]:
    """``count`` fork servers, closed on exit."""
    servers: list[ForkServer] = []
    try:
        for i in range(count):
            servers.append(ForkServer(workdir / f"server-{i}"))
        yield servers
    finally:
        for s in servers:
            s.close()


# ---------------------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--serve"]:
        serve()
        return 0
    if "--" not in args:
        print(__doc__, file=sys.stderr)
        return 2
    cut = args.index("--")
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.killpoints")
    parser.add_argument("--kill")
    parser.add_argument("--log")
    parser.add_argument("--witness")
    parser.add_argument("--lease-skew", type=float)
    parser.add_argument("--config", type=json.loads)
    opts = parser.parse_args(args[:cut])
    return run_cli(
        args[cut + 1 :],
        kill=opts.kill,
        log=opts.log,
        witness=opts.witness,
        lease_skew=opts.lease_skew,
        config=opts.config,
    )


if __name__ == "__main__":
    sys.exit(main())

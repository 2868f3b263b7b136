"""A real Neo4j without Docker: build the embedded server of ``neo4j_server/`` once, run it in the
background under a home directory, wait until Bolt answers, and stop it cleanly.

With a browser port the same JVM also serves the official Neo4j Browser on 127.0.0.1 (it reaches
the database over Bolt, which accepts WebSocket on the Bolt port).

Home layout: ``HOME/neo4j.pid`` (pid, port, browser port and memory settings of the running JVM),
``HOME/neo4j.log`` (its stdout and stderr), ``HOME/import.log`` (the last offline import's output),
``HOME/db/`` (Neo4j's own data and logs, kept across restarts; a database's store is
``db/data/databases/<name>`` and its transaction logs ``db/data/transactions/<name>``). While the
server keeps its databases shut (:func:`offline`: the JVM stays up, so reopening them is not a cold
start), the offline importer (:func:`run_import`) runs in that JVM and builds a database in a
staging home inside ``HOME``, and :func:`install_database` swaps it in.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cinegraph.errors import CinegraphError

log = logging.getLogger(__name__)

SERVER_DIR = Path(__file__).resolve().parent / "neo4j_server"
MAIN_CLASS = "cinegraph.EmbeddedNeo4j"
PID_FILE, LOG_FILE, DB_DIR = "neo4j.pid", "neo4j.log", "db"
IMPORT_LOG = "import.log"  # output of the last offline import
HOST = "127.0.0.1"
READY_MARKER = b"READY bolt://"  # printed by EmbeddedNeo4j.java when it accepts clients
OFFLINE_MARKER = b"OFFLINE"  # printed once its databases are shut down for an offline request
OFFLINE_REQUEST = "offline.request"  # in HOME/db: while it exists the server keeps its databases shut
ADMIN_REQUEST, ADMIN_DONE = "admin.request", "admin.done"  # in HOME/db: a neo4j-admin command run while offline
DEFAULT_PORT = 7687
DEFAULT_BROWSER_PORT = 7474  # Neo4j's own HTTP port; 0 serves no Browser
DEFAULT_HEAP_MB = 1024
DEFAULT_PAGECACHE_MB = 512
MIN_PASSWORD_LENGTH = 8  # Neo4j 5's dbms.security.auth_minimum_password_length
_BOLT_MAGIC = b"\x60\x60\xb0\x17"
# Four version proposals, each 00 <range> <minor> <major>: 5.8 down to 5.0, 4.4 down to 4.2, none, none.
_BOLT_VERSIONS = struct.pack(">4I", 0x00080805, 0x00020404, 0, 0)


@dataclass(frozen=True)
class ServerStatus:
    home: Path
    running: bool
    pid: int | None = None
    port: int | None = None
    heap_mb: int = DEFAULT_HEAP_MB
    pagecache_mb: int = DEFAULT_PAGECACHE_MB
    browser_port: int | None = None

    @property
    def uri(self) -> str | None:
        return f"bolt://{HOST}:{self.port}" if self.port is not None else None

    @property
    def browser_url(self) -> str | None:
        return f"http://{HOST}:{self.browser_port}/browser/" if self.browser_port else None

    def describe(self) -> str:
        if not self.running:
            return f"neo4j: not running (home {self.home})"
        browser = f", Neo4j Browser {self.browser_url}" if self.browser_url else ""
        return f"neo4j: running, pid {self.pid}, {self.uri}{browser} (home {self.home})"


def build(server_dir: Path = SERVER_DIR, *, force: bool = False) -> str:
    """Compile the server and copy its dependencies with Maven, unless the output is newer than
    pom.xml and every Java source; returns the ``java -cp`` classpath."""
    target = server_dir / "target"
    stamp = target / ".build-stamp"
    sources = [server_dir / "pom.xml", *sorted((server_dir / "src").rglob("*.java"))]
    classpath = os.pathsep.join([str(target / "classes"), str(target / "lib" / "*")])
    if not force and stamp.exists():
        newest = max(p.stat().st_mtime for p in sources)
        if stamp.stat().st_mtime >= newest:
            return classpath
    mvn = shutil.which("mvn")
    if mvn is None:
        raise CinegraphError("mvn not found on PATH: Maven 3.8+ and Java 17 are needed to build Neo4j")
    log.info("building the embedded Neo4j server with Maven (the first build downloads ~130 MB)")
    proc = subprocess.run(
        [mvn, "-q", "-B", "-f", str(server_dir / "pom.xml"), "package", "-DskipTests"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-5:]
        raise CinegraphError(f"{server_dir / 'pom.xml'}: Maven build failed: {' | '.join(tail)}")
    stamp.touch()
    return classpath


def status(home: Path) -> ServerStatus:
    """What the pidfile says, checked against the live process (a stale pidfile means not running)."""
    home = Path(home).resolve()
    pid_path = home / PID_FILE
    if not pid_path.exists():
        return ServerStatus(home, running=False)
    try:
        state = json.loads(pid_path.read_text())
        pid, port = int(state["pid"]), int(state["port"])
        heap_mb = int(state.get("heap_mb", DEFAULT_HEAP_MB))
        pagecache_mb = int(state.get("pagecache_mb", DEFAULT_PAGECACHE_MB))
        browser_port = int(state.get("browser_port") or 0) or None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CinegraphError(f"{pid_path}: unreadable pidfile ({exc}); delete it if no server runs") from exc
    if not _is_our_server(pid, home):
        return ServerStatus(home, running=False)
    return ServerStatus(
        home, running=True, pid=pid, port=port, heap_mb=heap_mb, pagecache_mb=pagecache_mb, browser_port=browser_port
    )


def start(
    home: Path,
    port: int = DEFAULT_PORT,
    *,
    password: str,
    heap_mb: int = DEFAULT_HEAP_MB,
    pagecache_mb: int = DEFAULT_PAGECACHE_MB,
    browser_port: int = 0,
    timeout: float = 180.0,
) -> ServerStatus:
    """Start Neo4j under ``home`` on 127.0.0.1:``port`` and wait until Bolt answers; with a
    ``browser_port``, Neo4j Browser is served there too.

    Idempotent: a server already running under ``home`` on the same port is returned as is. The
    password reaches the JVM through its environment only, never its command line.
    """
    home = Path(home).resolve()
    current = status(home)
    if current.running:
        if current.port != port:
            raise CinegraphError(
                f"--home {home}: a server already runs there on port {current.port}, not {port}; stop it first"
            )
        return current
    if not password:
        raise CinegraphError("NEO4J_PASSWORD is not set: export the password the server should require")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise CinegraphError(f"NEO4J_PASSWORD must have at least {MIN_PASSWORD_LENGTH} characters")
    _check_port_free(port)
    if browser_port:
        _check_port_free(browser_port, option="--browser-port")
    classpath = build()
    java = shutil.which("java")
    if java is None:
        raise CinegraphError("java not found on PATH: Java 17 is needed to run Neo4j")
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / LOG_FILE
    cmd = [
        java,
        f"-Xms{heap_mb}m",
        f"-Xmx{heap_mb}m",
        "-XX:+UseG1GC",
        "-XX:+ExitOnOutOfMemoryError",
        "-cp",
        classpath,
        MAIN_CLASS,
        str(home / DB_DIR),
        str(port),
        str(pagecache_mb),
        str(browser_port),
    ]
    env = {**os.environ, "NEO4J_PASSWORD": password}
    log_offset = log_path.stat().st_size if log_path.exists() else 0
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            cmd,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    (home / PID_FILE).write_text(
        json.dumps(
            {
                "pid": proc.pid,
                "port": port,
                "heap_mb": heap_mb,
                "pagecache_mb": pagecache_mb,
                "browser_port": browser_port,
            }
        )
    )
    log.info("started Neo4j (pid %d), waiting for Bolt on %s:%d", proc.pid, HOST, port)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            (home / PID_FILE).unlink(missing_ok=True)
            raise CinegraphError(
                f"Neo4j exited with status {proc.returncode} during start; see {log_path} "
                f"and {home / DB_DIR / 'logs' / 'debug.log'}"
            )
        if _line_logged(log_path, log_offset) and _bolt_answers(port):
            result = ServerStatus(home, True, proc.pid, port, heap_mb, pagecache_mb, browser_port or None)
            log.info("Neo4j ready at %s", result.uri)
            return result
        time.sleep(0.5)
    _terminate(proc.pid, timeout=30.0)
    (home / PID_FILE).unlink(missing_ok=True)
    raise CinegraphError(f"Neo4j did not answer on {HOST}:{port} within {timeout:.0f}s; see {log_path}")


def stop(home: Path, *, timeout: float = 60.0) -> bool:
    """SIGTERM the server (its shutdown hook closes the store cleanly) and wait for it to exit.
    Returns False when nothing was running."""
    home = Path(home).resolve()
    current = status(home)
    if not current.running or current.pid is None:
        (home / PID_FILE).unlink(missing_ok=True)  # a stale pidfile from a crash or reboot
        return False
    _terminate(current.pid, timeout=timeout)
    (home / PID_FILE).unlink(missing_ok=True)
    log.info("Neo4j (pid %d) stopped", current.pid)
    return True


# --- offline import ------------------------------------------------------------------------------


def database_dirs(home: Path, database: str) -> tuple[Path, Path]:
    """The store folder and the transaction-log folder of ``database`` in the home ``home``
    (a server home, or a staging home of :func:`run_import`)."""
    data = Path(home).resolve() / DB_DIR / "data"
    return data / "databases" / database, data / "transactions" / database


@contextmanager
def offline(home: Path, *, timeout: float = 180.0) -> Iterator[ServerStatus]:
    """Shut the databases of the running server of ``home`` down for offline work on their files,
    then open them again, also when the work fails. The JVM keeps running (same pid, port and
    Browser), so reopening costs a database start, not a cold JVM start."""
    before = status(home)
    if not before.running or before.port is None:
        raise CinegraphError(f"--home {before.home}: no server runs there")
    request = before.home / DB_DIR / OFFLINE_REQUEST
    log_path = before.home / LOG_FILE
    offset = log_path.stat().st_size
    request.touch()
    try:
        _await_line(before, OFFLINE_MARKER, offset, timeout, "shut its databases down")
        yield before
    finally:
        offset = log_path.stat().st_size
        request.unlink(missing_ok=True)
        _await_line(before, READY_MARKER, offset, timeout, "reopen its databases")
        if not _bolt_answers(before.port):
            raise CinegraphError(
                f"Neo4j reopened its databases but {HOST}:{before.port} does not answer; see {log_path}"
            )
        log.info("Neo4j (pid %d) back online at %s", before.pid, before.uri)


def _await_line(state: ServerStatus, marker: bytes, offset: int, timeout: float, what: str) -> None:
    """Wait until the server's log gets a line starting with ``marker`` after ``offset``."""
    log_path = state.home / LOG_FILE
    deadline = time.monotonic() + timeout
    while not _line_logged(log_path, offset, marker):
        if state.pid is None or not _alive(state.pid):
            raise CinegraphError(f"Neo4j (pid {state.pid}) exited instead of going to {what}; see {log_path}")
        if time.monotonic() > deadline:
            raise CinegraphError(f"Neo4j did not {what} within {timeout:.0f}s; see {log_path}")
        time.sleep(0.1)


def staging_home(home: Path) -> tempfile.TemporaryDirectory[str]:
    """A temporary home beside ``home``'s own (the same filesystem, so installing is a rename)."""
    home = Path(home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(prefix="import-", dir=home)


def run_import(home: Path, staging: Path, database: str, arguments: Sequence[str], *, progress: bool = True) -> None:
    """``neo4j-admin database import full <database> ARGUMENTS`` into the staging home ``staging``
    of ``home``, run by the server of ``home`` in its own JVM while its databases are shut
    (:func:`offline`): the importer starts warm instead of in a JVM of its own. Its output goes to
    ``HOME/import.log`` (and to stderr with ``progress``), its report to ``STAGING/import.report``
    (by default it would land in the server's working directory)."""
    state = status(home)
    db_dir = state.home / DB_DIR
    if not state.running or not (db_dir / OFFLINE_REQUEST).exists():
        raise CinegraphError(f"--home {state.home}: the server must be running and offline to import")
    log_path = state.home / IMPORT_LOG
    neo4j_home = Path(staging).resolve() / DB_DIR
    neo4j_home.mkdir(parents=True, exist_ok=True)
    report = f"--report-file={Path(staging).resolve() / 'import.report'}"
    lines = [str(log_path), str(neo4j_home), "database", "import", "full", database, report, *arguments]
    if any("\n" in line or "\r" in line for line in lines):
        raise CinegraphError(f"--home {state.home}: an import argument holds a line break")
    done = db_dir / ADMIN_DONE
    done.unlink(missing_ok=True)
    log_path.write_bytes(b"")
    partial = db_dir / (ADMIN_REQUEST + ".tmp")
    partial.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(partial, db_dir / ADMIN_REQUEST)  # the server reads the request whole or not at all
    shown = 0
    while not done.exists():
        if state.pid is None or not _alive(state.pid):
            raise CinegraphError(f"Neo4j (pid {state.pid}) exited during the import; see {state.home / LOG_FILE}")
        if progress:
            shown = _echo(log_path, shown)
        time.sleep(0.05)
    if progress:
        _echo(log_path, shown)
    returncode = int(done.read_text().strip() or "1")
    done.unlink()
    if returncode != 0:
        reason = _import_failure(log_path.read_text(errors="replace"))
        raise CinegraphError(f"neo4j-admin import failed (status {returncode}): {reason}; see {log_path}")


def _import_failure(output: str) -> str:
    """The importer's reason for failing, in one line: what it printed after its closing summary
    when it got that far (the cause, then a generic "Error importing csv file."), else its last
    error line (arguments it refused before starting)."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    summary = max((i for i, ln in enumerate(lines) if ln.startswith("Peak memory usage")), default=None)
    if summary is not None:
        said = [ln for ln in lines[summary + 1 :] if not ln.startswith(("WARNING", "Run with '--verbose'"))]
        if said:
            return " ".join(said)
    return next((ln for ln in reversed(lines) if "rror" in ln or "xception" in ln), lines[-1] if lines else "no output")


def _echo(path: Path, offset: int) -> int:
    """Copy what ``path`` gained past ``offset`` to stderr; returns the new offset."""
    with open(path, "rb") as f:
        f.seek(offset)
        chunk = f.read()
    sys.stderr.write(chunk.decode(errors="replace"))
    return offset + len(chunk)


def install_database(home: Path, staging: Path, database: str) -> None:
    """Replace the stopped server's ``database`` (store and transaction logs) with the one built in
    ``staging``; the old files are moved aside first and restored if a rename fails."""
    if status(home).running and not (Path(home).resolve() / DB_DIR / OFFLINE_REQUEST).exists():
        raise CinegraphError(f"--home {home}: the server must be stopped or offline to replace database {database!r}")
    pairs = list(zip(database_dirs(staging, database), database_dirs(home, database), strict=True))
    aside = Path(staging).resolve() / "replaced"
    moved: list[tuple[Path, Path]] = []
    try:
        for i, (_, target) in enumerate(pairs):
            if target.exists():
                old = aside / str(i)
                old.parent.mkdir(parents=True, exist_ok=True)
                target.rename(old)
                moved.append((old, target))
        for new, target in pairs:
            target.parent.mkdir(parents=True, exist_ok=True)
            new.rename(target)
    except OSError:
        for new, target in pairs:
            if target.exists() and not new.exists():
                target.rename(new)
        for old, target in moved:
            old.rename(target)
        raise


def _terminate(pid: int, *, timeout: float) -> None:
    """SIGTERM, wait, and SIGKILL only if the shutdown hook hangs past ``timeout``."""
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            log.warning("Neo4j (pid %d) ignored SIGTERM for %.0fs; killing it", pid, timeout)
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10.0
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    """True while ``pid`` runs; reaps it first when it is our own child (a test's server)."""
    if pid <= 1:  # never let a corrupt pidfile turn waitpid/kill into "any process"
        return False
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _is_our_server(pid: int, home: Path) -> bool:
    """The pid is alive and is our JVM for this home (pids get reused after a reboot)."""
    if not _alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError):
        return False
    return MAIN_CLASS.encode() in cmdline and str(home / DB_DIR).encode() in cmdline


def _check_port_free(port: int, option: str = "--port") -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Like Neo4j's own listener: a port held only by TIME_WAIT sockets (after a crash) is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CinegraphError(
                    f"{option} {port}: {HOST}:{port} is already in use by another process; choose another port"
                ) from exc
            raise CinegraphError(f"{option} {port}: cannot bind {HOST}:{port}: {exc.strerror}") from exc


def _line_logged(log_path: Path, offset: int, marker: bytes = READY_MARKER) -> bool:
    """Whether a line after ``offset`` starts with ``marker``. The JVM prints READY once the initial
    password is set (Bolt alone answers a moment earlier) and OFFLINE once its databases are shut."""
    with open(log_path, "rb") as f:
        f.seek(offset)
        return any(line.startswith(marker) for line in f)


def _bolt_answers(port: int) -> bool:
    """A Bolt handshake (magic + version proposals) gets a version back: the server accepts clients."""
    try:
        with socket.create_connection((HOST, port), timeout=2.0) as sock:
            sock.sendall(_BOLT_MAGIC + _BOLT_VERSIONS)
            reply = sock.recv(4)
    except OSError:
        return False
    return len(reply) == 4 and reply != b"\x00\x00\x00\x00"

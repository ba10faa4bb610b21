"""The virtualenv cache: one venv per (requirements, base interpreter), built once, shared by images.

A venv is keyed by the sha256 of the normalised requirements text plus the base interpreter's
identity, and lives at ``venvs_dir/<key[:16]>``. It is built in place (console-script shebangs
embed absolute paths, so a venv cannot be built elsewhere and renamed) under an exclusive
``fcntl.flock`` on ``venvs_dir/<key[:16]>.lock``, and is complete only once the
``.homeport-complete`` marker exists; a folder without the marker is a crashed build and is
deleted and rebuilt by the next caller.
"""

from __future__ import annotations

import collections
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from homeport.errors import HomeportError

MARKER = ".homeport-complete"
REQUIREMENTS_FILE = ".homeport-requirements.txt"
# Bumped when the way venvs are built changes, so old cache entries are not reused.
_LAYOUT_VERSION = "1"
_KEY_LENGTH = 16
_TAIL_LINES = 25

Progress = Callable[[str], None]


class VenvBuildError(HomeportError):
    """Creating the venv or installing its requirements failed."""

    code = "ValidationException"
    status = 400


def normalise_requirements(text: str) -> str:
    """Requirements text reduced to what pip acts on: comments, blanks and order do not matter."""
    lines: set[str] = set()
    # pip joins a line ending in a backslash with the next one before anything else.
    for raw in text.replace("\\\r\n", "").replace("\\\n", "").splitlines():
        # pip treats "#" at the start or after whitespace as a comment; a "#" inside a URL
        # fragment (#egg=...) is not one.
        line = " ".join(raw[: _comment_start(raw)].split())
        if line:
            lines.add(line)
    return "".join(f"{line}\n" for line in sorted(lines))


def _comment_start(line: str) -> int:
    for i, ch in enumerate(line):
        if ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return i
    return len(line)


def default_base_python() -> Path:
    """The real interpreter behind this process, never a venv's python or a pyenv shim.

    ``sys.executable`` may be a venv's python (a symlink chain ending in the base interpreter)
    or a shim script; ``sys.base_prefix`` always names the installation itself.
    """
    major, minor = sys.version_info[:2]
    base = Path(sys.base_prefix) / "bin"
    for candidate in (base / f"python{major}.{minor}", base / f"python{major}"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate.resolve()
    return Path(os.path.realpath(sys.executable))


class VenvCache:
    """Builds and reuses virtualenvs under ``venvs_dir``."""

    def __init__(self, venvs_dir: Path, base_python: Path | None = None) -> None:
        self.venvs_dir = Path(venvs_dir)
        self.base_python = Path(base_python).resolve() if base_python else default_base_python()
        self._base_identity: str | None = None

    # -- keys and paths -------------------------------------------------------------------

    def base_identity(self) -> str:
        """The base interpreter's version and location: a venv is only valid for that one."""
        if self._base_identity is None:
            same = self.base_python == default_base_python()
            version = sys.version if same else self._ask_version()
            self._base_identity = f"{version}\n{self.base_python}"
        return self._base_identity

    def _ask_version(self) -> str:
        try:
            done = subprocess.run(
                [str(self.base_python), "-c", "import sys; print(sys.version)"],
                capture_output=True,
                text=True,
                timeout=60,
                env=_clean_env(),
            )
        except OSError as exc:
            raise VenvBuildError(f"Base interpreter {self.base_python} cannot be run: {exc}") from exc
        if done.returncode != 0:
            raise VenvBuildError(
                f"Base interpreter {self.base_python} failed to report its version: {done.stderr.strip()}"
            )
        return done.stdout.strip()

    def key(self, requirements: str) -> str:
        """Full sha256 hex digest identifying the venv for these requirements."""
        digest = hashlib.sha256()
        for part in (_LAYOUT_VERSION, self.base_identity(), normalise_requirements(requirements)):
            digest.update(part.encode())
            digest.update(b"\0")
        return digest.hexdigest()

    def path_for(self, requirements: str) -> Path:
        # A short name keeps shebang lines short (Linux caps them at 255 bytes).
        return self.venvs_dir / self.key(requirements)[:_KEY_LENGTH]

    @staticmethod
    def is_complete(venv: Path) -> bool:
        return (venv / MARKER).is_file()

    # -- building -------------------------------------------------------------------------

    def ensure(self, requirements: str, progress: Progress | None = None) -> Path:
        """A complete venv satisfying ``requirements``; built on first use, reused afterwards."""
        venv = self.path_for(requirements)
        if self.is_complete(venv):
            return venv
        self.venvs_dir.mkdir(parents=True, exist_ok=True)
        with _exclusive(venv.with_name(venv.name + ".lock")):
            # Another thread or process may have finished it while this one waited.
            if self.is_complete(venv):
                return venv
            if venv.exists() or venv.is_symlink():
                _remove(venv)
            try:
                self._build(venv, requirements, progress)
            except BaseException:
                # Leave no half-built venv behind (the missing marker would catch it anyway).
                _remove(venv)
                raise
        return venv

    def _build(self, venv: Path, requirements: str, progress: Progress | None) -> None:
        say = progress or (lambda _line: None)
        normalised = normalise_requirements(requirements)
        say(f"Creating virtual environment {venv.name} with {self.base_python}")
        create = [str(self.base_python), "-m", "venv"]
        if not normalised:
            # Nothing to install: skip ensurepip, which costs seconds.
            create.append("--without-pip")
        self._run(create + [str(venv)], "Creating the virtual environment", say)

        if normalised:
            req_file = venv / REQUIREMENTS_FILE
            req_file.write_text(normalised)
            # The venv's python running its own pip, by absolute path: no dependence on PATH
            # or on the pip script's shebang.
            pip = [str(venv / "bin" / "python"), "-m", "pip"]
            self._run(
                pip
                + [
                    "install",
                    "--disable-pip-version-check",
                    "--no-input",
                    "--progress-bar",
                    "off",
                    "-r",
                    str(req_file),
                ],
                "pip could not install the requirements",
                say,
            )

        marker = {
            "key": self.key(requirements),
            "requirements": normalised,
            "base_python": str(self.base_python),
            "created": time.time(),
        }
        _write_synced(venv / MARKER, json.dumps(marker, indent=2) + "\n")

    def _run(self, argv: list[str], what: str, say: Progress) -> None:
        tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=_clean_env(),
                cwd=self.venvs_dir,
            )
        except OSError as exc:
            raise VenvBuildError(f"{what}: cannot run {argv[0]}: {exc}") from exc
        assert proc.stdout is not None
        with proc:
            for raw in proc.stdout:
                line = raw.decode(errors="replace").rstrip()
                if line:
                    tail.append(line)
                    say(line)
            code = proc.wait()
        if code != 0:
            detail = "\n".join(tail) or "(no output)"
            raise VenvBuildError(f"{what} (exit status {code}):\n{detail}")

    # -- housekeeping ---------------------------------------------------------------------

    def complete_venvs(self) -> list[Path]:
        """Complete venvs in the cache."""
        if not self.venvs_dir.is_dir():
            return []
        return sorted(p for p in self.venvs_dir.iterdir() if p.is_dir() and self.is_complete(p))


def _clean_env() -> dict[str, str]:
    env = dict(os.environ)
    # The server's own interpreter settings must not leak into the venv's python or pip.
    for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP", "__PYVENV_LAUNCHER__"):
        env.pop(name, None)
    env["PYTHONUNBUFFERED"] = "1"
    env["PIP_NO_INPUT"] = "1"
    # A user-level pip config with user=true would install outside the venv.
    env["PIP_USER"] = "0"
    return env


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    # flock locks belong to the open file description, so separate opens exclude each other
    # across threads of one process as well as across processes.
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def _write_synced(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())

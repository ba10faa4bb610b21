"""VenvCache: keyed by requirements, built once (threads and processes), rebuilt when incomplete."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from homeport.images.venvs import (
    MARKER,
    VenvBuildError,
    VenvCache,
    default_base_python,
    normalise_requirements,
)

CREATING = "Creating virtual environment"


def test_default_base_python_is_the_real_interpreter() -> None:
    base = default_base_python()
    assert base.is_file() and os.access(base, os.X_OK)
    assert base == base.resolve()  # not a symlink, so not a venv's python
    assert "shims" not in base.parts  # not a pyenv shim
    if sys.prefix != sys.base_prefix:  # running in a venv: the base is outside it
        assert not base.is_relative_to(Path(sys.prefix).resolve())
    version = subprocess.run(
        [str(base), "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True
    ).stdout.strip()
    assert version == str(tuple(sys.version_info[:2]))


def test_normalised_requirements_ignore_comments_blanks_order_and_spacing() -> None:
    a = "six==1.17.0\n# a comment\n\nrequests  >=2  # why\n"
    b = "requests >=2\n   six==1.17.0   \n"
    assert normalise_requirements(a) == normalise_requirements(b) == "requests >=2\nsix==1.17.0\n"
    # A '#' that does not follow whitespace is part of the line (URL fragments).
    assert normalise_requirements("git+https://x/y.git#egg=y\n") == "git+https://x/y.git#egg=y\n"
    assert normalise_requirements("  \n# only comments\n") == ""
    assert normalise_requirements("six \\\n  ==1.17.0\nabc\n") == "abc\nsix ==1.17.0\n"


def test_key_depends_on_requirements_and_interpreter(tmp_path: Path) -> None:
    cache = VenvCache(tmp_path)
    assert cache.key("six\n") == cache.key("# x\nsix")
    assert cache.key("six") != cache.key("")
    assert cache.path_for("six").parent == tmp_path
    # Same requirements, different (real) base interpreter → different venv.
    other = VenvCache(tmp_path, base_python=Path(sys.executable))
    if other.base_python != cache.base_python:
        assert other.key("six") != cache.key("six")


def test_empty_requirements_give_a_plain_venv_with_python_first(tmp_path: Path) -> None:
    cache = VenvCache(tmp_path / "venvs")
    lines: list[str] = []
    venv = cache.ensure("", lines.append)
    assert (venv / MARKER).is_file()
    assert lines and lines[0].startswith(CREATING)
    for name in ("python", "python3"):
        assert (venv / "bin" / name).exists()
    cfg = (venv / "pyvenv.cfg").read_text()
    assert "include-system-site-packages = false" in cfg
    assert f"home = {cache.base_python.parent}" in cfg
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sys; print(sys.prefix)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == str(venv)


def test_second_ensure_is_instant_and_returns_the_same_path(tmp_path: Path) -> None:
    cache = VenvCache(tmp_path)
    first = cache.ensure("# nothing\n")
    lines: list[str] = []
    started = time.perf_counter()
    again = cache.ensure("", lines.append)
    assert time.perf_counter() - started < 0.05
    assert again == first
    assert lines == []  # nothing was built
    # A fresh cache object over the same folder reuses it too (another process would).
    assert VenvCache(tmp_path).ensure("") == first


def test_missing_marker_means_rebuild(tmp_path: Path) -> None:
    cache = VenvCache(tmp_path)
    venv = cache.ensure("")
    (venv / MARKER).unlink()
    (venv / "leftover-from-crash").write_text("x")
    lines: list[str] = []
    assert cache.ensure("", lines.append) == venv
    assert any(line.startswith(CREATING) for line in lines)
    assert (venv / MARKER).is_file()
    assert not (venv / "leftover-from-crash").exists()


def test_half_built_folder_is_replaced(tmp_path: Path) -> None:
    cache = VenvCache(tmp_path)
    venv = cache.path_for("")
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("not a python")
    assert cache.ensure("") == venv
    assert (venv / "bin" / "python").resolve() != venv / "bin" / "python"


def test_concurrent_threads_build_once(tmp_path: Path) -> None:
    cache = VenvCache(tmp_path)
    builds: list[str] = []
    barrier = threading.Barrier(4)
    results: list[Path] = []
    errors: list[BaseException] = []

    def slow_progress(line: str) -> None:
        if line.startswith(CREATING):
            builds.append(line)
            time.sleep(0.5)  # hold the lock long enough for the others to queue on it

    def worker() -> None:
        try:
            barrier.wait()
            results.append(cache.ensure("", slow_progress))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert len(builds) == 1
    assert len(results) == 4 and len(set(results)) == 1
    assert (results[0] / MARKER).is_file()


def test_concurrent_processes_build_once(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys, time
        from pathlib import Path
        from homeport.images.venvs import VenvCache

        def progress(line):
            if line.startswith("Creating virtual environment"):
                print("BUILT", flush=True)
                time.sleep(0.5)

        print(VenvCache(Path(sys.argv[1])).ensure("", progress), flush=True)
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outputs = [proc.communicate(timeout=60)[0] for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    assert sum(out.count("BUILT") for out in outputs) == 1
    assert len({out.split()[-1] for out in outputs}) == 1


def test_real_requirement_is_installed_and_importable(shared_venvs: VenvCache) -> None:
    lines: list[str] = []
    venv = shared_venvs.ensure("six\n", lines.append)
    assert any("six" in line for line in lines[1:])  # pip's own output reached progress
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import six, sys; print(six.__file__); print(sys.prefix)"],
        capture_output=True,
        text=True,
        check=True,
    )
    module_file, prefix = done.stdout.split()
    assert Path(module_file).is_relative_to(venv)
    assert prefix == str(venv)
    # The console scripts' shebangs point at the venv where it lives (built in place).
    # (pip writes a /bin/sh trampoline instead when the path is too long for a shebang.)
    shebang = (venv / "bin" / "pip").read_text().splitlines()[0]
    assert shebang.startswith(f"#!{venv}/bin/python") or shebang == "#!/bin/sh"
    # Cached: same requirements written differently reuse it without running pip.
    again: list[str] = []
    assert shared_venvs.ensure("# the six package\nsix", again.append) == venv
    assert again == []


def test_bad_requirement_fails_clearly_and_leaves_nothing(tmp_path: Path) -> None:
    cache = VenvCache(tmp_path)
    # --no-index keeps the failure local and quick: nothing to look up on the network.
    requirements = "--no-index\nhomeport-no-such-package-xyz==1.0\n"
    with pytest.raises(VenvBuildError) as caught:
        cache.ensure(requirements)
    message = str(caught.value)
    assert message.startswith("pip could not install the requirements (exit status 1)")
    assert "homeport-no-such-package-xyz" in message  # pip's last lines are included
    assert not cache.path_for(requirements).exists()


def test_unrunnable_base_python_is_a_clear_error(tmp_path: Path) -> None:
    fake = tmp_path / "python3"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(VenvBuildError, match="failed to report its version"):
        VenvCache(tmp_path / "venvs", base_python=fake).ensure("")

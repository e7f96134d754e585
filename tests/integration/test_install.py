"""ptor installs the ways a user installs a Python tool on Debian 12: a wheel into a clean
virtual environment, and pipx (Debian's package). Each gives working `ptor` and
`ptor-lab` console scripts."""

import os
import shutil
import subprocess
import sys

import pytest

from ptor_harness.config import package_version

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(*argv, env=None, timeout=600):
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                          stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 0, f"{argv}: {done.stdout}\n{done.stderr}"
    return done.stdout


def check_console_scripts(bin_dir: str) -> None:
    assert run(os.path.join(bin_dir, "ptor"), "--version").strip() == \
        f"ptor {package_version()}"
    assert "usage: ptor-lab" in run(os.path.join(bin_dir, "ptor-lab"), "--help")
    assert "--primary-pgdsn" in run(os.path.join(bin_dir, "ptor"), "--help")


@pytest.fixture
def source(tmp_path):
    """A copy of the checkout: building never writes into the real one."""
    copy = tmp_path / "src"
    shutil.copytree(REPO, copy, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".tox", "*.egg-info", "build", "dist", "ptor-runs", "__pycache__"))
    return copy


def test_a_wheel_installs_into_a_clean_venv(tmp_path, source):
    wheels = tmp_path / "wheels"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels),
        str(source))
    (wheel,) = wheels.iterdir()
    assert wheel.name.startswith(f"ptor-{package_version()}-") and wheel.suffix == ".whl"
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", str(venv))
    run(str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
        "--disable-pip-version-check", str(wheel))
    check_console_scripts(str(venv / "bin"))


def test_pipx_installs_it(tmp_path, source):
    pipx = shutil.which("pipx")
    if pipx is None:
        pytest.fail("pipx is missing: .ci/setup installs Debian's pipx")
    env = dict(os.environ, PIPX_HOME=str(tmp_path / "pipx"), PIPX_BIN_DIR=str(tmp_path / "bin"),
               PIPX_MAN_DIR=str(tmp_path / "man"))
    run(pipx, "install", "--force", str(source), env=env)
    check_console_scripts(str(tmp_path / "bin"))

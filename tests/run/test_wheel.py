"""What the image will hold: a wheel built from the repo, installed without extras into a fresh
venv (the Dockerfile's runtime stage does the same), runs and fails as it should."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(root), str(REPO)],
        check=True,
    )
    (wheel,) = root.glob("holmbot-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.startswith("tests/")]
    assert "bot/run.py" in names and "commands/flow/layer.py" in names
    env = root / "venv"
    # The dependencies come from this machine's site-packages; holmbot itself from the wheel.
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(env)], check=True)
    pip = [str(env / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps"]
    subprocess.run([*pip, "--force-reinstall", str(wheel)], check=True)
    return env


def run(venv: Path, *args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp)}
    return subprocess.run(
        [str(venv / "bin" / "holmbot"), *args], capture_output=True, text=True, cwd=tmp, env=env
    )


def test_the_installed_wheel_runs_from_its_own_files(venv: Path, tmp_path: Path) -> None:
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import bot.run; print(bot.run.__file__)"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert where.stdout.startswith(str(venv)), where.stdout + where.stderr
    helped = run(venv, "--help", tmp=tmp_path)
    assert helped.returncode == 0
    assert "run" in helped.stdout and "console" in helped.stdout


def test_the_installed_wheel_refuses_to_run_without_a_token(venv: Path, tmp_path: Path) -> None:
    refused = run(venv, "run", tmp=tmp_path)
    assert refused.returncode == 2
    assert "HOLMBOT_SLACK__BOT_TOKEN" in refused.stderr
    assert "holmbot console --sandbox" in refused.stderr

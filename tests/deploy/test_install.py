"""Installable by the book: in a fresh venv, `pip install -r requirements.txt && pip install
-e .` makes every acctsync command work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

from ._support import REPO_ROOT

COMMANDS = [
    [],
    ["cycle"],
    ["run"],
    ["status"],
    ["replay-poison"],
    ["reset-cursors"],
    ["worker"],
    ["fields"],
    ["fields", "list"],
    ["fields", "select"],
    ["fields", "add"],
    ["fields", "remove"],
    ["sim"],
]


def test_a_fresh_venv_runs_every_command(tmp_path: Path) -> None:
    home = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(home)
    python = home / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    for args in (["-r", "requirements.txt"], ["-e", "."]):
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *args],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, done.stderr[-3000:]
    acctsync = home / "bin" / "acctsync"
    for args in COMMANDS:
        helped = subprocess.run(
            [str(acctsync), *args, "--help"], env=env, capture_output=True, text=True, timeout=60
        )
        assert helped.returncode == 0, (args, helped.stderr[-2000:])
        assert "usage:" in helped.stdout, (args, helped.stdout[:500])
    # The simulator starts and says how to point acctsync at it.
    sim = subprocess.Popen(
        [str(acctsync), "sim", "--accounts", "5", "--contacts", "20"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert sim.stdout is not None
        settings = json.loads(sim.stdout.readline())
        assert settings["DATAVERSE_URL"].startswith("https://127.0.0.1:")
    finally:
        sim.terminate()
        sim.wait(timeout=30)
    assert sys.version_info[:2] == (3, 11)

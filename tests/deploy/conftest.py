"""Fixtures for the deployment checks: repository paths and a checkov that runs offline."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ._support import CHECKOV_LOCK, CHECKOV_VENV, REPO_ROOT

CHECKOV_INSTALL_TIMEOUT_S = 600


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


def _lock_digest() -> str:
    return hashlib.sha256(CHECKOV_LOCK.read_bytes()).hexdigest()


def _install_checkov() -> Path:
    """Create (or refresh) the checkov venv from the lock file; returns the executable."""
    executable = CHECKOV_VENV / "bin" / "checkov"
    stamp = CHECKOV_VENV / ".installed"
    digest = _lock_digest()
    if executable.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return executable
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(CHECKOV_VENV)],
        [
            str(CHECKOV_VENV / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            str(CHECKOV_LOCK),
        ],
    ]
    for step in steps:
        done = subprocess.run(
            step,
            capture_output=True,
            text=True,
            timeout=CHECKOV_INSTALL_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(
                f"could not install checkov into {CHECKOV_VENV} (needs PyPI):\n"
                f"$ {' '.join(step)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
    stamp.write_text(digest + "\n")
    return executable


@pytest.fixture(scope="session")
def checkov() -> Path:
    """The checkov executable: $ACCTSYNC_CHECKOV if set, else the pinned tool venv."""
    override = os.environ.get("ACCTSYNC_CHECKOV")
    if override:
        return Path(override)
    return _install_checkov()


@pytest.fixture(scope="session")
def checkov_env() -> dict[str, str]:
    """Environment that keeps checkov off the network: no platform download, no
    policy-ID mapping fetch, no PyPI update check."""
    env = dict(os.environ)
    env.update(
        {
            "BC_SKIP_MAPPING": "TRUE",
            "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true",
            "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false",
            "PYTHONWARNINGS": "ignore",
        }
    )
    for name in ("BC_API_KEY", "PRISMA_API_URL", "BC_API_URL"):
        env.pop(name, None)
    return env

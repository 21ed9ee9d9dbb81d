"""Settings files every `acctsync` command reads when a variable is not already set.

In order, the first that names a setting wins: the environment; the `Values` of the user's own
`local.settings.json` (the Azure Functions convention; acctsync never writes it); then those
of the dev stack that `make run` keeps in `.acctsync/local.settings.json`. So a second terminal
beside `make run` needs nothing copied.
"""

from __future__ import annotations

import json
import os
from collections.abc import MutableMapping
from pathlib import Path

SETTINGS_FILE = "local.settings.json"


def state_dir() -> Path:
    """Where the dev stack keeps what it must find again after a restart."""
    configured = os.environ.get("ACCTSYNC_STATE_DIR")
    return Path(configured) if configured else Path.cwd() / ".acctsync"


def settings_files() -> list[Path]:
    return [Path.cwd() / SETTINGS_FILE, state_dir() / SETTINGS_FILE]


class LocalSettingsError(ValueError):
    """A settings file that is not the Functions format; the message says which and why."""


def read_values(path: Path) -> dict[str, str]:
    """The `Values` of a local.settings.json file; {} when there is no such file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        document = json.loads(text)
    except ValueError as error:
        raise LocalSettingsError(f"{path} is not JSON ({error}); fix or remove it") from None
    values = document.get("Values", {}) if isinstance(document, dict) else None
    if not isinstance(values, dict):
        raise LocalSettingsError(f'{path} has no "Values" object; see local.settings.json.example')
    return {str(k): str(v) for k, v in values.items() if v is not None}


def load_local_settings(env: MutableMapping[str, str] | None = None) -> list[Path]:
    """Fill the unset variables from the settings files; returns the files that gave any."""
    target = os.environ if env is None else env
    used = []
    for path in settings_files():
        values = read_values(path)
        added = {k: v for k, v in values.items() if k not in target}
        target.update(added)
        if added:
            used.append(path)
    return used


def write_values(path: Path, values: dict[str, str]) -> None:
    """Write a local.settings.json of the dev stack (private: it holds its dev secrets)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    partial.write_text(
        json.dumps({"IsEncrypted": False, "Values": values}, indent=2) + "\n", encoding="utf-8"
    )
    partial.chmod(0o600)
    os.replace(partial, path)

"""What gets deployed: the Function App package computed from a clean checkout.

Two tools zip the repository root with .funcignore, with different matchers:
- Core Tools (`func azure functionapp publish`) uses its own anchored matcher (ported in
  _support.CoreToolsFuncIgnore);
- azd (`azd deploy`) reads .funcignore with gitignore semantics (pathspec here).
Both packages must hold the app and nothing else.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pathspec
import pytest

from ._support import REPO_ROOT, core_tools_package

# The package is exactly these top-level entries (see the header of .funcignore).
PACKAGE_TOP_LEVEL = frozenset(
    {"function_app.py", "host.json", "requirements.txt", "functions", "shared"}
)
# azd's gitignore-style matcher keeps .funcignore itself (Core Tools drops it); harmless.
HARMLESS = frozenset({".funcignore"})
REQUIRED_FILES = ("function_app.py", "host.json", "requirements.txt")
REQUIRED_DIRS = ("functions", "shared")
FORBIDDEN_DIRS = ("tests", "acctsync", ".venv", "node_modules", "infra", "docs", "bench")

# Paths that exist on a developer machine but not in git; none may ever ship. .azure/ holds
# azd environments (.azure/<env>/.env can hold DATAVERSE_CLIENT_SECRET).
LOCAL_ONLY = (
    ".venv/lib/python3.11/site-packages/azure/functions/__init__.py",
    ".venv/tools/checkov/bin/checkov",
    "node_modules/azurite/package.json",
    "local.settings.json",
    ".acctsync/azurite/__azurite_db_table__.json",
    ".azure/dev/.env",
    ".azure/config.json",
    "bench-results.json",
    "acctsync.egg-info/PKG-INFO",
)


def _git_files() -> list[str]:
    """Files a clean checkout would have: tracked plus untracked-but-not-ignored."""
    try:
        done = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=REPO_ROOT,
            capture_output=True,
            check=True,
            timeout=60,
        )
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"git cannot list the repository files: {error}")
    names = [n for n in done.stdout.decode("utf-8").split("\0") if n]
    return sorted(n for n in names if (REPO_ROOT / n).is_file())


def _funcignore() -> str:
    path = REPO_ROOT / ".funcignore"
    assert path.is_file(), ".funcignore is missing: Core Tools and azd would zip everything"
    return path.read_text(encoding="utf-8")


def _azd_package(files: list[str], funcignore: str) -> set[str]:
    spec = pathspec.GitIgnoreSpec.from_lines(funcignore.splitlines())
    return {f for f in files if not spec.match_file(f)}


Packager = Callable[[list[str], str], set[str]]
PACKAGERS: dict[str, Packager] = {"core-tools": core_tools_package, "azd": _azd_package}


@pytest.fixture(scope="module")
def files() -> list[str]:
    return _git_files()


@pytest.mark.parametrize("tool", sorted(PACKAGERS))
def test_package_holds_the_app(tool: str, files: list[str]) -> None:
    package = PACKAGERS[tool](files, _funcignore())
    missing = [f for f in REQUIRED_FILES if f not in package]
    missing += [f"{d}/" for d in REQUIRED_DIRS if not any(p.startswith(d + "/") for p in package)]
    assert not missing, f"{tool} package lacks {missing}; package: {sorted(package)}"
    assert any(p.startswith("functions/") and p.endswith(".py") for p in package)
    assert any(p.startswith("shared/") and p.endswith(".py") for p in package)


@pytest.mark.parametrize("tool", sorted(PACKAGERS))
def test_package_holds_nothing_else(tool: str, files: list[str]) -> None:
    package = PACKAGERS[tool](files, _funcignore())
    forbidden = sorted(p for p in package if p.split("/")[0] in FORBIDDEN_DIRS)
    assert not forbidden, f"{tool} package would ship {forbidden}: extend .funcignore"
    extra = sorted(
        p for p in package if p.split("/")[0] not in PACKAGE_TOP_LEVEL and p not in HARMLESS
    )
    assert not extra, (
        f"{tool} package would ship {extra}: add them to .funcignore (or, if the app "
        "needs them at run time, to PACKAGE_TOP_LEVEL in this test)"
    )


@pytest.mark.parametrize("tool", sorted(PACKAGERS))
def test_local_only_files_never_ship(tool: str) -> None:
    package = PACKAGERS[tool](list(LOCAL_ONLY), _funcignore())
    assert not package, (
        f"{tool} would publish local-only files {sorted(package)}: add their top folder "
        "(e.g. `.azure`) to .funcignore"
    )


def test_core_tools_matcher_port() -> None:
    """The port keeps Core Tools' quirks: anchored at the root, word boundary at the end."""
    ignore = "tests\n__pycache__\n*.egg-info\n.git*\n!shared/keep.txt\nshared/*.txt\n"
    kept = core_tools_package(
        [
            "tests/a.py",
            "shared/tests/a.py",
            "__pycache__/x.pyc",
            "shared/__pycache__/x.pyc",
            "pkg.egg-info/PKG-INFO",
            ".github/workflows/ci.yml",
            ".gitignore",
            "testsuite.py",
            "shared/keep.txt",
            "shared/drop.txt",
            "local.settings.json",
            ".vscode/settings.json",
        ],
        ignore,
    )
    assert kept == {
        "shared/tests/a.py",
        "shared/__pycache__/x.pyc",
        "testsuite.py",
        "shared/keep.txt",
    }

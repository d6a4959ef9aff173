"""The package's imports run one way (DESIGN.md; the contracts in pyproject.toml's [tool.importlinter])."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lint_imports(package_parent: Path) -> subprocess.CompletedProcess:
    """import-linter's `lint-imports` on the fracbench package found in ``package_parent``, with the project's contracts."""
    environment = {**os.environ, "PYTHONPATH": str(package_parent)}
    command = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    return subprocess.run([sys.executable, "-c", command, str(ROOT / "pyproject.toml"), "--no-cache"],
                          capture_output=True, text=True, env=environment, cwd=package_parent)


def test_every_import_runs_one_way() -> None:
    checked = lint_imports(ROOT)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Contracts: 2 kept, 0 broken." in checked.stdout


def test_an_import_that_runs_back_breaks_the_contract(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "fracbench", tmp_path / "fracbench", ignore=shutil.ignore_patterns("checkpoints", "__pycache__"))
    tasks = tmp_path / "fracbench" / "tasks" / "__init__.py"
    tasks.write_text(tasks.read_text() + "\nfrom ..runner import run  # tasks reaching up to the runner\n")
    results = tmp_path / "fracbench" / "results" / "__init__.py"
    results.write_text(results.read_text() + "\nfrom ..models import load_model  # the schema reaching into models\n")
    checked = lint_imports(tmp_path)
    assert checked.returncode != 0
    assert "fracbench.tasks -> fracbench.runner" in checked.stdout
    assert "fracbench.results -> fracbench.models" in checked.stdout
    assert "Contracts: 0 kept, 2 broken." in checked.stdout

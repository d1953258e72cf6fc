"""The repository's `operator/` folder must never shadow the standard library's `operator`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_stdlib_operator_wins_when_the_repo_root_is_first_on_the_path() -> None:
    # `python -m …` from the repo root puts the root first on sys.path; -S skips site-packages
    # (and the editable-install hooks that would import `operator` early and hide the problem).
    probe = "import sys; sys.path.insert(0, ''); import operator; print(operator.__file__)"
    result = subprocess.run([sys.executable, "-S", "-c", probe], cwd=ROOT, capture_output=True,
                            text=True, timeout=30, check=True)
    assert not result.stdout.strip().startswith(str(ROOT))


def test_the_operator_folder_is_a_namespace_portion_not_a_regular_package() -> None:
    assert not (ROOT / "operator" / "__init__.py").exists()


def test_python_dash_m_works_from_the_repo_root() -> None:
    result = subprocess.run([sys.executable, "-S", "-m", "json.tool", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr

"""The CLI starts without its heavy libraries (issue #23: ``--help`` within 1 s): each is
loaded by the verbs that use it, never by importing the entry point. Timings live in
``live-restore bench startup``; these tests only check what is imported."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import live_restore
from live_restore.cli import app
from live_restore.experiments.bench_startup import HEAVY_MODULES

#: Also kept out of the entry point: numpy alone is a tenth of a second of ``--help``.
NOT_AT_CLI_IMPORT = (*HEAVY_MODULES, "numpy")


def _loaded_after(statement: str, modules: tuple[str, ...]) -> list[str]:
    """Which of ``modules`` a fresh interpreter holds after running ``statement``."""
    code = f"import sys; {statement}; print(' '.join(m for m in {modules!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_importing_the_cli_entry_point_loads_no_heavy_library():
    assert _loaded_after("from live_restore.cli import app", NOT_AT_CLI_IMPORT) == []


def test_help_lists_the_verbs_without_loading_a_heavy_library():
    statement = ("from typer.testing import CliRunner; from live_restore.cli import app; "
                 "out = CliRunner().invoke(app, ['--help']); "
                 "assert out.exit_code == 0 and 'restore' in out.output, out.output")
    assert _loaded_after(statement, NOT_AT_CLI_IMPORT) == []


def test_type_checkers_see_every_lazy_export_of_the_package_root():
    """The root's ``TYPE_CHECKING`` imports name exactly the names ``__getattr__`` serves."""
    tree = ast.parse(Path(live_restore.__file__).read_text())
    block = next(node for node in tree.body
                 if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING")
    typed = {alias.asname: node.module for node in block.body
             if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert typed == live_restore._EXPORTS


@pytest.mark.slow
def test_bench_startup_times_every_case_and_writes_its_json(tmp_path: Path):
    out = tmp_path / "startup.json"
    done = CliRunner().invoke(app, ["bench", "startup", "--json", str(out), "--repeats", "1"])
    assert done.exit_code == 0, done.output
    result = json.loads(out.read_text())
    assert set(result["cases"]) == {"help", "import", "restore"}
    for case in result["cases"].values():
        assert len(case["seconds"]) == 1 and case["median_s"] == case["min_s"] > 0
    assert result["heavy_modules_at_cli_import"] == []
    assert result["cases"]["import"]["met"] is None

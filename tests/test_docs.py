"""The generated docs match their JSON; the generator handles new and changed JSONs."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from live_restore.cli import app
from live_restore.experiments.markdown import replace_block, table
from live_restore.experiments.model_cards import shipped_models
from live_restore.experiments.report import (
    BENCH_DIR,
    BENCHMARKS_PAGE,
    README,
    RUNS,
    render_docs,
    stale_docs,
    write_docs,
)

REPO = Path(__file__).parents[1]
runner = CliRunner()


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """The README and the benchmark JSONs of this checkout, in a scratch root."""
    shutil.copytree(REPO / BENCH_DIR, tmp_path / BENCH_DIR)
    shutil.copy(REPO / README, tmp_path / README)
    write_docs(tmp_path)
    return tmp_path


def test_generated_docs_match_their_json():
    stale = stale_docs(REPO)
    assert not stale, f"run `live-restore docs`: {[str(p) for p in stale]} differ from their JSON"


def test_every_benchmark_json_has_its_command_and_no_command_is_orphaned():
    stems = {p.stem for p in (REPO / BENCH_DIR).glob("*.json")}
    assert stems == set(RUNS)
    for stem, run in RUNS.items():
        assert run.command.startswith("live-restore ")
        assert f"--json docs/bench/{stem}.json" in run.command


def test_a_changed_number_makes_the_pages_stale(repo_copy: Path):
    path = repo_copy / BENCH_DIR / "restorers_full.json"
    data = json.loads(path.read_text())
    data["tasks"]["confocal2sted"]["methods"]["mscgm"]["psnr"] = 12.345
    path.write_text(json.dumps(data))
    assert set(stale_docs(repo_copy)) >= {BENCHMARKS_PAGE, README}
    pages = render_docs(repo_copy)
    assert "12.35" in pages[BENCHMARKS_PAGE] and "12.35" in pages[README]


def test_an_unknown_benchmark_gets_a_generic_section(repo_copy: Path):
    new = {"frames": 7, "methods": {"gaussian": {"psnr": 21.5}}, "note": "first run"}
    (repo_copy / BENCH_DIR / "real_test.json").write_text(json.dumps(new))
    page = render_docs(repo_copy)[BENCHMARKS_PAGE]
    section = page[page.index('<a id="real_test">'):]
    assert "command: `not recorded`" in section
    assert "| `methods.gaussian.psnr` | 21.500 |" in section
    assert "| `frames` | 7 |" in section


def test_a_json_that_does_not_fit_its_renderer_is_named(repo_copy: Path):
    (repo_copy / BENCH_DIR / "restorers_broken.json").write_text(json.dumps({"tasks": 3}))
    with pytest.raises(ValueError, match=r"restorers_broken\.json does not fit"):
        render_docs(repo_copy)


def test_floors_lead_every_restorer_table():
    page = (REPO / BENCHMARKS_PAGE).read_text()
    for block in re.findall(r"\| method \|.*?\n\n", page, flags=re.DOTALL):
        methods = [line.split("|")[1].strip() for line in block.splitlines()[2:] if line]
        assert methods[:3] == ["target", "**raw**", "**classical**"], methods


def test_rows_of_an_earlier_model_file_are_not_credited_to_the_shipped_model():
    page = (REPO / BENCHMARKS_PAGE).read_text()
    section = page[page.index('<a id="restorers_full_quick_budget">'):]
    section = section[:section.index("<a id=", 10)]
    assert "earlier `confocal2sted` file" in section
    card = (REPO / "docs/models/confocal2sted.md").read_text()
    assert "(../benchmarks.md#restorers_full_quick_budget)" not in card
    assert "(../benchmarks.md#restorers_quick)" in card  # run with the shipped file


def test_every_shipped_model_has_a_card_with_its_provenance():
    for name, model in shipped_models().items():
        card = (REPO / "docs/models" / f"{name}.md").read_text()
        assert model.checksum in card
        assert model.meta["training"]["command"] in card
        assert model.meta["training"]["commit"] in card
        assert f"(docs/models/{name}.md)" in (REPO / README).read_text()


def test_readme_is_short_and_lists_every_cli_verb():
    text = (REPO / README).read_text()
    assert len(text.splitlines()) <= 250
    root = get_command(app)
    for name, command in root.commands.items():
        subcommands = getattr(command, "commands", None)
        for verb in [f"{name} {sub}" for sub in subcommands] if subcommands else [name]:
            assert f"`live-restore {verb}" in text, verb


def test_missing_markers_are_refused():
    with pytest.raises(ValueError, match="generated block 'models' not found"):
        replace_block("# README without markers\n", "models", "x")


def test_table_refuses_a_short_row():
    assert table(["a", "b"], [[1, "x|y"]])[2] == "| 1 | x\\|y |"
    with pytest.raises(ValueError, match="1 cells for 2 headers"):
        table(["a", "b"], [[1]])


def test_cli_docs_checks_then_writes(repo_copy: Path):
    (repo_copy / BENCHMARKS_PAGE).write_text("stale\n")
    checked = runner.invoke(app, ["docs", "--root", str(repo_copy), "--check"])
    assert checked.exit_code == 1 and "stale docs/benchmarks.md" in checked.output
    written = runner.invoke(app, ["docs", "--root", str(repo_copy)])
    assert written.exit_code == 0 and "wrote docs/benchmarks.md" in written.output
    again = runner.invoke(app, ["docs", "--root", str(repo_copy), "--check"])
    assert again.exit_code == 0, again.output


def test_a_dose_sweep_is_credited_only_to_the_weights_that_ran_it():
    from live_restore.experiments.model_cards import _dose_scores

    model = shipped_models()["denoise"]
    arm = {"label": "Confocal", "model": "denoise", "model_version": model.checksum,
           "recommended_dose": 10.0, "doses": [10.0], "dose_reduction_factor": 10.0,
           "target": {"metric": "ssim", "text": "ssim>=0.9"}, "restored": {"ssim": [0.95]}}
    same = {"per_modality": {"Confocal": arm}}
    older = {"per_modality": {"Confocal": arm | {"model_version": "0123456789abcdef"}}}
    unversioned = {"per_modality": {"Confocal": {k: v for k, v in arm.items()
                                                 if k != "model_version"}}}
    rows = _dose_scores(model, {"a": same, "b": older, "c": unversioned})
    assert [row[0] for row in rows] == ["[`a`](../benchmarks.md#a)"]

"""The shipped weights prove themselves: every run under weights/ loads with
`<Class>.load_from_checkpoint` alone and reproduces the test metrics its metrics.json records, on
the test file regenerated here by the repo's deterministic generator (the command that wrote it,
`data_files.command("test", ...)`, gives the same lattices on any machine: its fingerprint is
checked first). A missing, stale or foreign checkpoint fails; so does a README that names a
file the repo does not hold."""
import json
import re
import subprocess
from pathlib import Path

import pytest
import torch

import data_files
import generate_ising
import hamiltonians
import ising
import runs

ROOT = Path(__file__).resolve().parents[1]
RUNS = sorted((ROOT / "weights").rglob("metrics.json"))


def test_weights_folder_holds_runs():
    assert len(RUNS) >= 7, "weights/ should hold the shipped runs (README: Trained weights)"


@pytest.fixture(scope="module")
def test_files(tmp_path_factory):
    """The standard test file of each Hamiltonian, regenerated (cached per Hamiltonian)."""
    made = {}

    def get(hamiltonian: str) -> Path:
        if hamiltonian not in made:
            folder = tmp_path_factory.mktemp(f"test_{hamiltonian}")
            q = hamiltonians.builtin(hamiltonian).q
            generate_ising.main([*data_files.command("test", folder, hamiltonian, q=q), "--no_progress"])
            made[hamiltonian] = Path(data_files.path("test", folder, q=q))
        return made[hamiltonian]

    return get


@pytest.mark.parametrize("metrics_path", RUNS, ids=[str(p.parent.relative_to(ROOT)) for p in RUNS])
def test_shipped_run_reproduces_its_test_metrics(metrics_path, test_files):
    metrics = json.loads(metrics_path.read_text())
    ckpt = metrics_path.parent / "best.ckpt"
    assert ckpt.is_file(), f"{ckpt} is missing: the weights must ship with their metrics"
    assert metrics["best_checkpoint"] == "best.ckpt"
    test_path = test_files(metrics["config"]["hamiltonian"])
    assert Path(metrics["data"]["test_path"]).name == test_path.name
    assert data_files.fingerprint(test_path) == metrics["data"]["test_fingerprint"], \
        "the run was tested on other lattices than the standard test file"
    model = runs.model_class(metrics["class"]).load_from_checkpoint(str(ckpt), map_location="cpu").eval()
    with data_files.open_h5(test_path) as f:
        grids = f["ising_grids"][()]
    true = hamiltonians.builtin(metrics["config"]["hamiltonian"]).energy(grids)
    with torch.no_grad():
        pred = runs.predict(model, grids)
    assert len(pred) == metrics["test_n_samples"]
    assert ising.centred_rmse(pred, true) == pytest.approx(metrics["test_rmse_centred"], rel=1e-4)
    assert ising.rmse(pred, true) == pytest.approx(metrics["test_rmse"], rel=1e-4)


def _tracked() -> set[str]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("not a git checkout")
    return set(out.stdout.splitlines())


def _named_paths(readme: Path):
    """Link targets of a Markdown file (relative to it) and `code` paths under the shipped folders
    (relative to the repo root), as repo-relative paths."""
    text = readme.read_text()
    for target in re.findall(r"\]\(([^)#\s]+)\)", text):
        if not target.startswith(("http://", "https://", "mailto:")):
            yield (readme.parent / target.replace("%20", " ")).resolve().relative_to(ROOT).as_posix()
    for path in re.findall(r"`((?:weights|results|images|notebooks|benchmarks)/[^`\s*<>]+)`", text):
        if not path.startswith("results/demo"):  # written by make demo, not shipped
            yield path.rstrip("/.,:;")


def test_every_file_the_readme_names_ships():
    """Every file or folder a README links or names under the shipped folders is tracked by git
    (an ignored file exists only on the machine that made it)."""
    tracked = _tracked()
    for readme in [ROOT / "README.md", *sorted(ROOT.glob("*/README.md")), *sorted(ROOT.glob("results/*/README.md"))]:
        for path in _named_paths(readme):
            assert path in tracked or any(t.startswith(path + "/") for t in tracked), \
                f"{readme.relative_to(ROOT)} names {path}, which a clone of the repo does not have"

"""The sequence models on a spin-glass instance (hamiltonian EA): training, loading back, leaks, refusals.

A spin-glass file records its instance (couplings J_h, J_v) in its attributes; a run trained on it
records the instance as the hyper-parameter `instance`, and everything that loads the run (runs.py,
evaluate.py, thermodynamics.py) rebuilds the very instance from it (`model.system`, `Run.system`).
The files here are tiny (4 x 4, a few hundred lattices, through the real generator); the runs a few
batches of hidden size 8: they test the plumbing and the guarantees, not the physics of a trained model.
"""
import json

import numpy as np
import pytest
import torch

import energy_trainer
import evaluate
import inverse_ising
import hamiltonians
import probability_trainer
import runs as runs_module
import spin_glass
import thermodynamics as th
from conftest import assert_joint_never_reads_its_own_spin, run_cli, user_error
from energy_models import EnergyModel
from ising import snake_permutation
from probability_models import ProbabilityModel
from sequence_blocks import conditional_energy, grids_to_sequences

N_X = N_Y = 4
BETA = 0.5
SEED = 3                                     # the disorder seed of the instance the runs learn
TINY = ["--hidden_size", "8", "--max_epochs", "1", "--batch_size", "64", "--limit_train_batches", "2",
        "--limit_val_batches", "1", "--limit_test_batches", "2", "--accelerator", "cpu", "--no-progress_bar",
        "--threads", "1"]
KINDS = {  # run -> (trainer, flags, folder under the output dir)
    "causal": (probability_trainer, [], "probability/GRU_1L_1H_hid8"),
    "energy": (energy_trainer, [], "energy/GRU_1L_1H_hid8"),
    "joint": (probability_trainer, ["--two_d", "--bidirectional", "--joint"], "probability/2D_GRU_1L_1H_Bi_Joint_hid8"),
}


def instance(seed=SEED, n_x=N_X, n_y=N_Y):
    return spin_glass.EdwardsAnderson.standard(n_x, n_y, seed)


@pytest.fixture(scope="module")
def files(ising_file):
    """Tiny EA files of the instance (train, val, test), of another instance and size, and an Ising file."""
    def make(name, n, seed, system=None, **kw):
        return ising_file(name, betas=(BETA,), n_samples=n, seed=seed, burn_in=50,
                          hamiltonian=system or instance(), **kw)

    return {
        "train": make("train_data.hdf5", 256, 1),
        "val": make("val_data.hdf5", 64, 2),
        "test": make("test_data.hdf5", 128, 3),
        "other_instance": make("other_instance.hdf5", 64, 4, instance(SEED + 1)),
        "other_size": make("other_size.hdf5", 64, 5, instance(SEED, 4, 6), n_x=4, n_y=6),
        "ising": make("ising.hdf5", 64, 6, "ISING1"),
    }


def train(kind, files, out, **override):
    trainer, flags, _ = KINDS[kind]
    paths = {"train_path": files["train"], "val_paths": files["val"], "test_path": files["test"], **override}
    argv = [a for k, v in paths.items() for a in (f"--{k}", str(v))]
    return trainer.main([*argv, *TINY, *flags, "--output_dir", str(out)])


@pytest.fixture(scope="module")
def ea_runs(files, tmp_path_factory):
    """The three runs (causal, energy, joint conditional), trained end to end on the tiny EA files."""
    out = tmp_path_factory.mktemp("ea_runs")
    for kind in KINDS:
        metrics = train(kind, files, out)
        assert np.isfinite(metrics["test_rmse_centred"]), kind
    return {kind: out / folder for kind, (_, _, folder) in KINDS.items()} | {"root": out}


def random_grids(b, seed=0, n_x=N_X, n_y=N_Y):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 2, (b, n_x, n_y), generator=g) * 2 - 1).float()


# ----------------------------------------------------------------------------- end to end, loaded back
@pytest.mark.parametrize("kind", list(KINDS))
def test_runs_load_back_with_their_instance(ea_runs, files, kind):
    run = runs_module.read_run(ea_runs[kind])
    model = runs_module.load_model(run)
    assert hamiltonians.same_system(run.system, instance()) and hamiltonians.same_system(model.system, instance())
    assert not hamiltonians.same_system(model.system, instance(SEED + 1))
    assert run.metrics["config"]["instance"]["J_h"] == instance().J_h_array.tolist()
    # the checkpoint alone carries it too (every hyper-parameter is there)
    cls = type(model)
    again = cls.load_from_checkpoint(str(run.checkpoint), map_location="cpu", weights_only=True)
    assert hamiltonians.same_system(again.system, instance())
    # its predictions of the instance's lattices, through the one prediction loop
    import h5py

    with h5py.File(files["test"], "r") as f:
        grids, true = f["ising_grids"][:64], f["true_energies"][:64]
    np.testing.assert_allclose(model.system.energy(grids), true, atol=1e-4)   # the file's E is the instance's
    pred = runs_module.predict(model, grids)
    assert pred.shape == (64,) and np.isfinite(pred).all()


def test_test_metrics_use_the_instances_energy(ea_runs, files):
    """The test metrics' true energies are the instance's (not ISING1's): the probability model's
    `true_energies` of the file's lattices are the file's own true_energies."""
    import h5py

    model = runs_module.load_model(ea_runs["causal"])
    with h5py.File(files["test"], "r") as f:
        grids, true = f["ising_grids"][:32], f["true_energies"][:32]
    seq = grids_to_sequences(torch.as_tensor(grids), "rows")
    np.testing.assert_allclose(model.true_energies(seq).numpy(), true, atol=1e-4)


def test_ising_models_are_unchanged():
    """No instance, no position codes: an Ising model's weights are what they were."""
    model = ProbabilityModel(hidden_size=8)
    assert model.hparams.instance is None and model.n_sites is None
    assert not any("positions" in k for k in model.state_dict())
    ea = ProbabilityModel(hidden_size=8, n_x=N_X, n_y=N_Y, hamiltonian="EA",
                          instance=hamiltonians.instance_attrs(instance()))
    assert any("positions" in k for k in ea.state_dict())


# ----------------------------------------------------------------------------- leak tests on the instance
def test_causal_model_of_the_instance_never_sees_the_future(ea_runs):
    """log q of site t reads s_0 .. s_{t-1} only: the trained EA run, and a fresh 2D one with attention."""
    trained = runs_module.load_model(ea_runs["causal"])
    fresh = ProbabilityModel(hidden_size=8, attention=True, n_heads=2, two_d=True, n_x=N_X, n_y=N_Y, beta=BETA,
                             hamiltonian="EA", instance=hamiltonians.instance_attrs(instance())).eval()
    length = N_X * N_Y
    for model in (trained, fresh):
        seq = grids_to_sequences(random_grids(3, seed=1), "rows")
        for order in model.orders:
            z, _ = model.logits(seq, order)                    # z[:, j]: logit of s_{j+1} from s_0..s_j
            for t in (1, 6, 11, length - 1):
                changed = seq.clone()
                changed[:, t:] = grids_to_sequences(random_grids(3, seed=t), "rows")[:, t:]
                changed[:, t] = -seq[:, t]
                z2, _ = model.logits(changed, order)
                torch.testing.assert_close(z2[:, :t], z[:, :t], rtol=0, atol=1e-6)
                if t < length - 1:                             # the test can fail: later logits do move
                    assert (z2[:, t:] - z[:, t:]).abs().max() > 1e-5


def test_sampling_the_instance_gives_its_own_log_q(ea_runs):
    """Spin by spin (one recurrent step per site, positions given one at a time) is the same model as
    the whole sequence at once: `sample`'s log q is `log_prob` of the draws."""
    model = runs_module.load_model(ea_runs["causal"])
    grids, log_q = model.sample(200, seed=0)
    assert grids.shape == (200, N_X, N_Y)
    with torch.no_grad():
        np.testing.assert_allclose(model.log_prob(torch.as_tensor(grids)).double().numpy(), log_q, atol=1e-4)


@pytest.mark.parametrize("cfg", [dict(), dict(attention=True, n_heads=2, num_layers=2), dict(two_d=True)])
def test_conditional_model_of_the_instance_never_reads_its_own_spin(cfg):
    torch.manual_seed(0)
    model = ProbabilityModel(hidden_size=8, bidirectional=True, n_x=N_X, n_y=N_Y, beta=BETA, hamiltonian="EA",
                             instance=hamiltonians.instance_attrs(instance()), **cfg).eval()
    length = N_X * N_Y
    seq = grids_to_sequences(random_grids(3, seed=2), "rows")
    for order in model.orders:
        z, _ = model.logits(seq, order)
        for i in (0, 5, 11, length - 1):
            flipped = seq.clone()
            flipped[:, i] = -flipped[:, i]
            z2, _ = model.logits(flipped, order)
            torch.testing.assert_close(z2[:, i], z[:, i], rtol=0, atol=1e-6)
            others = torch.ones(length, dtype=torch.bool)
            others[i] = False
            assert (z2[:, others] - z[:, others]).abs().max() > 1e-5


def test_joint_model_of_the_instance_never_reads_its_own_spin(ea_runs):
    assert_joint_never_reads_its_own_spin(runs_module.load_model(ea_runs["joint"]), random_grids(3, seed=3), moved=1e-5)


def test_exact_conditionals_of_the_instance_give_its_energy():
    """logit p(s_i = +1 | rest) = 2 beta h_i with h_i = sum_j J_ij s_j: the conditional energy is the
    instance's energy exactly (and not that of another instance): the formula the conditional model uses."""
    system, grids = instance(), random_grids(5, seed=4).numpy()
    nb = system.neighbours(N_X, N_Y)
    flat = grids.reshape(5, -1)
    h = np.stack([[sum(w * s[j] for j, w in nb[i].items()) for i in range(N_X * N_Y)] for s in flat])
    perm = snake_permutation(N_X, N_Y, "rows")
    logits = torch.as_tensor(2 * BETA * h[:, perm])
    e = conditional_energy(logits, torch.as_tensor(flat[:, perm]), BETA).numpy()
    np.testing.assert_allclose(e, system.energy(grids), atol=1e-9)
    assert np.abs(e - instance(SEED + 1).energy(grids)).max() > 1


# ----------------------------------------------------------------------------- refusals: one line, exit 2
@pytest.mark.parametrize("role", ["val_paths", "test_path"])
@pytest.mark.parametrize("wrong", ["other_instance", "other_size"])
def test_trainer_refuses_files_of_another_instance_or_size(files, tmp_path, capsys, role, wrong):
    trainer, flags, _ = KINDS["causal"]
    paths = {"train_path": files["train"], "val_paths": files["val"], "test_path": files["test"], role: files[wrong]}
    argv = [a for k, v in paths.items() for a in (f"--{k}", str(v))]
    code, err = run_cli(trainer.main, [*argv, *TINY, *flags, "--output_dir", tmp_path / "out"], capsys)
    user_error(code, err, files[wrong].name, files["train"].name, usage=True)
    assert not (tmp_path / "out").exists()


def test_trainer_refuses_the_extensive_model_on_an_instance(files, tmp_path, capsys):
    argv = ["--train_path", files["train"], "--val_paths", files["val"], "--test_path", files["test"],
            "--architecture", "ednn", "--output_dir", tmp_path / "out", "--max_epochs", "1"]
    code, err = run_cli(energy_trainer.main, argv, capsys)
    user_error(code, err, "--architecture ednn", "disorder_ednn.py", usage=True)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("wrong", ["other_instance", "other_size"])
def test_evaluate_refuses_lattices_of_another_instance_or_size(ea_runs, files, tmp_path, capsys, wrong):
    argv = ["--runs", ea_runs["root"], "--eval_path", files[wrong], "--out", tmp_path / "res",
            "--images", tmp_path / "img", "--n", "100"]
    code, err = run_cli(evaluate.main, argv, capsys)
    assert code == 2 and "Traceback" not in err
    line = [x for x in err.splitlines() if x.startswith("error:")]
    assert len(line) == 1 and files[wrong].name in line[0]
    assert not (tmp_path / "res").exists()


@pytest.mark.parametrize("wrong", ["other_instance", "ising"])
def test_a_teacher_labels_lattices_of_its_own_instance_only(ea_runs, files, tmp_path, capsys, wrong):
    """inverse_ising.py --teacher: the joint model of one instance refuses another instance's (or the Ising
    model's) lattices of its size in one line, and writes nothing."""
    argv = ["--train_path", files[wrong], "--teacher", ea_runs["joint"], "--out", tmp_path / "fit.json"]
    user_error(*run_cli(inverse_ising.main, argv, capsys), "--teacher", "EA_4x4_seed3")
    assert not (tmp_path / "fit.json").exists()


def test_a_model_of_an_instance_refuses_lattices_of_another_size(ea_runs):
    model = runs_module.load_model(ea_runs["energy"])
    with pytest.raises(ValueError, match="4 x 4 spin-glass instance EA_4x4_seed3.*not 4 x 6"):
        runs_module.predict(model, np.ones((2, 4, 6), np.int8))


def test_other_sizes_are_a_lattice_problem(ea_runs):
    """transfer.py asks `runs.lattice_problem` which sizes a run reads: an instance's run, its own only."""
    config = runs_module.read_run(ea_runs["causal"]).metrics["config"]
    assert runs_module.lattice_problem(config, N_X, N_Y) is None
    assert "spin-glass instance" in runs_module.lattice_problem(config, 8, 8)


def test_thermodynamics_refuses_monte_carlo_lattices_of_another_instance(ea_runs, files, tmp_path, capsys):
    argv = ["--run", ea_runs["causal"], "--n_samples", "100", "--out", tmp_path / "x", "--mc_path",
            files["other_instance"], "--no-progress_bar"]
    user_error(*run_cli(th.main, argv, capsys), files["other_instance"].name)
    assert not (tmp_path / "x").exists()


def test_bad_instance_hyper_parameters():
    with pytest.raises(ValueError, match="needs its couplings"):
        EnergyModel(hamiltonian="EA", n_x=N_X, n_y=N_Y)
    with pytest.raises(ValueError, match="4 x 4 lattice, but n_x, n_y = 8, 8"):
        EnergyModel(hamiltonian="EA", instance=hamiltonians.instance_attrs(instance()))
    with pytest.raises(ValueError, match="drop instance"):
        EnergyModel(hamiltonian="ISING1", n_x=N_X, n_y=N_Y, instance=hamiltonians.instance_attrs(instance()))


# ----------------------------------------------------------------------------- scores and thermodynamics
def test_evaluate_scores_the_runs_by_the_protocol(ea_runs, files, tmp_path, capsys):
    """The same protocol as Ising: drawn with replacement, centred RMSE against the file's energies."""
    rows, (grids, energies, _) = evaluate.evaluate_runs(ea_runs["root"], files["test"], n=300, progress=False)
    assert len(rows) == 3 and all(np.isfinite(r["rmse_centred"]) for r in rows)
    model = runs_module.load_model(ea_runs["causal"])
    row = next(r for r in rows if r["run"].endswith("probability/GRU_1L_1H_hid8"))
    assert row["instance"] == "EA_4x4_seed3" and evaluate.reference_rmse(row) is None   # no published figure
    assert evaluate.describe(row).endswith("spin-glass instance EA_4x4_seed3")
    pred = runs_module.predict(model, grids)
    assert row["rmse_centred"] == pytest.approx(float(np.sqrt(np.mean(((pred - pred.mean()) -
                                                                        (energies - energies.mean())) ** 2))))
    code, _ = run_cli(evaluate.main, ["--runs", ea_runs["root"], "--eval_path", files["test"], "--out",
                                      tmp_path / "res", "--images", tmp_path / "img", "--n", "300"], capsys)
    assert code == 0 and len(json.loads((tmp_path / "res" / "leaderboard.json").read_text())) == 3


def _enumerated(system, beta):
    """(log Z, <E>, Var E) of the whole lattice by summing over every state."""
    e = system.energy(spin_glass.all_states(system.n_x, system.n_y))
    log_w = -beta * e
    log_z = float(np.logaddexp.reduce(log_w))
    p = np.exp(log_w - log_z)
    mean = float(p @ e)
    return log_z, mean, float(p @ (e - mean) ** 2)


def test_exact_reference_of_an_instance_is_its_enumeration():
    """thermodynamics' exact F, U, C of a 4 x 4 instance (the transfer matrix, through the object) equal
    the sum over its 2^16 states and `spin_glass.enumerated_distribution`; a slightly other beta or
    another instance differs (the check has power)."""
    system, s = instance(), N_X * N_Y
    for beta in (0.3, BETA, 1.0):
        log_z, mean, var = _enumerated(system, beta)
        x = th.exact_values(N_X, N_Y, beta, system)
        assert x["F_exact_per_site"] == pytest.approx(-log_z / beta / s, rel=1e-10)
        assert x["U_exact_per_site"] == pytest.approx(mean / s, rel=1e-8)
        assert x["C_exact_per_site"] == pytest.approx(beta ** 2 * var / s, rel=1e-6)
        levels, p = spin_glass.enumerated_distribution(system.J_h_array, system.J_v_array, beta)
        ee, pp = th.exact_energy_distribution(N_X, N_Y, beta, system)
        np.testing.assert_allclose(ee, levels) and np.testing.assert_allclose(pp, p, atol=1e-12)
        # power: 1% off in beta, or another instance, is far outside these tolerances
        assert abs(th.exact_values(N_X, N_Y, 1.01 * beta, system)["F_exact_per_site"] * 1.01 * beta * s
                   + log_z) > 1e-4 * abs(log_z)
        assert abs(th.exact_values(N_X, N_Y, beta, instance(SEED + 1))["U_exact_per_site"] - mean / s) > 1e-3


def test_thermodynamics_of_an_instance_against_its_exact_values():
    """Importance sampling with a causal model of a 3 x 3 instance as proposal (its head zeroed: q is
    uniform, a proposal with full support and known log q): F/N within 4 standard errors of the
    instance's exact value (enumerated), which a beta 5% off is not; the same draws weighted with the
    ferromagnet's energy (the instance lost) give no estimate or a wrong one."""
    system, beta, n = instance(SEED, 3, 3), 0.3, 9
    model = ProbabilityModel(hidden_size=8, n_x=3, n_y=3, beta=beta, hamiltonian="EA",
                             instance=hamiltonians.instance_attrs(system)).eval()
    torch.nn.init.zeros_(model.branches["rows"].head.weight)
    torch.nn.init.zeros_(model.branches["rows"].head.bias)
    report, arrays = th.thermodynamics(model, 50_000, betas=[beta], seed=1)
    row = next(r for r in report["rows"] if r["beta"] == beta)
    exact = -_enumerated(system, beta)[0] / beta / n
    assert row["F_exact_per_site"] == pytest.approx(exact, rel=1e-10)
    assert row["F_err"] < 5e-3 and abs(row["F_per_site"] - exact) < 4 * row["F_err"]
    assert abs(th.exact_values(3, 3, 1.05 * beta, system)["F_exact_per_site"] - exact) > 8 * row["F_err"]
    wrong = th.estimates(th.lattice_energy(arrays["grids"], "ISING1"), arrays["log_q"], beta, n)
    assert wrong["F_per_site"] is None or abs(wrong["F_per_site"] - exact) > 10 * row["F_err"]
    assert report["hamiltonian"] == "EA" and report["instance"]["J_h"] == system.J_h_array.tolist()
    assert hamiltonians.same_system(th.report_system(report), system)
    np.testing.assert_allclose(arrays["energies"], system.energy(arrays["grids"]))


def test_thermodynamics_cli_on_the_trained_run(ea_runs, files, tmp_path):
    out = tmp_path / "thermo"
    argv = ["--run", str(ea_runs["causal"]), "--n_samples", "2000", "--out", str(out), "--mc_path",
            str(files["train"]), "--no-progress_bar", "--betas", str(BETA)]
    assert th.main(argv) == 0
    report = json.loads((out / "thermo.json").read_text())
    row = next(r for r in report["rows"] if r["beta"] == BETA)
    assert row["F_exact_per_site"] == pytest.approx(-_enumerated(instance(), BETA)[0] / BETA / (N_X * N_Y))
    assert (out / "thermo.md").read_text().startswith("spin-glass instance EA_4x4_seed3")

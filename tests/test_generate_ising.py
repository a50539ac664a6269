"""Tests of generate_ising.py: Hamiltonians, exact sampling, HDF5 output, CLI errors.

Physics is checked against hand-computed lattices, full enumeration and the exact finite-lattice
partition function; statistical checks use a chi-square goodness-of-fit test whose threshold
ALPHA is fixed here in advance (seeds are fixed, so the outcomes are reproducible).
"""
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import generate_ising as gi
import metropolis
import sampler
import ising
import potts
from ising import chi_square_test

ROOT = Path(__file__).resolve().parents[1]
ALPHA = 1e-4          # chi-square p-value threshold, fixed before looking at any result
MIN_EXPECTED = 5.0    # bins with fewer expected counts are merged


# ------------------------------------------------------------------ helpers (exact physics)
def chi_square_p(sample_energies, levels, probs):
    """Goodness-of-fit p-value of sampled energies against the exact law (sparse bins merged)."""
    idx = np.searchsorted(levels, sample_energies)
    assert np.all(levels[np.clip(idx, 0, len(levels) - 1)] == sample_energies), "energy not an allowed level"
    obs = np.bincount(idx, minlength=len(levels)).astype(float)
    return chi_square_test(obs, probs, min_expected=MIN_EXPECTED)[2]


def read(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in f}, dict(f.attrs)


def test_threefry_known_answers():
    # Known-answer vectors of Threefry-2x32-20 (Random123 / JAX test suite)
    cases = [((0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
             ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
             ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0))]
    for key, ctr, want in cases:
        got = metropolis.threefry2x32(np.uint32(key[0]), np.uint32(key[1]), np.uint32(ctr[0]), np.uint32(ctr[1]))
        assert (int(got[0]), int(got[1])) == want
        import jax.numpy as jnp
        gj = metropolis.threefry2x32(jnp.uint32(key[0]), jnp.uint32(key[1]), jnp.uint32(ctr[0]), jnp.uint32(ctr[1]))
        assert (int(gj[0]), int(gj[1])) == want


# ------------------------------------------------------------ exactness of the samplers
EXACT_BETAS = (0.0, 0.2, 0.44, 0.8)
EXACT_CASES = [  # (model, algorithm, n_x, n_y); the first two are fast, the others slow
    ("ISING1", "checkerboard", 4, 4),
    ("ISING2", "checkerboard", 4, 4),
    pytest.param("ISING1", "single", 4, 4, marks=pytest.mark.slow),
    pytest.param("ISING2", "single", 4, 4, marks=pytest.mark.slow),
    pytest.param("ISING1", "checkerboard", 2, 6, marks=pytest.mark.slow),
    pytest.param("ISING2", "checkerboard", 2, 6, marks=pytest.mark.slow),
    pytest.param("ISING1", "checkerboard", 3, 5, marks=pytest.mark.slow),   # odd: greedy 3+ colours
    pytest.param("ISING2", "checkerboard", 3, 5, marks=pytest.mark.slow),
    pytest.param("ISING2", "single", 2, 6, marks=pytest.mark.slow),
]


@pytest.mark.parametrize("model,algorithm,n_x,n_y", EXACT_CASES)
def test_energy_histogram_matches_boltzmann(tmp_path, model, algorithm, n_x, n_y):
    """One sample per independent chain (n_chains = n_samples), so the samples are i.i.d."""
    n = 10000
    path = gi.generate(tmp_path / "x.hdf5", hamiltonian=model, n_x=n_x, n_y=n_y, betas=EXACT_BETAS, n_samples=n,
                       n_chains=n, burn_in=200, thin=1, random_seed=5, algorithm=algorithm, progress=False)
    d, _ = read(path)
    np.testing.assert_array_equal(d["true_energies"], ising.energy(d["ising_grids"], model).astype(np.float32))
    for b in EXACT_BETAS:
        sel = np.isclose(d["beta"], b)
        assert sel.sum() == n
        levels, probs = ising.enumerated_distribution(n_x, n_y, b, model)
        p = chi_square_p(d["true_energies"][sel].astype(np.float64), levels, probs)
        assert p > ALPHA, f"{model} {algorithm} {n_x}x{n_y} beta={b}: chi-square p={p:.2e}"


@pytest.mark.parametrize("model,n_x,n_y", [("ISING2", 4, 4), pytest.param("ISING1", 3, 5, marks=pytest.mark.slow)])
def test_sparse_field_path_matches_boltzmann(tmp_path, monkeypatch, model, n_x, n_y):
    """Lattices above DENSE_MAX_SITES gather neighbours instead of dense products: check that path too."""
    monkeypatch.setattr(sampler, "DENSE_MAX_SITES", 0)
    n = 10000
    path = gi.generate(tmp_path / "x.hdf5", hamiltonian=model, n_x=n_x, n_y=n_y, betas=(0.3, 0.6), n_samples=n,
                       n_chains=n, burn_in=200, thin=1, random_seed=6, progress=False)
    d, _ = read(path)
    np.testing.assert_array_equal(d["true_energies"], ising.energy(d["ising_grids"], model).astype(np.float32))
    for b in (0.3, 0.6):
        sel = np.isclose(d["beta"], b)
        levels, probs = ising.enumerated_distribution(n_x, n_y, b, model)
        p = chi_square_p(d["true_energies"][sel].astype(np.float64), levels, probs)
        assert p > ALPHA, f"sparse {model} {n_x}x{n_y} beta={b}: chi-square p={p:.2e}"


@pytest.mark.parametrize("model,n_x,n_y", [("ISING1", 4, 6), pytest.param("ISING2", 3, 5, marks=pytest.mark.slow)])
def test_dense_and_gather_fields_give_the_same_bits(model, n_x, n_y):
    """The two local-field paths are exact in float32, so a seed gives the same chains either way."""
    out = []
    for dense in (True, False):
        sm = gi.Sampler(n_x, n_y, model, (0.0, 0.3, 0.7), 20, 9, dense=dense)
        sm.burn(7)
        es, acc = (np.asarray(x) for x in sm.trace(5))
        spins, energies = (np.asarray(x) for x in sm.produce(3, 2))
        out.append((es, acc, spins, energies))
    for a, b in zip(*out):
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("algorithm", gi.ALGORITHMS)
@pytest.mark.parametrize("n_x,n_y,n_chains", [(4, 6, 8), (4, 4, 4096)])   # 2nd: >= 4096 chains per device
def test_traced_energies_follow_the_state(algorithm, n_x, n_y, n_chains):
    """The energies trace() records (the series tau_int is measured on) are the energies of the
    lattices (ising.energy) after each sweep."""
    sm = gi.Sampler(n_x, n_y, "ISING2", (0.1, 0.5), n_chains, 3, algorithm)
    sm.burn(3)
    for n in (1, 4):
        es, acc = (np.asarray(x) for x in sm.trace(n))
        grids = np.concatenate([np.asarray(b) for b in sm.blocks], axis=1)[:, sm.lat.inverse]
        np.testing.assert_array_equal(es[-1], ising.energy(grids.reshape(-1, n_x, n_y), "ISING2").astype(np.float32))
        assert np.all(acc <= n * n_x * n_y) and acc.sum() > 0


@pytest.mark.slow
def test_large_lattice_mean_energy(tmp_path):
    """32 x 32 (sparse path): mean energy per chain vs the exact finite-lattice value."""
    n_chains, per_chain = 64, 16
    path = gi.generate(tmp_path / "big.hdf5", n_x=32, n_y=32, betas=(0.3,), n_samples=n_chains * per_chain,
                       n_chains=n_chains, burn_in=300, thin=4, random_seed=2, progress=False)
    d, _ = read(path)
    np.testing.assert_array_equal(d["true_energies"], ising.energy(d["ising_grids"]).astype(np.float32))
    means = np.bincount(np.arange(len(d["true_energies"])) % n_chains, weights=d["true_energies"]) / per_chain
    se = means.std(ddof=1) / np.sqrt(n_chains)
    assert abs(means.mean() - ising.exact_mean_energy(32, 32, 0.3)) < 4 * se


def test_chi_square_detects_wrong_temperature():
    """The goodness-of-fit check has power: exact samples at beta 0.40 fail against beta 0.44."""
    rng = np.random.default_rng(0)
    levels, p_true = ising.enumerated_distribution(4, 4, 0.40, "ISING1")
    sample = rng.choice(levels, size=20000, p=p_true)
    assert chi_square_p(sample, levels, p_true) > ALPHA
    _, p_other = ising.enumerated_distribution(4, 4, 0.44, "ISING1")
    assert chi_square_p(sample, levels, p_other) < ALPHA


@pytest.mark.slow
@pytest.mark.parametrize("beta", [0.25, 0.44])
def test_mean_energy_8x8_matches_exact_finite_lattice(tmp_path, beta):
    n_chains, per_chain = 256, 64
    path = gi.generate(tmp_path / "e.hdf5", n_x=8, n_y=8, betas=(beta,), n_samples=n_chains * per_chain,
                       n_chains=n_chains, random_seed=3, progress=False)
    d, attrs = read(path)
    # sample i belongs to chain (i // n_betas) % n_chains (documented sample order)
    chain = (np.arange(len(d["true_energies"])) // 1) % n_chains
    means = np.bincount(chain, weights=d["true_energies"]) / per_chain
    se = means.std(ddof=1) / np.sqrt(n_chains)
    exact = ising.exact_mean_energy(8, 8, beta)
    assert abs(means.mean() - exact) < 4 * se, (means.mean(), exact, se)
    assert abs(d["avg_E"][0] - exact) < 4 * se
    assert se < 0.02 * abs(exact)   # the check is sharp enough to matter


# ----------------------------------------------------------------------- HDF5 output
def test_layout_dtypes_and_attributes(ising_file):
    betas = (0.1, 0.25, 0.5)
    path = ising_file("layout.hdf5", betas=betas, n_samples=50, n_x=4, n_y=6, hamiltonian="ISING2", n_chains=8)
    with h5py.File(path, "r") as f:
        assert set(f.keys()) == {"ising_grids", "true_energies", "beta", "avg_E"}
        g, e, b, a = f["ising_grids"], f["true_energies"], f["beta"], f["avg_E"]
        assert g.shape == (150, 4, 6) and g.dtype == np.int8
        assert e.shape == (150,) and e.dtype == np.float32
        assert b.shape == (150,) and b.dtype == np.float32
        assert a.shape == (3,) and a.dtype == np.float32
        assert g.chunks is not None and g.maxshape[0] is not None
        grids, energies, beta = g[()], e[()], b[()]
        attrs = dict(f.attrs)
        avg = a[()]
    assert set(np.unique(grids)) <= {-1, 1}
    np.testing.assert_array_equal(energies, ising.energy(grids, "ISING2").astype(np.float32))
    for k in ("hamiltonian", "n_x", "n_y", "betas", "n_chains", "burn_in_sweeps", "thin_sweeps", "algorithm",
              "random_seed", "acceptance_rate", "versions", "command"):
        assert k in attrs, k
    assert attrs["hamiltonian"] == "ISING2" and attrs["n_x"] == 4 and attrs["n_y"] == 6
    np.testing.assert_allclose(attrs["betas"], betas)
    assert attrs["n_chains"] == 8 and attrs["algorithm"] == "checkerboard" and attrs["random_seed"] == 0
    assert attrs["burn_in_sweeps"] == gi.DEFAULT_BURN_IN and attrs["thin_sweeps"] >= 1
    acc = attrs["acceptance_rate"]
    assert acc.shape == (3,) and np.all((acc > 0) & (acc < 1)) and acc[0] > acc[1] > acc[2]
    assert "jax" in json.loads(attrs["versions"])
    # interleaved order: beta cycles fastest, so every prefix is balanced over the betas
    np.testing.assert_allclose(beta, np.tile(np.float32(betas), 50))
    for b_i, b in enumerate(betas):
        np.testing.assert_allclose(avg[b_i], energies[np.isclose(beta, b)].mean(), rtol=1e-5)


def test_partial_last_slice_and_prefix(ising_file):
    # 10 samples per beta from 4 chains: slices of 4, 4 and a partial 2
    path = ising_file("partial.hdf5", betas=(0.2, 0.6), n_samples=10, n_chains=4)
    d, attrs = read(path)
    assert len(d["beta"]) == 20
    np.testing.assert_allclose(d["beta"], np.tile(np.float32([0.2, 0.6]), 10))
    assert attrs["n_chains"] == 4


def test_zero_burn_in(ising_file):
    """No burn-in: nothing to measure tau or acceptance on, so thin falls back to 1 and both are NaN."""
    d, attrs = read(ising_file("noburn.hdf5", n_samples=20, burn_in=0))
    assert attrs["burn_in_sweeps"] == 0 and attrs["thin_sweeps"] == 1
    assert np.isnan(attrs["acceptance_rate"]).all() and np.isnan(attrs["tau_int_sweeps"]).all()
    assert len(d["true_energies"]) == 20


def test_n_chains_default_never_exceeds_n_samples(ising_file):
    path = ising_file("few.hdf5", n_samples=3)
    _, attrs = read(path)
    assert attrs["n_chains"] == 3


def test_same_seed_identical_different_seed_differs(tmp_path):
    kw = dict(n_x=4, n_y=4, betas=(0.3, 0.5), n_samples=200, n_chains=16, burn_in=50, progress=False)
    a = gi.generate(tmp_path / "a.hdf5", random_seed=7, **kw)
    b = gi.generate(tmp_path / "b.hdf5", random_seed=7, **kw)
    c = gi.generate(tmp_path / "c.hdf5", random_seed=8, **kw)
    da, _ = read(a)
    db, _ = read(b)
    dc, _ = read(c)
    for k in da:
        assert da[k].tobytes() == db[k].tobytes(), k
    assert da["ising_grids"].tobytes() != dc["ising_grids"].tobytes()


@pytest.mark.slow
def test_result_independent_of_device_count(tmp_path):
    """Sharding over 1 or 3 XLA host devices gives the same file (per-chain counter-based RNG)."""
    outs = []
    for nd in (1, 3):
        out = tmp_path / f"d{nd}.hdf5"
        env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={nd}", JAX_PLATFORMS="cpu")
        code = ("import jax, generate_ising as gi, sys; assert len(jax.devices()) == %d; "
                "gi.main(sys.argv[1:])" % nd)
        subprocess.run([sys.executable, "-c", code, "--n_x", "4", "--n_y", "6", "--model", "ISING2",
                        "--n_beta_samples", "2", "--beta_min", "0.2", "--beta_max", "0.4", "--n_samples", "100",
                        "--n_chains", "5", "--burn_in", "20", "--filename", str(out), "--no_progress"],
                       check=True, cwd=ROOT, env=env, capture_output=True)
        outs.append(read(out)[0])
    for k in outs[0]:
        assert outs[0][k].tobytes() == outs[1][k].tobytes(), k


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("exc", [Interrupt, KeyboardInterrupt])
def test_interrupted_write_leaves_no_file(tmp_path, monkeypatch, exc):
    calls = {"n": 0}
    real = sampler._write_block

    def failing(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise exc("simulated interruption mid-write")
        return real(*args, **kw)

    monkeypatch.setattr(sampler, "_write_block", failing)
    target = tmp_path / "out.hdf5"
    with pytest.raises(exc):
        # a tiny block size forces several blocks
        gi.generate(target, n_x=4, n_y=4, n_samples=400, n_chains=8, burn_in=10, progress=False, block_bytes=256)
    assert calls["n"] == 2
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []      # the temporary file is gone too


# ------------------------------------------------------------------------------ CLI
def test_cli_writes_file(tmp_path, capsys):
    out = tmp_path / "cli.hdf5"
    assert gi.main(["--n_x", "4", "--n_y", "4", "--n_beta_samples", "3", "--beta_min", "0", "--beta_max", "0.5",
                    "--n_samples", "20", "--burn_in", "10", "--thin", "2", "--filename", str(out),
                    "--random_seed", "4", "--no_progress"]) == 0
    d, attrs = read(out)
    np.testing.assert_allclose(attrs["betas"], [0.0, 0.25, 0.5])
    assert attrs["thin_sweeps"] == 2 and attrs["burn_in_sweeps"] == 10 and attrs["random_seed"] == 4
    assert attrs["command"].startswith("generate_ising.py --n_x 4 --n_y 4 --n_beta_samples 3")
    acc = attrs["acceptance_rate"]
    assert 0.4 < acc[0] < 0.6 and acc[1] > acc[2] > 0   # beta = 0: c(0) = 1/2 (acceptance_scale)
    assert len(d["true_energies"]) == 60


def test_command_names_generate_ising_when_called_in_process(tmp_path, monkeypatch):
    """data_files.py calls main(argv) in its own process: the file still records a command that
    remakes it, not data_files.py's command line."""
    monkeypatch.setattr(sys, "argv", ["data_files.py", "--data_dir", str(tmp_path)])
    out = tmp_path / "in_process.hdf5"
    argv = ["--n_x", "4", "--n_y", "4", "--n_samples", "8", "--burn_in", "2", "--filename", str(out), "--no_progress"]
    assert gi.main(argv) == 0
    assert read(out)[1]["command"] == shlex.join(["generate_ising.py", *argv])


def test_single_flip_at_beta_zero_accepts_everything(ising_file):
    _, attrs = read(ising_file("b0.hdf5", betas=(0.0,), n_samples=16, algorithm="single", burn_in=4))
    assert attrs["acceptance_rate"][0] == 1.0


def test_checkerboard_mixes_at_beta_zero(ising_file):
    """Accepting every flip at beta = 0 would flip the whole lattice each sweep and never mix
    (consecutive samples exactly opposite); the scaled acceptance makes them independent."""
    n_chains = 64
    d, _ = read(ising_file("mix0.hdf5", betas=(0.0,), n_samples=n_chains * 20, n_chains=n_chains, thin=1,
                           burn_in=10, n_x=8, n_y=8))
    g = d["ising_grids"].reshape(20, n_chains, 64).astype(float)
    overlap = (g[1:] * g[:-1]).mean()          # 0 for independent lattices, -1 for full flips
    assert abs(overlap) < 0.05


def test_help_explains_defaults():
    r = subprocess.run([sys.executable, "generate_ising.py", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0
    assert "autocorrelation" in r.stdout and "--thin" in r.stdout and "--burn_in" in r.stdout


# each bad flag, and what the one error line must name (the flag or the value at fault), not its sentence
BAD = [
    (["--n_x", "1"], "--n_x"),
    (["--n_y", "0"], "--n_y"),
    (["--beta", "-0.1"], "beta"),
    (["--n_beta_samples", "3", "--beta_min", "0.5", "--beta_max", "0.1"], "--beta_min"),
    (["--n_beta_samples", "3", "--beta_min", "-0.5", "--beta_max", "0.1"], "beta"),
    (["--n_beta_samples", "3"], "--beta_min"),
    (["--n_samples", "0"], "--n_samples"),
    (["--n_samples", "-5"], "--n_samples"),
    (["--n_chains", "0"], "--n_chains"),
    (["--thin", "0"], "--thin"),
    (["--burn_in", "-1"], "--burn_in"),
    (["--random_seed", "-3"], "--random_seed"),
    (["--model", "ISING3"], "ISING3"),
    (["--q", "1"], "q"),
    (["--algorithm", "wolff"], "--algorithm"),
]


@pytest.mark.parametrize("extra,named", BAD)
def test_cli_rejects_bad_input(tmp_path, capsys, extra, named):
    out = tmp_path / "bad.hdf5"
    with pytest.raises(SystemExit) as e:
        gi.main(["--n_x", "4", "--n_y", "4", "--n_samples", "10", "--filename", str(out)] + extra)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("usage:") is False and "Traceback" not in "".join(err) and named in err[-1], err
    assert list(tmp_path.iterdir()) == []


def test_cli_rejects_missing_folder(tmp_path, capsys):
    out = tmp_path / "nope" / "x.hdf5"
    with pytest.raises(SystemExit) as e:
        gi.main(["--n_x", "4", "--n_y", "4", "--n_samples", "10", "--filename", str(out)])
    assert e.value.code != 0
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "nope").exists()


def test_cli_subprocess_bad_input_exit_code(tmp_path):
    r = subprocess.run([sys.executable, "generate_ising.py", "--beta", "-1", "--filename", str(tmp_path / "x.h5")],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode != 0 and "beta" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_generate_api_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="at least 2"):
        gi.generate(tmp_path / "x.hdf5", n_x=1, n_y=4, n_samples=4)
    with pytest.raises(ValueError, match="POTTS"):
        gi.generate(tmp_path / "x.hdf5", hamiltonian="POTTS", n_samples=4)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ a learned Hamiltonian (a run's table)
SHIPPED_EDNN = ROOT / "weights" / "energy" / "EDNN_F1_C1_hid16x2"


def test_cli_samples_a_runs_learned_energy_function(tmp_path):
    """--hamiltonian RUN_DIR: the file's energies are the run's own (its model on the stored lattices),
    on a size the run never saw, odd included, and the attributes name the run."""
    import torch

    import runs

    out = tmp_path / "learned.hdf5"
    assert gi.main(["--hamiltonian", str(SHIPPED_EDNN), "--n_x", "5", "--n_y", "6", "--beta", "0.4",
                    "--n_samples", "64", "--n_chains", "16", "--burn_in", "50", "--no_progress",
                    "--filename", str(out)]) == 0
    data, attrs = read(out)
    assert attrs["hamiltonian"] == str(SHIPPED_EDNN) and attrs["energy_function"] == "table"
    assert attrs["trained_on"] == "ISING1" and data["ising_grids"].shape == (64, 5, 6)
    with torch.no_grad():
        learned = runs.load_model(SHIPPED_EDNN).predict_energy(torch.as_tensor(data["ising_grids"])).double().numpy()
    np.testing.assert_allclose(data["true_energies"], learned, atol=1e-4)
    assert np.abs(data["true_energies"] - ising.energy(data["ising_grids"])).max() > 0  # learned, not the truth


def test_learned_hamiltonian_bad_input_is_one_line(tmp_path, capsys):
    for source, message in ((str(tmp_path / "nowhere"), "a run directory or a fit"),
                            (str(ROOT / "weights" / "probability" / "GRU_1L_1H_hid64"), "only the extensive model")):
        with pytest.raises(SystemExit) as e:
            gi.main(["--hamiltonian", source, "--filename", str(tmp_path / "x.hdf5")])
        assert e.value.code == 2 and message in capsys.readouterr().err
    with pytest.raises(ValueError, match="not tiled"):
        gi.validate(ising.Table.of(np.zeros(2 ** 16), focus=2, context=1), 5, 6, [0.3], 10)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------- the Potts model
POTTS_BETAS = (0.0, 0.6, 1.0, 1.6)       # q = 3: both sides of beta_c = 1.005
POTTS_CASES = [  # (q, n_x, n_y): exact law by enumeration up to 4^8 states, else the transfer matrix
    (3, 3, 3),                           # odd: greedy colouring
    (3, 4, 4),
    pytest.param(4, 2, 4, marks=pytest.mark.slow),
    pytest.param(3, 6, 2, marks=pytest.mark.slow),     # a 2-wide side: two bonds join each pair
]


def potts_law(q, n_x, n_y, beta):
    if q ** (n_x * n_y) <= 4 ** 8:
        return potts.enumerated_distribution(n_x, n_y, q, beta)
    return potts.exact_energy_distribution(n_x, n_y, q, beta)


@pytest.mark.parametrize("q,n_x,n_y", POTTS_CASES)
def test_potts_energy_histogram_matches_boltzmann(tmp_path, q, n_x, n_y):
    """Heat-bath colour updates against the exact law, one sample per independent chain."""
    n = 10000
    path = gi.generate(tmp_path / "p.hdf5", hamiltonian=potts.Potts(q), n_x=n_x, n_y=n_y, betas=POTTS_BETAS,
                       n_samples=n, n_chains=n, burn_in=200, thin=1, random_seed=7, progress=False)
    d, attrs = read(path)
    assert d["ising_grids"].dtype == np.int8 and d["ising_grids"].min() >= 0 and d["ising_grids"].max() == q - 1
    np.testing.assert_array_equal(d["true_energies"], potts.energy(d["ising_grids"]).astype(np.float32))
    assert (attrs["hamiltonian"], attrs["q"], attrs["algorithm"]) == (f"POTTS{q}", q, "heat-bath")
    for b in POTTS_BETAS:
        sel = np.isclose(d["beta"], b)
        p = chi_square_p(d["true_energies"][sel].astype(np.float64), *potts_law(q, n_x, n_y, b))
        assert p > ALPHA, f"Potts q={q} {n_x}x{n_y} beta={b}: chi-square p={p:.2e}"


def test_potts_gathered_counts_and_wrong_beta(tmp_path, monkeypatch):
    """Odd sides take the general colouring; above DENSE_MAX_SITES its counts are gathered: exact too, and
    the test has power: the same samples are rejected against the law at a 10% higher beta."""
    monkeypatch.setattr(sampler, "DENSE_MAX_SITES", 0)
    n, b = 10000, 1.0
    path = gi.generate(tmp_path / "p.hdf5", hamiltonian=potts.Potts(3), n_x=5, n_y=3, betas=(b,), n_samples=n,
                       n_chains=n, burn_in=200, thin=1, random_seed=8, progress=False)
    e = read(path)[0]["true_energies"].astype(np.float64)
    assert chi_square_p(e, *potts_law(3, 5, 3, b)) > ALPHA
    assert chi_square_p(e, *potts_law(3, 5, 3, 1.1 * b)) < ALPHA


def test_q2_potts_is_ising_at_half_beta(tmp_path):
    """delta(s, t) = (1 + s't')/2: E_Potts = (E_Ising - 2N)/2 and beta_Potts = 2 beta_Ising."""
    n, betas = 10000, (0.4, 0.88, 1.4)
    path = gi.generate(tmp_path / "p.hdf5", hamiltonian=potts.Potts(2), n_x=4, n_y=4, betas=betas, n_samples=n,
                       n_chains=n, burn_in=200, thin=1, random_seed=9, progress=False)
    d, _ = read(path)
    e_ising = ising.energy(potts.ising_spins(d["ising_grids"]))
    np.testing.assert_array_equal(d["true_energies"], (e_ising - 32) / 2)
    for b in betas:
        sel = np.isclose(d["beta"], b)
        levels, probs = ising.exact_energy_distribution(4, 4, b / 2)
        assert chi_square_p(e_ising[sel], levels, probs) > ALPHA, f"q=2 at beta {b}"


@pytest.mark.slow
def test_potts_8x8_energy_histogram_matches_transfer_matrix(tmp_path):
    """8 x 8, q = 3 (the largest lattice the transfer matrix takes in seconds), on both sides of
    beta_c: the histogram of one sample per independent chain against the exact P(E)."""
    betas, n = (0.8, 1.0, 1.2), 5000
    path = gi.generate(tmp_path / "p.hdf5", hamiltonian=potts.Potts(3), betas=betas, n_samples=n, n_chains=n,
                       burn_in=300, thin=1, random_seed=10, progress=False)      # tau_int(E) <= 4 sweeps here
    d, _ = read(path)
    for b in betas:
        e = d["true_energies"][np.isclose(d["beta"], b)].astype(np.float64)
        p = chi_square_p(e, *potts.exact_energy_distribution(8, 8, 3, b))
        assert p > ALPHA, f"Potts q=3 8x8 beta={b}: chi-square p={p:.2e}"


@pytest.mark.parametrize("extra,msg", [(["--q", "1"], "q must be an integer in 2"),
                                       (["--q", "3", "--algorithm", "single"], "heat-bath"),
                                       (["--q", "3", "--hamiltonian", "ISING2"], "drop --hamiltonian")])
def test_potts_cli_rejects_bad_input(tmp_path, capsys, extra, msg):
    with pytest.raises(SystemExit) as e:
        gi.main(["--n_x", "4", "--n_y", "4", "--n_samples", "10", "--filename", str(tmp_path / "bad.hdf5")] + extra)
    assert e.value.code != 0 and msg in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_potts_cli_writes_states(tmp_path):
    out = tmp_path / "p.hdf5"
    gi.main(["--q", "4", "--n_x", "5", "--n_y", "6", "--n_samples", "20", "--burn_in", "20", "--filename", str(out),
             "--no_progress"])
    d, attrs = read(out)
    assert d["ising_grids"].shape == (20, 5, 6) and set(np.unique(d["ising_grids"])) <= {0, 1, 2, 3}
    assert attrs["q"] == 4 and "--q 4" in attrs["command"]


def test_standard_potts_set(tmp_path):
    """`data_files.py --q 3`: the six roles, at the Potts set's betas, each file a q = 3 Potts file."""
    import data_files

    d = tmp_path / "potts3"
    assert data_files.main(["--data_dir", str(d), "--q", "3", "--n_train", "40", "--n_val", "20", "--n_test", "20",
                            "--n_eval", "2"]) == 0
    want = {"train_data.hdf5": [0.8], "val_data_beta_dot8.hdf5": [0.8], "val_data_beta_dot4.hdf5": [0.4],
            "val_data_beta_1dot6.hdf5": [1.6], "test_data.hdf5": [0.8], "eval_data.hdf5": list(np.linspace(0.4, 1.0, 20))}
    assert sorted(p.name for p in d.iterdir()) == sorted(want)
    for name, betas in want.items():
        meta = data_files.read_metadata(d / name)
        assert meta["q"] == 3 and meta["hamiltonian"] == "POTTS3" and np.allclose(meta["betas"], betas), name
    assert data_files.val_paths(d, q=3)[0] == str(d / "val_data_beta_dot8.hdf5")


# ------------------------------------------------------------------- Potts table Hamiltonians
def _binned(energies, beta, sample, bins=20):
    """Exact per-state energies (S,) -> (expected probabilities of `bins` bins of equal exact probability,
    observed counts of the sampled energies in them)."""
    order = np.argsort(energies)
    e = energies[order]
    w = np.exp(-beta * (e - e.min()))
    cdf = np.cumsum(w) / w.sum()
    cut = np.searchsorted(cdf, np.arange(1, bins) / bins)
    edges = 0.5 * (e[cut - 1] + e[cut])                         # between two neighbouring states' energies
    expected = np.diff(np.concatenate([[0.0], cdf[cut - 1], [1.0]]))
    return expected, np.bincount(np.searchsorted(edges, sample), minlength=bins).astype(float)


@pytest.mark.parametrize("n_x,n_y", [(3, 3), pytest.param(3, 4, marks=pytest.mark.slow)])
def test_potts_table_hamiltonian_matches_boltzmann(tmp_path, n_x, n_y):
    """A random q = 3 table of window energies (a learned Potts energy function's form), sampled by heat
    bath on the windows' colours, against the Boltzmann law of every state; power: rejected at 1.25 beta."""
    table = potts.PottsTable.of(np.random.default_rng(2).normal(0.0, 0.5, 3 ** 9), 3, "random")
    n, b = 10000, 1.0
    path = gi.generate(tmp_path / "t.hdf5", hamiltonian=table, n_x=n_x, n_y=n_y, betas=(b,), n_samples=n,
                       n_chains=n, burn_in=200, thin=1, random_seed=11, progress=False)
    d, attrs = read(path)
    np.testing.assert_allclose(d["true_energies"], potts.table_energy(d["ising_grids"], table), atol=1e-4)
    assert attrs["q"] == 3 and attrs["energy_function"] == "table" and attrs["hamiltonian"] == "random"
    exact = potts.table_energy(potts.all_states(n_x, n_y, 3), table)
    for beta, ok in ((b, True), (1.25 * b, False)):
        expected, observed = _binned(exact, beta, d["true_energies"].astype(np.float64))
        p = chi_square_test(observed, expected, min_expected=MIN_EXPECTED)[2]
        assert (p > ALPHA) == ok, (beta, p)


def test_potts_builtin_table_is_the_potts_model(tmp_path):
    """POTTS3 as its own table reproduces potts.energy and, sampled, the exact 4 x 4 P(E)."""
    table = potts.PottsTable.of(potts.builtin_table(3), 3, "POTTS3_table")
    g = np.random.default_rng(3).integers(0, 3, (50, 5, 7))
    np.testing.assert_array_equal(potts.table_energy(g, table), potts.energy(g))
    n = 10000
    path = gi.generate(tmp_path / "t.hdf5", hamiltonian=table, n_x=4, n_y=4, betas=(0.6, 1.2), n_samples=n,
                       n_chains=n, burn_in=200, thin=1, random_seed=12, progress=False)
    d, _ = read(path)
    for b in (0.6, 1.2):
        e = d["true_energies"][np.isclose(d["beta"], b)].astype(np.float64)
        assert chi_square_p(e, *potts.exact_energy_distribution(4, 4, 3, b)) > ALPHA, b


def test_the_file_says_how_independent_its_samples_are(tmp_path):
    """Thinned by the energy's tau, the stored samples of a chain near T_c are still correlated in |m|
    (16 x 16 at beta 0.44, checkerboard: tau_int(|m|) ~ 26 sweeps against the energy's ~9): the file
    records tau_int_stored_order well above 1 and above the energy's, and fewer effective samples than
    lattices. Thinned 10x more, the same measure reads ~1 (power: the figure follows the thinning, it is
    not a constant); with too few stored samples per chain it is NaN, not a claim of independence."""
    def attrs(name, thin, n_chains=16, n=4000):
        path = sampler.generate(tmp_path / name, hamiltonian="ISING1", n_x=16, n_y=16, betas=(0.44,), n_samples=n,
                                n_chains=n_chains, burn_in=300, thin=thin, random_seed=3, progress=False)
        with h5py.File(path, "r") as f:
            return {k: np.asarray(f.attrs[k]) for k in ("tau_int_stored_energy", "tau_int_stored_order",
                                                        "effective_samples", "thin_sweeps")}
    dense = attrs("dense.hdf5", None)
    assert dense["tau_int_stored_order"][0] > max(2.0, 1.3 * dense["tau_int_stored_energy"][0])
    assert dense["effective_samples"][0] == pytest.approx(4000 / dense["tau_int_stored_order"][0])
    sparse = attrs("sparse.hdf5", 10 * int(dense["thin_sweeps"]))
    assert sparse["tau_int_stored_order"][0] < 1.4 and sparse["effective_samples"][0] > 2800
    short = attrs("short.hdf5", None, n_chains=400)                  # 10 samples per chain
    assert np.isnan(short["tau_int_stored_order"][0]) and np.isnan(short["effective_samples"][0])

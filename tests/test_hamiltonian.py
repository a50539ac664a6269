"""Table Hamiltonians (ising.py) and their exact expansion into couplings (hamiltonian.py): the
built-in Hamiltonians as tables reproduce their energies exactly, the expansion recovers planted
couplings exactly, an extensive model's table is its energy function on every lattice size, and
what cannot be tabulated gets one line."""
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

import hamiltonian
import runs
import ising
from checks import UserError, main_guard
from ednn import EDNNEnergyModel


@pytest.mark.parametrize("name", ising.HAMILTONIANS)
def test_builtin_tables_reproduce_the_builtin_energies(name):
    table = ising.builtin_table(name)
    for n_x, n_y in ((3, 3), (4, 4), (2, 5)):
        grids = ising.all_states(n_x, n_y)
        np.testing.assert_array_equal(ising.table_energy(grids, table), ising.energy(grids, name))
    grids = np.random.default_rng(0).choice(np.array([-1, 1], np.int8), size=(64, 7, 9))
    np.testing.assert_array_equal(ising.table_energy(grids, table), ising.energy(grids, name))


def _planted_table(terms: dict, focus=1, context=1):
    """A table from planted coefficients {tuple of window positions k: coefficient}: the energy of
    each window pattern as the sum of the terms' products of spins."""
    w2 = (focus + 2 * context) ** 2
    spins = 2 * ((np.arange(2**w2)[:, None] >> np.arange(w2)[None, :]) & 1) - 1
    return sum(c * np.prod(spins[:, list(ks)], axis=1) for ks, c in terms.items()).astype(np.float64)


def test_walsh_coefficients_recover_planted_terms_exactly():
    rng = np.random.default_rng(1)
    subsets = [ks for r in range(0, 10) for ks in itertools.combinations(range(9), r)]
    chosen = [subsets[i] for i in rng.choice(len(subsets), 40, replace=False)]
    terms = {ks: float(rng.normal()) for ks in chosen}
    a = ising.walsh_coefficients(_planted_table(terms))
    expected = np.zeros(512)
    for ks, c in terms.items():
        expected[sum(1 << k for k in ks)] = c
    np.testing.assert_allclose(a, expected, atol=1e-12)


def test_coupling_classes_add_up_translates_and_report_the_physics():
    offsets = [tuple(o) for o in ising.window_offsets(1, 1)]
    k = {o: i for i, o in enumerate(offsets)}
    # a horizontal pair split over two translates, a vertical pair, a diagonal, a 3-spin term, a field
    terms = {(k[(0, 0)], k[(0, 1)]): -0.7, (k[(1, -1)], k[(1, 0)]): -0.3, (k[(-1, 0)], k[(0, 0)]): -0.9,
             (k[(0, 0)], k[(1, 1)]): -0.25, (k[(0, 0)], k[(0, 1)], k[(1, 0)]): 0.05, (k[(0, 0)],): 0.01, (): 2.0}
    classes = ising.coupling_classes(_planted_table(terms))
    assert classes[((0, 0), (0, 1))] == pytest.approx(-1.0) and classes[((0, 0), (1, 0))] == pytest.approx(-0.9)
    s = hamiltonian.summary(classes)
    assert (s["J_horizontal"], s["J_vertical"], s["J_diagonal"], s["J_antidiagonal"]) == \
        pytest.approx((1.0, 0.9, 0.25, 0.0))
    assert s["many_spin_total_abs"] == pytest.approx(0.05) and s["odd_total_abs"] == pytest.approx(0.06)
    assert s["constant_per_site"] == pytest.approx(2.0) and s["further_pairs_total_abs"] == pytest.approx(0.0)
    truth = hamiltonian.summary(ising.coupling_classes(ising.builtin_table("ISING2")))
    assert (truth["J_horizontal"], truth["J_diagonal"], truth["many_spin_total_abs"]) == pytest.approx((1, 0.5, 0))


@pytest.mark.parametrize("focus, context, size", [(1, 1, (6, 5)), (2, 1, (4, 6)), (1, 0, (3, 3)), (1, 1, (2, 2))])
def test_an_extensive_models_table_is_its_energy_function(focus, context, size):
    torch.manual_seed(0)
    model = EDNNEnergyModel(focus=focus, context=context, hidden_size=8).eval()
    table = model.window_table().numpy()
    assert table.shape == (2 ** ((focus + 2 * context) ** 2),)
    grids = np.random.default_rng(2).choice(np.array([-1, 1], np.int8), size=(32, *size))
    with torch.no_grad():
        energies = model.predict_energy(torch.as_tensor(grids)).double().numpy()
    np.testing.assert_allclose(ising.table_energy(grids, table, focus, context), energies, atol=1e-5)


def test_what_cannot_be_tabulated_is_one_line(tmp_path, capsys):
    with pytest.raises(ValueError, match="too many to tabulate"):
        EDNNEnergyModel(focus=3, context=1, n_x=9, n_y=9).window_table()
    assert main_guard(hamiltonian.main, [str(tmp_path)]) == 2
    assert "is not a finished run" in capsys.readouterr().err
    with pytest.raises(UserError, match="not a finished run"):
        runs.learned_hamiltonian(str(tmp_path / "nowhere"))


def test_cli_prints_the_truth_of_a_builtin_hamiltonian(capsys, tmp_path):
    assert hamiltonian.main(["ISING2", "--json", str(tmp_path / "c.json")]) == 0
    out = capsys.readouterr().out
    assert "| J_diagonal | 0.500000 | 0.5 |" in out and "| J_horizontal | 1.000000 | 1 |" in out
    assert (tmp_path / "c.json").stat().st_size > 0


def test_a_sequence_model_is_not_tabulated(tmp_path):
    import json

    run = tmp_path / "probability" / "GRU_1L_1H_hid8"
    run.mkdir(parents=True)
    (run / "best.ckpt").write_bytes(b"")  # never loaded: the class decides
    (run / "metrics.json").write_text(json.dumps({"class": "probability_models.ProbabilityModel",
                                                  "config": {"bidirectional": False}}))
    with pytest.raises(UserError, match="causal probability model GRU_1L_1H_hid8; only the extensive model"):
        runs.learned_hamiltonian(str(run))


# ------------------------------------------------------------------ the sampler on a table Hamiltonian
ALPHA = 1e-4  # chi-square p-value threshold, fixed in advance (fixed seeds: reproducible outcomes)


def _sampled_states(table, n_x, n_y, beta, seed, n_chains=20000, n=4, thin=25):
    """Lattices from the compiled sampler with a table Hamiltonian, `thin` sweeps apart after a burn-in,
    and the energies the sampler stored for them."""
    from sampler import Sampler

    sampler = Sampler(n_x, n_y, table, [beta], n_chains, seed)
    sampler.burn(300)
    spins, energies = (np.asarray(a)[:, :n_chains] for a in sampler.produce(n, thin))
    return spins.reshape(-1, n_x, n_y), energies.reshape(-1)


def _state_p_value(grids, table, beta):
    """Chi-square p-value of the sampled states against the Boltzmann law enumerated over all states."""
    n_x, n_y = grids.shape[1:]
    log_w = -beta * ising.table_energy(ising.all_states(n_x, n_y), table.array, table.focus, table.context)
    p = np.exp(log_w - log_w.max())
    idx = ((grids.reshape(len(grids), -1) > 0).astype(np.int64) << np.arange(n_x * n_y)).sum(axis=1)
    return ising.chi_square_test(np.bincount(idx, minlength=2 ** (n_x * n_y)), p / p.sum())[2]


@pytest.mark.slow
@pytest.mark.parametrize("n_x, n_y, beta", [(3, 3, 0.2), (3, 3, 0.7), (3, 4, 0.4)])
def test_a_random_table_is_sampled_exactly(n_x, n_y, beta):
    """Every state's frequency against the enumerated Boltzmann law of a random table (windows that
    wrap onto themselves on 3 x 3), the stored energies are the table's, and a wrong beta is rejected."""
    table = ising.Table.of(np.random.default_rng(0).normal(size=512), name="random")
    grids, energies = _sampled_states(table, n_x, n_y, beta, seed=5)
    np.testing.assert_allclose(energies, ising.table_energy(grids, table.array), atol=1e-4)
    assert _state_p_value(grids, table, beta) > ALPHA
    assert _state_p_value(grids, table, beta * 1.25) < ALPHA  # the test has the power to see a wrong beta


@pytest.mark.slow
def test_the_any_window_kernel_samples_exactly_too(monkeypatch):
    """Focus-1 tables take the fast path (`lattices.WindowLattice`); the kernel for any window
    (`lattices.TableLattice`, used for larger windows) passes the same test when forced."""
    import lattices
    import sampler

    monkeypatch.setattr(sampler, "lattice", lambda h, n_x, n_y, dense: lattices.TableLattice(n_x, n_y, h))
    table = ising.Table.of(np.random.default_rng(0).normal(size=512), name="random")
    grids, energies = _sampled_states(table, 3, 4, 0.4, seed=5)
    np.testing.assert_allclose(energies, ising.table_energy(grids, table.array), atol=1e-4)
    assert _state_p_value(grids, table, 0.4) > ALPHA
    assert _state_p_value(grids, table, 0.4 * 1.25) < ALPHA


@pytest.mark.parametrize("n_x, n_y", [(5, 7), (6, 8), (9, 4)])
def test_the_fast_table_kernel_tiles_any_size(n_x, n_y):
    """Colours of period 3, 4, 5 or 7 (the smallest divisor >= 3 of each side): the stored energies
    are the table's energies of the stored lattices, and no two sites of a colour share a window."""
    import lattices

    table = ising.Table.of(np.random.default_rng(1).normal(size=512), name="random")
    lat = lattices.lattice(table, n_x, n_y, False)
    assert isinstance(lat, lattices.WindowLattice)
    x, y = np.divmod(lat.order, n_y)
    for c in range(lat.n_colours):
        xs, ys = x[lat.offsets[c]:lat.offsets[c + 1]], y[lat.offsets[c]:lat.offsets[c + 1]]
        dx, dy = np.abs(xs[:, None] - xs[None]), np.abs(ys[:, None] - ys[None])
        near = (np.minimum(dx, n_x - dx) <= 2) & (np.minimum(dy, n_y - dy) <= 2)
        assert near.sum() == len(xs)                    # only each site with itself
    grids, energies = _sampled_states(table, n_x, n_y, 0.3, seed=2, n_chains=64, n=3, thin=3)
    np.testing.assert_allclose(energies, ising.table_energy(grids, table.array), atol=1e-4)


@pytest.mark.slow
def test_a_trained_extensive_models_table_is_sampled_exactly():
    """The shipped supervised EDNN's learned energy function, sampled on 3 x 3 (windows wrapping onto
    themselves), against its own Boltzmann law enumerated over all 512 states; a wrong beta is rejected."""
    table = runs.learned_hamiltonian(str(Path(__file__).resolve().parents[1] / "weights" / "energy" / "EDNN_F1_C1_hid16x2"))
    grids, energies = _sampled_states(table, 3, 3, 0.44, seed=7)
    np.testing.assert_allclose(energies, ising.table_energy(grids, table.array), atol=1e-4)
    assert _state_p_value(grids, table, 0.44) > ALPHA
    assert _state_p_value(grids, table, 0.44 * 1.25) < ALPHA


@pytest.mark.parametrize("name", ising.HAMILTONIANS)
def test_builtin_hamiltonians_as_tables_sample_their_own_distribution(name):
    """The built-in Hamiltonians' tables, sampled as tables, give the exact energy distribution of
    the built-in Hamiltonian on 4 x 4 (their transition probabilities are the built-in sampler's)."""
    table = ising.Table.of(ising.builtin_table(name), name=name)
    grids, energies = _sampled_states(table, 4, 4, 0.35, seed=6, n_chains=4096, n=4, thin=10)
    np.testing.assert_array_equal(energies, ising.energy(grids, name))
    levels, probs = ising.enumerated_distribution(4, 4, 0.35, name)
    counts, strays = ising.level_counts(energies, levels)
    assert strays == 0 and ising.chi_square_test(counts, probs)[2] > ALPHA

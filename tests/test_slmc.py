"""Self-learning Monte Carlo (`--algorithm cluster` on a table Hamiltonian, `cluster.slmc`) against the
Boltzmann law of every state.

Random tables (ISING1's pairs plus Gaussian noise on every one of the 512 window energies: many-spin
and odd terms, further and antiferromagnetic pairs) on the fast 3 x 3-window path (3 x 3, 4 x 4) and
on the any-window path (a 2 x 4 lattice, too narrow for the fast one). Each sample is the last state
of its own chain, so the samples are independent; chi-square with the threshold ALPHA fixed here in
advance, on the histogram of states (3 x 3: 512; 2 x 4: 256) or of energy levels (4 x 4), against the
law enumerated over all states. Power check: the same samples fail at 1.15 beta.
"""
import h5py
import numpy as np
import pytest

import cluster
import generate_ising as gi
import ising
import lattices
import potts
import sampler
from estimators import chi_square_test

ALPHA = 1e-4          # chi-square p-value threshold, fixed before looking at any result
MIN_EXPECTED = 5.0
N = 20000             # independent samples (chains)
WRONG = 1.15          # the power check's beta factor
BETA = 0.4


def field_table(c=0.1):
    """ISING1's window energies plus a field, c s_i per site: the form of the SLMC proposal, every
    proposal accepted, the clusters redrawn by their field weights."""
    d = np.arange(512)[:, None] >> np.arange(9) & 1
    return ising.Table.of(ising.builtin_table("ISING1") + c * (2 * d[:, 4] - 1), 1, 1, "field")


def random_table(seed, noise=0.3):
    return ising.Table.of(ising.builtin_table("ISING1") + np.random.default_rng(seed).normal(0.0, noise, 512),
                          1, 1, f"random{seed}")


def sample(tmp_path, table, n_x, n_y, seed=5, proposal="closed_form"):
    path = gi.generate(tmp_path / "s.hdf5", hamiltonian=table, n_x=n_x, n_y=n_y, betas=(BETA,), n_samples=N,
                       n_chains=N, burn_in=100, thin=1, random_seed=seed, algorithm="cluster", progress=False,
                       proposal=proposal)
    with h5py.File(path, "r") as f:
        return f["ising_grids"][()], f["true_energies"][()].astype(np.float64), dict(f.attrs)


def state_codes(grids):
    g = np.asarray(grids).reshape(len(grids), -1)
    return ((g > 0) * (1 << np.arange(g.shape[1]))).sum(axis=1)


def state_p(grids, table, beta):
    """p-value of the sampled states against the Boltzmann law of every state of the lattice."""
    n_x, n_y = grids.shape[1:]
    states = ising.all_states(n_x, n_y)
    e = table.energy(states)
    probs = np.exp(-beta * (e - e.min()))
    probs = (probs / probs.sum())[np.argsort(state_codes(states))]
    return chi_square_test(np.bincount(state_codes(grids), minlength=len(states)), probs, MIN_EXPECTED)[2]


def energy_p(energies, exact, beta):
    """p-value of sampled energies against the law of all states' energies `exact` (float64 (M,)), on its
    levels (equal energies, to 1e-6, are one level: translates and reflections of a state)."""
    e = np.sort(exact)
    first = np.flatnonzero(np.concatenate([[True], np.diff(e) > 1e-6]))
    levels, degeneracy = e[first], np.diff(np.append(first, len(e)))
    w = np.log(degeneracy) - beta * (levels - levels[0])
    probs = np.exp(w - w.max())
    idx = np.clip(np.searchsorted(levels, energies - 1e-4), 0, len(levels) - 1)
    assert np.all(np.abs(levels[idx] - energies) < 1e-3), "a sampled energy is no level"
    return chi_square_test(np.bincount(idx, minlength=len(levels)), probs / probs.sum(), MIN_EXPECTED)[2]


def proposal_acceptance(table, size, beta):
    """float (64,): the acceptance probability of one SLMC proposal per chain, 64 chains of size x size
    after 20 SLMC sweeps."""
    s = sampler.Sampler(size, size, table, [beta], 64, 0, "cluster")
    s.burn(20)
    return acceptance_of(s)


def acceptance_of(s):
    """float (B,): the acceptance probability of one SLMC proposal per chain of Sampler s, as it stands."""
    import jax.numpy as jnp
    return np.asarray(cluster.slmc_proposal(s.lat, s.blocks, jnp.uint32(99), s.chains)[4])


@pytest.mark.parametrize("n_x,n_y,kind,make", [(3, 3, lattices.WindowLattice, lambda: random_table(1)),
                                                (2, 4, lattices.TableLattice, lambda: random_table(1)),
                                                (3, 3, lattices.WindowLattice, field_table)],
                         ids=["window", "any-window", "field"])
def test_states(tmp_path, n_x, n_y, kind, make):
    table = make()
    assert isinstance(lattices.lattice(table, n_x, n_y, True), kind)
    assert lattices.lattice(table, n_x, n_y, True).proposal_weighted
    grids, e, attrs = sample(tmp_path, table, n_x, n_y)
    np.testing.assert_allclose(e, table.energy(grids), atol=1e-4)
    assert attrs["algorithm"] == "slmc"
    assert state_p(grids, table, BETA) > ALPHA
    assert state_p(grids, table, WRONG * BETA) < ALPHA


@pytest.mark.slow
def test_energies_4x4(tmp_path):
    table = random_table(2)
    grids, e, _ = sample(tmp_path, table, 4, 4)
    exact = table.energy(ising.all_states(4, 4))
    assert energy_p(e, exact, BETA) > ALPHA
    assert energy_p(e, exact, WRONG * BETA) < ALPHA


def test_proposal_is_the_tables_ferromagnetic_pairs():
    """ISING2 through its table: the proposal couplings are its own (1 on the axes, 1/2 on the diagonals),
    so the pair model is the whole energy and every proposal is accepted; a random table's proposal keeps
    only its positive pair classes."""
    lat = lattices.lattice(ising.Ising("ISING2").table(), 8, 8, True)
    got = dict(zip(lat.cluster_offsets, lat.proposal_gaps))
    assert got.keys() == {(0, 1), (1, 0), (1, 1), (1, -1)} and not lat.proposal_weighted
    np.testing.assert_allclose([got[0, 1], got[1, 0], got[1, 1], got[1, -1]], np.repeat([[2.0], [2.0], [1.0], [1.0]], 2, 1),
                               atol=1e-9)
    np.testing.assert_allclose(proposal_acceptance(ising.Ising("ISING2").table(), 8, 0.26), 1.0, atol=1e-4)
    gaps, field = lattices.ising_proposal(field_table(0.1))
    np.testing.assert_allclose(field, [-0.1, 0.1], atol=1e-12)
    np.testing.assert_allclose(proposal_acceptance(field_table(0.1), 8, 0.4), 1.0, atol=1e-4)
    classes = ising.coupling_classes(random_table(1).array)
    pairs = lattices.lattice(random_table(1), 4, 4, True)
    positive = {s[1] for s, c in classes.items() if len(s) == 2 and -c > lattices.ZERO_COUPLING}
    assert set(pairs.cluster_offsets) == positive and pairs.proposal_gaps.min() > 0
    assert any(len(s) == 2 and c > 0 for s, c in classes.items())          # it has antiferromagnetic pairs too


def random_potts_table(seed, noise=0.3):
    return potts.PottsTable.of(potts.builtin_table(3) + np.random.default_rng(seed).normal(0.0, noise, 3 ** 9), 3,
                               f"potts_random{seed}")


def translation_classes(grids):
    """int64 (M,): the smallest base-3 code among the 9 translates of each 3 x 3 state (its class)."""
    g = np.asarray(grids).astype(np.int64)
    codes = [(np.roll(g, (dx, dy), axis=(1, 2)).reshape(len(g), -1) * 3 ** np.arange(9)).sum(axis=1)
             for dx in range(3) for dy in range(3)]
    return np.min(codes, axis=0)


def planted_potts_table(J=(0.6, 1.0, 1.4), h=(0.3, -0.1, -0.2)):
    """A Potts table whose couplings depend on the state and which has a field: E = sum_i h(s_i) - sum_i
    J(s_i) [delta(s_i, s_right) + delta(s_i, s_down)], which is exactly the form of the SLMC proposal."""
    d = np.arange(3 ** 9)[:, None] // 3 ** np.arange(9) % 3
    J, h = np.asarray(J), np.asarray(h)
    same = (d[:, 4] == d[:, 5]) * 1.0 + (d[:, 4] == d[:, 7])          # right and down of the window's centre
    return potts.PottsTable.of(h[d[:, 4]] - J[d[:, 4]] * same, 3, "planted")


@pytest.mark.parametrize("make", [lambda: random_potts_table(3), planted_potts_table], ids=["random", "planted"])
def test_potts_table_states_3x3(tmp_path, make):
    """A random q = 3 table (POTTS3's window energies plus noise on all 19,683: many-site terms, fields,
    further pairs of either sign), and the planted table whose every proposal is accepted (so the
    state-weighted cluster redraw alone must be exact), by heat bath plus Swendsen-Wang proposals,
    against the law of its states over all 3^9, binned by translation class (translates have one
    energy; the energy levels themselves lie too close for float32 energies to tell apart)."""
    table = make()
    assert lattices.lattice(table, 3, 3, True).proposal_weighted
    grids, e, attrs = sample(tmp_path, table, 3, 3)
    np.testing.assert_allclose(e, table.energy(grids), atol=1e-4)
    assert attrs["algorithm"] == "slmc"
    assert potts_class_p(grids, table, BETA) > ALPHA
    assert potts_class_p(grids, table, WRONG * BETA) < ALPHA


def potts_class_p(grids, table, beta):
    """p-value of sampled 3 x 3 Potts states against the law of all 3^9, binned by translation class."""
    states = potts.all_states(3, 3, 3)
    classes, of_state = np.unique(translation_classes(states), return_inverse=True)
    counts = np.bincount(np.searchsorted(classes, translation_classes(grids)), minlength=len(classes))
    exact = table.energy(states)
    probs = np.bincount(of_state, weights=np.exp(-beta * (exact - exact.min())))
    return chi_square_test(counts, probs / probs.sum(), MIN_EXPECTED)[2]


def test_potts_proposal_is_the_tables_delta_couplings():
    """POTTS3 through its table: the proposal is POTTS3 itself (J = 1 on the axes, nothing else), every
    proposal accepted; POTTS3 with a second-neighbour coupling 0.3 added reads it back as J(0, 2) =
    J(2, 0) = 0.3; a table with only antiferromagnetic pairs has no proposal and refuses the cluster."""
    lat = lattices.lattice(potts.Potts(3).table(), 6, 6, True)
    assert lat.cluster_offsets == [(1, 0), (0, 1)] and not lat.proposal_weighted
    np.testing.assert_allclose(lat.proposal_gaps, 1.0, atol=1e-12)
    np.testing.assert_allclose(proposal_acceptance(potts.Potts(3).table(), 6, 1.0), 1.0, atol=1e-4)
    d = np.arange(3 ** 9)[:, None] // 3 ** np.arange(9) % 3
    further = potts.builtin_table(3) - 0.3 * ((d[:, 3] == d[:, 5]) * 1.0 + (d[:, 1] == d[:, 7]))
    got = potts.delta_couplings(further, 3)
    np.testing.assert_allclose([got[0, 2], got[2, 0], got[1, 1]], [[0.3] * 3, [0.3] * 3, [0.0] * 3], atol=1e-12)
    planted = planted_potts_table()
    got = potts.delta_couplings(planted.array, 3)
    np.testing.assert_allclose([got[0, 1], got[1, 0]], [[0.6, 1.0, 1.4]] * 2, atol=1e-12)
    gaps, field = lattices.potts_proposal(planted)
    np.testing.assert_allclose(field - field.mean(), [0.3, -0.1, -0.2], atol=1e-12)
    np.testing.assert_allclose(proposal_acceptance(planted, 6, 1.0), 1.0, atol=1e-4)
    anti = potts.PottsTable.of(-potts.builtin_table(3), 3, "anti")
    with pytest.raises(ValueError, match="no cluster update"):
        lattices.lattice(anti, 6, 6, True).check_algorithm("cluster")


def fitted_sampler(table, size, beta, n_chains=64):
    """A Sampler of SLMC chains whose proposal was refitted to the table (`Sampler.learn_proposal`) after
    50 sweeps, then run 50 more; and the lattice of its closed-form proposal."""
    s = sampler.Sampler(size, size, table, [beta], n_chains, 0, "cluster")
    closed = s.lat
    s.burn(50)
    s.learn_proposal(16, 1)
    s.burn(50)
    return s, closed


@pytest.mark.parametrize("table, states_p", [(random_table(1), state_p), (random_potts_table(3), potts_class_p)],
                         ids=["ising", "potts"])
def test_fitted_proposal_states_3x3(tmp_path, table, states_p):
    """generate_ising.py --proposal fitted: the proposal refitted by least squares during the burn-in
    (`cluster.fit_proposal`), and the chains still sample the table's law exactly (the last state of each
    of N chains, chi-square over all states, power check at 1.15 beta)."""
    grids, e, attrs = sample(tmp_path, table, 3, 3, seed=7, proposal="fitted")
    assert attrs["proposal"] == "fitted" and attrs["algorithm"] == "slmc"
    np.testing.assert_allclose(e, table.energy(grids), atol=1e-4)
    assert states_p(grids, table, BETA) > ALPHA
    assert states_p(grids, table, WRONG * BETA) < ALPHA


def test_fitted_proposal_reads_back_planted_tables():
    """Tables of exactly the proposal's form: the fit returns the Potts table's couplings and field, and
    every refitted proposal is accepted, as for the closed form (an Ising table's gap difference between
    its states and its field are one energy on the lattice, sum over bonds of (s_i + s_j) / 2 = M, so
    there the acceptance is the check). A random table's refit moves off its closed form."""
    s, _ = fitted_sampler(planted_potts_table(), 6, 1.0)
    got = dict(zip(s.lat.cluster_offsets, s.lat.proposal_gaps))
    assert got.keys() == {(0, 1), (1, 0)} and s.lat.proposal_weighted
    np.testing.assert_allclose([got[0, 1], got[1, 0]], [[0.6, 1.0, 1.4]] * 2, atol=1e-3)
    np.testing.assert_allclose(s.lat.proposal_fields, [0.3, -0.1, -0.2], atol=1e-3)
    for s in (s, fitted_sampler(field_table(0.1), 6, 0.4)[0]):
        np.testing.assert_allclose(acceptance_of(s), 1.0, atol=1e-4)
    s, closed = fitted_sampler(random_table(1), 6, BETA)
    fitted = dict(zip(s.lat.cluster_offsets, s.lat.proposal_gaps))
    moved = [np.abs(g - fitted[o]).max() for o, g in zip(closed.cluster_offsets, closed.proposal_gaps) if o in fitted]
    assert max(moved) > 0.01 or set(fitted) != set(closed.cluster_offsets)

"""The sampler on a coupling per bond (the spin glass): the law of every state, or of the energy, of
an instance against its exact Boltzmann law (enumeration, the instance's transfer matrix), with a
power check at a wrong beta."""
import numpy as np
import pytest

import ising
import spin_glass
from estimators import chi_square_test, level_counts
from sampler import Sampler

ALPHA = 1e-4  # chi-square p-value threshold, fixed in advance (fixed seeds: reproducible outcomes)


def _sample(h, beta, seed, n_chains=20000, n=4, thin=20):
    s = Sampler(h.n_x, h.n_y, h, [beta], n_chains, seed)
    s.burn(200)
    spins, energies = (np.asarray(a)[:, :n_chains] for a in s.produce(n, thin))
    return spins.reshape(-1, h.n_x, h.n_y), energies.reshape(-1)


def _state_p_value(grids, h, beta):
    """chi-square of the sampled states against exp(-beta E) over every state."""
    states = ising.all_states(h.n_x, h.n_y)
    e = h.energy(states)
    p = np.exp(-beta * (e - e.min()))
    index = ((grids.reshape(len(grids), -1) > 0).astype(np.int64) << np.arange(h.n_x * h.n_y)).sum(axis=1)
    bits = ((states.reshape(len(states), -1) > 0).astype(np.int64) << np.arange(h.n_x * h.n_y)).sum(axis=1)
    order = np.argsort(bits)
    counts = np.bincount(index, minlength=len(states))
    return chi_square_test(counts, (p / p.sum())[order])[2]


def test_a_gaussian_instance_samples_every_state_exactly():
    """Real couplings on 3 x 3: the continuous acceptance, against the law of all 512 states."""
    rng = np.random.default_rng(4)
    h = spin_glass.EdwardsAnderson.of(rng.normal(size=(3, 3)), rng.normal(size=(3, 3)))
    grids, energies = _sample(h, 0.7, seed=3)
    np.testing.assert_allclose(energies, h.energy(grids), atol=1e-4)
    assert _state_p_value(grids, h, 0.7) > ALPHA
    assert _state_p_value(grids, h, 0.7 * 1.1) < ALPHA


@pytest.mark.parametrize("beta", [0.4, 1.5])
def test_a_pm_j_instance_has_its_exact_energy_law(beta):
    """4 x 4 ±J (seed 3): sampled energies binned on the exact levels of its density of states."""
    h = spin_glass.EdwardsAnderson.standard(4, 4, 3)
    grids, energies = _sample(h, beta, seed=5, n_chains=8192, n=4, thin=25)
    np.testing.assert_array_equal(energies, h.energy(grids))
    levels, p = h.exact_distribution(4, 4, beta)
    counts, strays = level_counts(energies, levels)
    assert strays == 0 and chi_square_test(counts, p)[2] > ALPHA
    _, p_wrong = h.exact_distribution(4, 4, beta * 1.15)
    assert chi_square_test(counts, p_wrong)[2] < ALPHA


def test_all_couplings_one_is_ising1():
    h = spin_glass.EdwardsAnderson.of(np.ones((4, 4)), np.ones((4, 4)))
    grids, energies = _sample(h, 0.35, seed=6, n_chains=4096, n=4, thin=10)
    np.testing.assert_array_equal(energies, ising.energy(grids))
    levels, p = ising.exact_energy_distribution(4, 4, 0.35)
    counts, strays = level_counts(energies, levels)
    assert strays == 0 and chi_square_test(counts, p)[2] > ALPHA


def test_an_instance_refuses_another_size_and_single_flips():
    h = spin_glass.EdwardsAnderson.standard(4, 4, 0)
    with pytest.raises(ValueError, match="4 x 4"):
        Sampler(5, 4, h, [0.5], 8, 0)
    with pytest.raises(ValueError, match="checkerboard"):
        Sampler(4, 4, h, [0.5], 8, 0, algorithm="single")


def test_an_instance_round_trips_through_its_file(tmp_path):
    """The file records the couplings and the seed; everything downstream rebuilds the instance from it."""
    import h5py

    import hamiltonians
    from sampler import generate

    h = spin_glass.EdwardsAnderson.standard(6, 5, 1)
    path = generate(tmp_path / "ea.hdf5", hamiltonian=h, n_x=6, n_y=5, betas=(0.5, 1.0), n_samples=40, burn_in=20,
                    progress=False)
    with h5py.File(path) as f:
        attrs, grids, energies = dict(f.attrs), f["ising_grids"][:], f["true_energies"][:]
    assert hamiltonians.from_attrs(attrs) == h and attrs["disorder_seed"] == 1
    np.testing.assert_array_equal(h.energy(grids), energies)

"""Replica exchange (`sampler.Sampler(swap_every=K)`): the energy law at every beta of a ladder from
T = 3 down to T = 0.2 against a spin-glass instance's exact P(E), and the swap rule alone on exact
samples, where the transposed rule (exp(-(beta_i - beta_j)(E_i - E_j))) must be caught."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sampler
import spin_glass
from estimators import chi_square_test, level_counts

ALPHA = 1e-4  # chi-square p-value threshold, fixed in advance (fixed seeds: reproducible outcomes)
LADDER = 1.0 / np.geomspace(3.0, 0.2, 8)          # T = 3 ... 0.2


def _p_value(energies, h, beta):
    levels, p = h.exact_distribution(h.n_x, h.n_y, beta)
    counts, strays = level_counts(energies, levels)
    return chi_square_test(counts, p)[2] if strays == 0 else 0.0


def test_every_beta_of_a_ladder_has_the_exact_law_with_swaps():
    h = spin_glass.EdwardsAnderson.standard(4, 4, 3)
    n_chains = 1024
    s = sampler.Sampler(4, 4, h, LADDER, n_chains, 7, swap_every=1)
    s.burn(300)
    spins, energies = (np.asarray(a)[:, :s.n_real] for a in s.produce(12, 4))
    nb = len(LADDER)
    rates = s.swap_rates()
    assert rates.shape == (nb - 1,) and np.all((rates > 0.05) & (rates <= 1))
    for b, beta in enumerate(LADDER):
        e = energies[:, b::nb].reshape(-1)
        np.testing.assert_array_equal(e, h.energy(spins[:, b::nb].reshape(-1, 4, 4)))
        assert _p_value(e, h, beta) > ALPHA, (b, beta)
    # power: at T = 1.0 (where the energy still spreads; at T = 0.2 every sample is a ground state)
    # the law of a 10% wrong beta is rejected
    mid = int(np.argmin(np.abs(1.0 / LADDER - 1.0)))
    assert _p_value(energies[:, mid::nb].reshape(-1), h, LADDER[mid] * 1.1) < ALPHA
    # the lowest energy seen: the exact ground state at T = 0.2 (every chain of the run, its start
    # included), and never below it at any beta
    e0 = h.ground_state()[0]
    low = s.lowest_energies()
    assert low.shape == (nb,) and low[-1] == e0 and np.all(low >= e0)
    assert np.all(low <= energies.reshape(-1, nb).min(axis=0))


def test_the_lowest_energy_without_swaps_is_the_ground_state_at_low_temperature():
    h = spin_glass.EdwardsAnderson.standard(4, 4, 5)
    s = sampler.Sampler(4, 4, h, [0.4, 5.0], 256, 3)
    s.burn(200)
    s.trace(20)
    _, energies = (np.asarray(a)[:, :s.n_real] for a in s.produce(4, 3))
    e0 = h.ground_state()[0]
    low = s.lowest_energies()
    assert low[1] == e0 and low[0] >= e0 and low[0] <= energies[:, 0::2].min()


def _exact_draws(h, beta, n, rng):
    """n lattices drawn from the instance's Boltzmann law by enumeration, flat int8 (n, S)."""
    states = spin_glass.all_states(h.n_x, h.n_y)
    e = h.energy(states)
    p = np.exp(-beta * (e - e.min()))
    return states.reshape(len(states), -1)[rng.choice(len(states), size=n, p=p / p.sum())]


def _swaps_only(h, betas, rounds, seed=0):
    """Chains started from exact draws at each beta, then only swap rounds (no sweeps): the product of
    the betas' laws must stay invariant. Returns the energies float (n, n_betas) after the rounds."""
    n_chains, nb = 4096, len(betas)
    s = sampler.Sampler(h.n_x, h.n_y, h, betas, n_chains, seed, swap_every=1)
    rng = np.random.default_rng(seed)
    draws = np.stack([_exact_draws(h, b, n_chains, rng) for b in betas], axis=1).reshape(n_chains * nb, -1)
    flat = np.zeros((s.B, h.n_x * h.n_y), np.float32)
    flat[:len(draws)] = draws
    s.blocks = s.lat.split(jnp.asarray(flat[:, s.lat.order]))
    for r in range(rounds):
        s.blocks, _ = sampler._exchange(s.lat, nb, r % 2, s._swap.key, jnp.uint32(r), s._swap.betas, s.blocks,
                                        s.chains.cid)
    return np.asarray(s.lat.energies(s.blocks))[:s.n_real].reshape(n_chains, nb)


def test_the_swap_rule_keeps_the_product_law_and_the_transposed_one_does_not(monkeypatch):
    h = spin_glass.EdwardsAnderson.standard(3, 4, 1)
    betas = np.array([0.3, 1.5])
    e = _swaps_only(h, betas, rounds=20)
    for b, beta in enumerate(betas):
        assert _p_value(e[:, b], h, beta) > ALPHA, beta
    monkeypatch.setattr(sampler, "_swap_log_accept", lambda d_beta, d_energy: -d_beta * d_energy)
    jax.clear_caches()
    try:
        e = _swaps_only(h, betas, rounds=20)
    finally:
        monkeypatch.undo()
        jax.clear_caches()
    assert min(_p_value(e[:, b], h, beta) for b, beta in enumerate(betas)) < ALPHA


def test_swaps_need_two_betas():
    with pytest.raises(ValueError, match="swap_every"):
        sampler.Sampler(4, 4, "ISING1", [0.4], 8, 0, swap_every=2)

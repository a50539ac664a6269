"""potts.py: energy, neighbour counts, order parameter against direct computations; the exact
density of states against enumeration, the Ising transfer matrix (q = 2) and exact identities."""
import math

import numpy as np
import pytest

import estimators
import ising
import potts


def random_lattice(n_x, n_y, q, n=None, seed=0):
    return np.random.default_rng(seed).integers(0, q, size=(n_x, n_y) if n is None else (n, n_x, n_y)).astype(np.int8)


# ---------------------------------------------------------------------------- the basic functions
@pytest.mark.parametrize("n_x,n_y", [(4, 4), (3, 5), (2, 6), (6, 2), (8, 8)])
def test_energy_at_q2_is_the_ising_energy(n_x, n_y):
    g = random_lattice(n_x, n_y, 2, n=50)
    N = n_x * n_y
    np.testing.assert_array_equal(potts.energy(g), (ising.energy(potts.ising_spins(g)) - 2 * N) / 2)


def test_energy_bond_by_bond():
    g = random_lattice(3, 4, 3)
    e = 0
    for x in range(3):
        for y in range(4):
            e -= int(g[x, y] == g[x, (y + 1) % 4]) + int(g[x, y] == g[(x + 1) % 3, y])
    assert potts.energy(g) == e
    assert potts.energy(np.zeros((5, 4), np.int8)) == -40      # ground state: 2N bonds
    assert potts.energy(np.zeros((2, 3), np.int8)) == -12      # a side of 2: two bonds per pair


def test_neighbour_counts():
    q, g = 4, random_lattice(5, 6, 4, seed=1)
    n = potts.neighbour_counts(g, q)
    assert n.shape == (5, 6, q)
    np.testing.assert_array_equal(n.sum(axis=-1), 4)
    ref = np.zeros_like(n)
    for x in range(5):
        for y in range(6):
            for dx, dy in ((0, 1), (0, -1), (1, 0), (-1, 0)):
                ref[x, y, g[(x + dx) % 5, (y + dy) % 6]] += 1
    np.testing.assert_array_equal(n, ref)


def test_jax_input_gives_the_same_numbers():
    jnp = pytest.importorskip("jax.numpy")
    g = random_lattice(4, 6, 3, n=5, seed=2)
    np.testing.assert_array_equal(np.asarray(potts.energy(jnp.asarray(g))), potts.energy(g))
    np.testing.assert_array_equal(np.asarray(potts.neighbour_counts(jnp.asarray(g), 3)), potts.neighbour_counts(g, 3))


def test_magnetisation():
    for q in (2, 3, 5):
        for k in range(q):
            assert potts.magnetisation(np.full((4, 6), k, np.int8), q) == pytest.approx(1.0)
    equal3 = np.arange(12).reshape(3, 4) % 3                    # each of 3 states on 4 sites
    equal4 = np.repeat(np.arange(4)[:, None], 4, axis=1)        # rows 0, 1, 2, 3 on a 4 x 4 lattice
    assert potts.magnetisation(equal3, 3) == pytest.approx(0.0, abs=1e-12)
    assert potts.magnetisation(equal4, 4) == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(potts.magnetisation(np.stack([equal4, np.zeros((4, 4))]), 4), [0.0, 1.0], atol=1e-12)


def test_beta_c_and_checks():
    assert round(potts.beta_c(3), 6) == 1.005053
    assert round(potts.beta_c(4), 6) == 1.098612
    assert potts.check_q(3) == 3 and potts.check_q(4.0) == 4
    for bad in (1, 2.5, 200):
        with pytest.raises(ValueError):
            potts.check_q(bad)
    potts.check_states(np.array([0, 1, 2]), 3)
    for bad in (-1, 3):
        with pytest.raises(ValueError):
            potts.check_states(np.array([0, bad, 1]), 3)


# ---------------------------------------------------------------------------- exact density of states
def enumerated_counts(n_x, n_y, q):
    levels, counts = np.unique(potts.energy(potts.all_states(n_x, n_y, q)), return_counts=True)
    return levels, counts


@pytest.mark.parametrize("n_x,n_y,q", [(2, 3, 3), (3, 3, 3), (3, 4, 3), (2, 5, 3), (2, 4, 4), (3, 3, 4),
                                       (1, 4, 3), (2, 2, 5)])
def test_density_of_states_matches_enumeration(n_x, n_y, q):
    levels, counts = enumerated_counts(n_x, n_y, q)
    for shape in ((n_x, n_y), (n_y, n_x)):
        e, g = potts.density_of_states(*shape, q)
        np.testing.assert_array_equal(e, levels)
        np.testing.assert_array_equal(g, counts)
        # either side as the row, and one start row per batch: the same counts
        for chunk in (1, 2 ** 16):
            c = potts._count_states(*shape, q, chunk=chunk)
            np.testing.assert_array_equal(c[(-levels).astype(int)], counts)
            assert c.sum() == counts.sum()


def test_row_orbits_cover_every_row():
    for n_y, q in ((1, 3), (2, 4), (5, 3), (6, 2), (4, 5)):
        reps, sizes = potts._row_orbits(n_y, q)
        assert sizes.sum() == q ** n_y
        # orbit sizes divide the group order 2 n_y q!; the q uniform rows are one orbit
        assert np.all((2 * n_y * math.factorial(q)) % sizes == 0)
    assert len(potts._row_orbits(4, 2)[0]) == 4     # 0000, 0001, 0011, 0101 up to shifts, flips and 0 <-> 1


@pytest.mark.parametrize("n_x,n_y", [(4, 4), (4, 6), (5, 3)])
def test_q2_is_the_ising_transfer_matrix(n_x, n_y):
    N = n_x * n_y
    e, g = potts.density_of_states(n_x, n_y, 2)
    e_i, p_i = ising.exact_energy_distribution(n_x, n_y, 0.0)     # beta = 0: g / 2^N
    np.testing.assert_array_equal(e, (e_i - 2 * N) / 2)
    np.testing.assert_array_equal(g, np.rint(p_i * 2.0 ** N))
    if n_x % 2 == 0 and n_y % 2 == 0:
        np.testing.assert_array_equal(g, g[::-1])                  # bipartite: E -> -2N - E
    for beta_i in (0.2, 0.44, 0.7):
        e_p, p_p = potts.exact_energy_distribution(n_x, n_y, 2, 2 * beta_i)
        e_i, p_i = ising.exact_energy_distribution(n_x, n_y, beta_i)
        ref = dict(zip((e_i - 2 * N) / 2, p_i))
        assert max(abs(p - ref.get(k, 0.0)) for k, p in zip(e_p, p_p)) < 1e-12
        assert potts.exact_log_z(n_x, n_y, 2, 2 * beta_i) == pytest.approx(
            ising.exact_log_z(n_x, n_y, beta_i) + beta_i * 2 * N, rel=1e-12)   # e^{-beta_P E_P} = e^{-beta_I E_I} e^{2N beta_I}


@pytest.mark.parametrize("n_x,n_y,q", [(3, 3, 3), (2, 4, 4), (4, 3, 3)])
@pytest.mark.parametrize("beta", [0.0, 0.6, potts.beta_c(3), 3.0])
def test_exact_distribution_matches_enumeration(n_x, n_y, q, beta):
    e, p = potts.exact_energy_distribution(n_x, n_y, q, beta)
    e_ref, p_ref = potts.enumerated_distribution(n_x, n_y, q, beta)
    np.testing.assert_array_equal(e, e_ref)
    np.testing.assert_allclose(p, p_ref, rtol=1e-12, atol=1e-300)
    levels, counts = enumerated_counts(n_x, n_y, q)
    log_z = np.log(np.sum(counts * np.exp(-beta * levels)))
    assert potts.exact_log_z(n_x, n_y, q, beta) == pytest.approx(log_z, rel=1e-12)
    mean = np.sum(p_ref * e_ref)
    assert potts.exact_mean_energy(n_x, n_y, q, beta) == pytest.approx(mean, rel=1e-10, abs=1e-10)
    c = beta ** 2 * np.sum(p_ref * (e_ref - mean) ** 2)
    assert potts.exact_heat_capacity(n_x, n_y, q, beta) == pytest.approx(c, rel=1e-9, abs=1e-12)


def check_identities(n_x, n_y, q, e, g):
    N = n_x * n_y
    assert g.sum() == pytest.approx(float(q) ** N, rel=1e-12)
    # beta = 0: the 2N bond indicators are pairwise independent, each 1 with probability 1/q
    mean, var = potts.exact_moments(n_x, n_y, q, 0.0)
    assert mean == pytest.approx(-2 * N / q, rel=1e-12)
    assert var == pytest.approx(2 * N * (1 / q) * (1 - 1 / q), rel=1e-10)
    # the lowest levels (both sides >= 4): q ground states, a site in another state breaks 4 bonds,
    # a domino 6 (same states) or 7 (different states); nothing else breaks fewer than 8
    low = dict(zip(e, g))
    expected = {0: q, 4: N * q * (q - 1), 6: 2 * N * q * (q - 1), 7: 2 * N * q * (q - 1) * (q - 2)}
    for broken in range(8):
        assert low.get(-2 * N + broken, 0) == expected.get(broken, 0)


@pytest.mark.parametrize("n_x,n_y,q", [(4, 4, 3), (5, 5, 3), (4, 5, 4), (6, 4, 2)])
def test_exact_identities(n_x, n_y, q):
    e, g = potts.density_of_states(n_x, n_y, q)
    check_identities(n_x, n_y, q, e, g)
    assert np.all(np.diff(e) > 0) and np.all(g >= 1) and np.all(g == np.rint(g))
    # large beta: the q ground states, no overflow
    beta = 60.0
    e_p, p = potts.exact_energy_distribution(n_x, n_y, q, beta)
    assert np.all(np.isfinite(p)) and p[0] == pytest.approx(1.0)
    assert potts.exact_log_z(n_x, n_y, q, beta) == pytest.approx(math.log(q) + 2 * n_x * n_y * beta, rel=1e-14)
    assert potts.exact_mean_energy(n_x, n_y, q, beta) == pytest.approx(-2 * n_x * n_y)
    # <E> = -d log Z / d beta and C = beta^2 d^2 log Z / d beta^2 (central differences)
    b, h = 0.9, 1e-4
    f = [potts.exact_log_z(n_x, n_y, q, b + k * h) for k in (-1, 0, 1)]
    assert potts.exact_mean_energy(n_x, n_y, q, b) == pytest.approx(-(f[2] - f[0]) / (2 * h), rel=1e-6)
    assert potts.exact_heat_capacity(n_x, n_y, q, b) == pytest.approx(b ** 2 * (f[2] - 2 * f[1] + f[0]) / h ** 2, rel=1e-4)


def test_batches_and_transposition_agree_beyond_enumeration():
    ref = potts._count_states(5, 4, 3)
    np.testing.assert_array_equal(potts._count_states(5, 4, 3, chunk=1), ref)
    np.testing.assert_allclose(potts._count_states(4, 5, 3), ref, rtol=1e-15)


def test_too_large_is_refused():
    for args in ((12, 12, 3), (10, 10, 4), (9, 9, 6)):
        with pytest.raises(ValueError, match="Monte Carlo"):
            potts.density_of_states(*args)
    with pytest.raises(ValueError):
        potts.density_of_states(4, 4, 1)


@pytest.mark.slow
def test_8x8_q3_exactly():
    """8 x 8, q = 3 (the repository's P(E)): float64 against the exact integers, which the same
    recursion in uint64 (exact modulo 2^64: only sums and products of integers) pins down."""
    n, q = 8, 3
    e, g = potts.density_of_states(n, n, q)
    check_identities(n, n, q, e, g)
    r = potts._count_states(n, n, q, dtype=np.uint64)
    c = np.zeros(len(r))
    c[(-e).astype(int)] = g
    exact = [int(m) + 2 ** 64 * round((float(f) - int(m)) / 2 ** 64) for f, m in zip(c, r)]
    assert sum(exact) == q ** (n * n)
    assert max(abs(float(f) - x) / x for f, x in zip(c, exact) if x) < 2e-14
    assert all(float(f) == x for f, x in zip(c, exact) if x < 2 ** 53)


def test_zq_order_parameter_and_its_binder_cumulant():
    """The Z_q order parameter: |m| = 1 in every ground state, 0 for equal populations, the Ising |m|
    at q = 2; its two-component Binder cumulant is 0 for independent random states (the infinite-
    temperature limit, where m is Gaussian up to O(1/N)) and 1/2 for a frozen |m|."""
    for q in (2, 3, 4):
        for k in range(q):
            assert potts.zq_magnetisation(np.full((4, 6), k, np.int8), q) == pytest.approx(1.0)
    assert potts.zq_magnetisation(np.arange(12).reshape(3, 4) % 3, 3) == pytest.approx(0.0, abs=1e-12)
    s = np.random.default_rng(1).integers(0, 2, (50, 4, 4))
    np.testing.assert_allclose(potts.zq_magnetisation(s, 2), np.abs(potts.ising_spins(s).mean(axis=(1, 2))), atol=1e-12)
    m = potts.zq_magnetisation(np.random.default_rng(2).integers(0, 3, (20000, 16, 16)), 3)
    # sampling error of U from 20,000 lattices is ~0.01; the one-component formula would give 1/3
    assert abs(estimators.binder_cumulant((m ** 2).mean(), (m ** 4).mean(), components=2)) < 0.03
    assert abs(estimators.binder_cumulant((m ** 2).mean(), (m ** 4).mean()) - 1 / 3) < 0.03
    assert estimators.binder_cumulant(0.25, 0.0625, components=2) == pytest.approx(0.5)

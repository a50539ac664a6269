"""spin_glass.py: the transfer-matrix log Z, density of states, moments and ground state of one instance
against brute-force enumeration written bond by bond here, against Kaufman's ISING1 log Z, under gauge
transformations; and the EdwardsAnderson object (attrs round-trip, the errors that name the problem)."""
import math
import time

import numpy as np
import pytest

import ising
import spin_glass as sg


def instance(n_x, n_y, kind, seed):
    if kind == "pm":
        return sg.standard_instance(n_x, n_y, seed)
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n_x, n_y)), rng.normal(size=(n_x, n_y))


def brute_energies(J_h, J_v):
    """Every state's energy, bond by bond (independent of `sg.energy`'s rolls): float64 (2^N,)."""
    n_x, n_y = J_h.shape
    s = ising.all_states(n_x, n_y).astype(np.float64)
    e = np.zeros(len(s))
    for x in range(n_x):
        for y in range(n_y):
            e -= J_h[x, y] * s[:, x, y] * s[:, x, (y + 1) % n_y]
            e -= J_v[x, y] * s[:, x, y] * s[:, (x + 1) % n_x, y]
    return e


def brute(J_h, J_v, beta):
    """(log Z, <E>, Var E, levels, P(E), E_0, degeneracy) by enumerating every state."""
    e = brute_energies(np.asarray(J_h, np.float64), np.asarray(J_v, np.float64))
    a = -beta * e
    w = np.exp(a - a.max())
    p = w / w.sum()
    mean = (p * e).sum()
    levels, inverse = np.unique(e, return_inverse=True)
    e0 = e.min()
    return (a.max() + math.log(w.sum()), mean, (p * (e - mean) ** 2).sum(), levels,
            np.bincount(inverse, weights=p), e0, int((e <= e0 + 1e-9).sum()))


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-300)


# ---------------------------------------------------------------------------- against enumeration
@pytest.mark.parametrize("n_x,n_y", [(3, 4), (4, 4), (3, 3), (2, 4)])
@pytest.mark.parametrize("kind", ["pm", "gauss"])
def test_exact_against_enumeration(n_x, n_y, kind):
    J_h, J_v = instance(n_x, n_y, kind, seed=10 * n_x + n_y)
    for beta in (0.4, 1.3):
        lz, mean, var, levels, p, e0, deg = brute(J_h, J_v, beta)
        assert rel(sg.log_z(J_h, J_v, beta), lz) < 1e-10
        assert rel(sg.log_z(J_h, J_v, 1.01 * beta), lz) > 1e-10              # power: beta off by 1% fails
        m, v = sg.moments(J_h, J_v, beta)
        tol = 1e-10 if kind == "pm" else 1e-7                                 # exact (DOS) / finite differences
        assert rel(m, mean) < tol and rel(v, var) < tol
        m1, v1 = sg.moments(J_h, J_v, 1.01 * beta)
        assert rel(m1, mean) > tol and rel(v1, var) > tol
        if kind == "pm":
            lev, prob = sg.exact_energy_distribution(J_h, J_v, beta)
            np.testing.assert_array_equal(lev, levels)
            np.testing.assert_allclose(prob, p, rtol=1e-10, atol=0)
            assert np.abs(sg.exact_energy_distribution(J_h, J_v, 1.01 * beta)[1] / p - 1).max() > 1e-10
    E0, g0 = sg.ground_state(J_h, J_v)
    assert rel(E0, e0) < 1e-10 and g0 == deg
    assert E0 == pytest.approx(sg.energy(ising.all_states(n_x, n_y), J_h, J_v).min(), rel=1e-12)


@pytest.mark.parametrize("n_x,n_y", [(3, 4), (4, 4), (2, 4), (4, 2)])
def test_density_of_states_counts_every_state(n_x, n_y):
    J_h, J_v = sg.standard_instance(n_x, n_y, 7)
    levels, g = sg.density_of_states(J_h, J_v)
    ref_levels, ref_counts = np.unique(brute_energies(J_h.astype(np.float64), J_v.astype(np.float64)),
                                       return_counts=True)
    np.testing.assert_array_equal(levels, ref_levels)
    np.testing.assert_array_equal(g, ref_counts)
    assert g.sum() == 2.0 ** (n_x * n_y)


def test_energy_numpy_and_ising1():
    J_h, J_v = sg.standard_instance(3, 5, 1)
    grids = ising.all_states(3, 5)[::97]
    np.testing.assert_array_equal(sg.energy(grids, J_h, J_v), brute_energies(J_h, J_v)[::97])
    assert sg.energy(grids, J_h, J_v).dtype == np.float64
    ones = np.ones((3, 5))
    np.testing.assert_array_equal(sg.energy(grids, ones, ones), ising.energy(grids, "ISING1"))
    with pytest.raises(ValueError, match="shape"):
        sg.energy(np.ones((2, 4, 4)), J_h, J_v)


# ---------------------------------------------------------------------------- ISING1
@pytest.mark.parametrize("n", [8, 12])
def test_all_couplings_one_is_ising1(n):
    ones = np.ones((n, n))
    for beta in (0.3, 0.44, 1.0):
        assert rel(sg.log_z(ones, ones, beta), ising.kaufman_log_z(n, n, beta)) < 1e-10
    assert rel(sg.log_z(ones, ones, 0.44 * 1.01), ising.kaufman_log_z(n, n, 0.44)) > 1e-10


def test_moments_by_finite_differences_match_kaufman():
    ones = np.ones((10, 10))                                  # beyond the density of states: log Z differences
    for beta in (0.3, 0.44):
        mean, var = sg.moments(ones, ones, beta)
        ref_mean, ref_var = ising.kaufman_moments(10, 10, beta)
        assert rel(mean, ref_mean) < 1e-7 and rel(var, ref_var) < 1e-6
    assert rel(sg.moments(ones, ones, 0.4444)[1], ising.kaufman_moments(10, 10, 0.44)[1]) > 1e-6


def test_energy_of_jax_arrays():
    jnp = pytest.importorskip("jax.numpy")
    J_h, J_v = instance(4, 6, "gauss", 4)
    grids = np.random.default_rng(0).choice([-1, 1], size=(10, 4, 6)).astype(np.int8)
    e = sg.energy(jnp.asarray(grids), J_h, J_v)
    assert e.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(e), sg.energy(grids, J_h, J_v), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n_x,n_y", [(6, 6), (10, 10), (3, 8)])
def test_ising1_ground_state_and_distribution(n_x, n_y):
    ones = np.ones((n_x, n_y))
    assert sg.ground_state(ones, ones) == (-2.0 * n_x * n_y, 2.0)
    if n_x * n_y <= 36:
        levels, p = sg.exact_energy_distribution(ones, ones, 0.44)
        ref_levels, ref_p = ising.exact_energy_distribution(n_x, n_y, 0.44)  # drops P < 1e-15 of the max
        keep = np.isin(levels, ref_levels)
        assert keep.sum() == len(ref_levels)
        np.testing.assert_allclose(p[keep], ref_p, rtol=1e-9, atol=1e-15)


# ---------------------------------------------------------------------------- gauge invariance
def gauge(J_h, J_v, x, y):
    """Flip the four bonds of site (x, y): J -> -J (the same as flipping s[x, y] in every state)."""
    J_h, J_v = np.array(J_h, np.float64), np.array(J_v, np.float64)
    n_x, n_y = J_h.shape
    J_h[x, y] *= -1
    J_h[x, (y - 1) % n_y] *= -1
    J_v[x, y] *= -1
    J_v[(x - 1) % n_x, y] *= -1
    return J_h, J_v


@pytest.mark.parametrize("n_x,n_y,site", [(4, 5, (1, 2)), (5, 4, (0, 0)), (2, 4, (1, 3))])
def test_gauge_invariance(n_x, n_y, site):
    J_h, J_v = sg.standard_instance(n_x, n_y, 3)
    G_h, G_v = gauge(J_h, J_v, *site)
    assert not np.array_equal(G_h, J_h)
    for beta in (0.5, 2.0):
        assert rel(sg.log_z(G_h, G_v, beta), sg.log_z(J_h, J_v, beta)) < 1e-12
    for a, b in zip(sg.density_of_states(G_h, G_v), sg.density_of_states(J_h, J_v)):
        np.testing.assert_array_equal(a, b)
    assert sg.ground_state(G_h, G_v) == sg.ground_state(J_h, J_v)
    states = np.random.default_rng(0).choice([-1, 1], size=(200, n_x, n_y)).astype(np.int8)
    flipped = states.copy()
    flipped[:, site[0], site[1]] *= -1
    np.testing.assert_array_equal(sg.energy(flipped, G_h, G_v), sg.energy(states, J_h, J_v))
    assert not np.array_equal(sg.energy(states, G_h, G_v), sg.energy(states, J_h, J_v))   # power


def test_transpose_invariance():
    J_h, J_v = instance(3, 6, "gauss", 5)
    assert rel(sg.log_z(J_v.T, J_h.T, 0.7), sg.log_z(J_h, J_v, 0.7)) < 1e-12
    assert sg.ground_state(J_v.T, J_h.T)[0] == pytest.approx(sg.ground_state(J_h, J_v)[0], rel=1e-12)


# ---------------------------------------------------------------------------- reach
def test_12x12_instance_runs():
    J_h, J_v = sg.standard_instance(12, 12, 0)
    t = time.time()
    lz = sg.log_z(J_h, J_v, 5.0)
    t_log_z = time.time() - t
    assert math.isfinite(lz)
    t = time.time()
    E0, deg = sg.ground_state(J_h, J_v)
    t_ground = time.time() - t
    states = np.random.default_rng(0).choice([-1, 1], size=(20000, 12, 12)).astype(np.int8)
    assert E0 <= sg.energy(states, J_h, J_v).min() and deg >= 2 and deg % 2 == 0
    # log Z >= -beta E_0 + log(degeneracy), and at beta = 5 the ground states hold nearly all of Z
    assert -5.0 * E0 + math.log(deg) <= lz < -5.0 * E0 + math.log(deg) + 1.0 * 144
    print(f"12 x 12: log Z {t_log_z:.1f} s, ground state {t_ground:.1f} s")


def test_limits_are_value_errors():
    with pytest.raises(ValueError, match="stop at rows of 14"):
        sg.log_z(np.ones((15, 15)), np.ones((15, 15)), 0.5)
    J_h, J_v = instance(3, 4, "gauss", 1)
    assert math.isfinite(sg.log_z(30 * J_h, 30 * J_v, 1.0))
    with pytest.raises(ValueError, match="beyond float64"):
        sg.log_z(300 * J_h, 300 * J_v, 5.0)
    with pytest.raises(ValueError, match="integer couplings"):
        sg.density_of_states(*instance(3, 3, "gauss", 0))
    with pytest.raises(ValueError, match="operations"):
        sg.density_of_states(np.ones((14, 14)), np.ones((14, 14)))


# ---------------------------------------------------------------------------- observables
def test_overlap_and_binder_ratio():
    a = np.random.default_rng(0).choice([-1, 1], size=(5, 4, 4)).astype(np.int8)
    assert np.array_equal(sg.overlap(a, a), np.ones(5)) and np.array_equal(sg.overlap(a, -a), -np.ones(5))
    b = a.copy()
    b[:, 0, 0] *= -1
    np.testing.assert_allclose(sg.overlap(a, b), 14 / 16)
    assert sg.binder_ratio(np.array([0.5, -0.5, 0.5])) == pytest.approx(2 / 3)
    q = np.random.default_rng(1).normal(size=200000)
    assert abs(sg.binder_ratio(q)) < 0.02


# ---------------------------------------------------------------------------- EdwardsAnderson
def test_edwards_anderson_object():
    H = sg.EdwardsAnderson.standard(4, 5, 3)
    assert (H.name, H.label, H.q, H.trained_on, H.beta_c, H.lattice_kind) == \
        ("EA", "EA_4x5_seed3", 2, "EA", None, "bonds")
    assert sg.EdwardsAnderson.from_attrs(H.attrs()) == H and hash(sg.EdwardsAnderson.from_attrs(H.attrs())) == hash(H)
    G = sg.EdwardsAnderson.of(*instance(3, 4, "gauss", 2))
    assert G.label == "EA_3x4" and G.attrs()["disorder_seed"] == -1
    assert sg.EdwardsAnderson.from_attrs(G.attrs()) == G
    assert G.attrs()["J_h"].dtype == np.float32 and H.table() is None
    np.testing.assert_array_equal(H.J_h_array, sg.standard_instance(4, 5, 3)[0])
    grids = ising.all_states(4, 5)[::1000]
    np.testing.assert_array_equal(H.energy(grids), sg.energy(grids, H.J_h_array, H.J_v_array))
    assert H.exact_log_z(4, 5, 0.5) == sg.log_z(H.J_h_array, H.J_v_array, 0.5)
    assert H.ground_state() == sg.ground_state(H.J_h_array, H.J_v_array)
    np.testing.assert_allclose(H.order_parameter(grids), grids.reshape(len(grids), -1).mean(axis=1))
    with pytest.raises(ValueError, match="4 x 5"):
        H.energy(np.ones((2, 5, 4)))
    with pytest.raises(ValueError, match="4 x 5"):
        H.exact_log_z(5, 4, 0.5)
    with pytest.raises(ValueError, match="not of 5"):
        H.energy(np.ones(5))
    with pytest.raises(ValueError, match=r"J_v has shape \(3, 4\) but J_h \(4, 4\)"):
        sg.EdwardsAnderson.of(np.ones((4, 4)), np.ones((3, 4)))
    bad = np.ones((4, 4))
    bad[2, 3] = np.nan
    with pytest.raises(ValueError, match=r"finite \(NaN at J_h\[2, 3\]\)"):
        sg.EdwardsAnderson.of(bad, np.ones((4, 4)))
    bad[2, 3] = -np.inf
    with pytest.raises(ValueError, match=r"-inf at J_v\[2, 3\]"):
        sg.EdwardsAnderson.of(np.ones((4, 4)), bad)
    with pytest.raises(ValueError, match="J_h must be 2-D"):
        sg.EdwardsAnderson.of(np.ones(4), np.ones(4))
    with pytest.raises(ValueError, match=">= 2"):
        sg.EdwardsAnderson.of(np.ones((1, 4)), np.ones((1, 4)))
    with pytest.raises(ValueError, match="±1"):
        H.check_grids(np.zeros((4, 5)))


def test_edwards_anderson_has_the_hamiltonian_interface():
    H = sg.EdwardsAnderson.standard(3, 4, 0)
    for member in ("name", "label", "q", "trained_on", "beta_c", "lattice_kind", "energy", "attrs",
                   "order_parameter", "table", "exact_distribution", "exact_moments", "exact_log_z", "check_grids"):
        assert hasattr(H, member), member
    levels, p = H.exact_distribution(3, 4, 0.7)
    ref = brute(H.J_h_array, H.J_v_array, 0.7)
    np.testing.assert_allclose(p, ref[4], rtol=1e-10, atol=0)
    np.testing.assert_allclose(H.exact_moments(3, 4, 0.7), ref[1:3], rtol=1e-10)
    with pytest.raises(ValueError, match="integer couplings"):
        sg.EdwardsAnderson.of(*instance(3, 4, "gauss", 0)).exact_distribution(3, 4, 0.7)


def test_neighbours_match_ising1():
    for n_x, n_y in ((4, 4), (2, 4), (3, 2)):
        ones = sg.EdwardsAnderson.of(np.ones((n_x, n_y)), np.ones((n_x, n_y)))
        assert ones.neighbours(n_x, n_y) == ising.neighbours(n_x, n_y, "ISING1")
    H = sg.EdwardsAnderson.standard(3, 4, 0)
    nb = H.neighbours(3, 4)
    s = ising.all_states(3, 4)[::37].reshape(-1, 12).astype(np.float64)
    e = -0.5 * np.array([sum(s[k, i] * w * s[k, j] for i in range(12) for j, w in nb[i].items())
                         for k in range(len(s))])
    np.testing.assert_array_equal(e, H.energy(s.reshape(-1, 3, 4)))

"""ising.py: Hamiltonians against hand-computed lattices, exact results against enumeration."""
import numpy as np
import pytest

import ising


# ---------------------------------------------------------------------------- Hamiltonians
def checkerboard(n_x, n_y):
    x, y = np.indices((n_x, n_y))
    return np.where((x + y) % 2 == 0, 1, -1).astype(np.int8)


@pytest.mark.parametrize("n_x,n_y", [(4, 4), (4, 6), (3, 5), (2, 6)])
def test_ground_states(n_x, n_y):
    S = n_x * n_y
    for sign in (1, -1):
        g = np.full((n_x, n_y), sign, np.int8)
        assert ising.energy(g, "ISING1") == -2 * S            # two bonds per site
        assert ising.energy(g, "ISING2") == -2 * S - S        # plus two half-strength diagonals per site


@pytest.mark.parametrize("n_x,n_y", [(4, 4), (4, 6), (6, 2)])
def test_checkerboard_antiferro_state(n_x, n_y):
    S = n_x * n_y
    g = checkerboard(n_x, n_y)
    assert ising.energy(g, "ISING1") == 2 * S                 # every nearest-neighbour bond broken
    assert ising.energy(g, "ISING2") == 2 * S - S             # diagonals join equal spins: -1/2 each, 2S of them


def test_stripes_and_single_flip():
    g = np.ones((4, 6), np.int8)
    g[1, 2] = -1                                           # one flipped spin
    assert ising.energy(g, "ISING1") == -48 + 8               # 4 bonds broken, each +2
    assert ising.energy(g, "ISING2") == -72 + 8 + 4           # plus 4 diagonals broken, each +1
    stripes = np.repeat(np.array([[1], [-1], [1], [-1]], np.int8), 6, axis=1)  # rows alternate
    assert ising.energy(stripes, "ISING1") == -24 + 24        # horizontal bonds kept, vertical broken
    assert ising.energy(stripes, "ISING2") == 0 + 24          # all diagonals join rows x and x+-1


def test_hand_lattice_3x3():
    g = np.array([[1, 1, -1], [1, -1, -1], [-1, 1, 1]], np.int8)
    # right bonds s[x,y]s[x,y+1] (periodic): row0: 1,-1,-1; row1: -1,1,-1; row2: -1,1,-1 -> sum -3
    # down bonds s[x,y]s[x+1,y]: col0: 1,-1,-1; col1: -1,-1,1; col2: 1,-1,-1 -> sum -3
    assert ising.energy(g, "ISING1") == 6
    # down-right s[x,y]s[x+1,y+1]: (0,0)(1,1)=-1 (0,1)(1,2)=-1 (0,2)(1,0)=-1 (1,0)(2,1)=1 (1,1)(2,2)=-1
    #   (1,2)(2,0)=1 (2,0)(0,1)=-1 (2,1)(0,2)=-1 (2,2)(0,0)=1 -> -3
    # up-right s[x,y]s[x-1,y+1]: (0,0)(2,1)=1 (0,1)(2,2)=1 (0,2)(2,0)=1 (1,0)(0,1)=1 (1,1)(0,2)=1
    #   (1,2)(0,0)=-1 (2,0)(1,1)=1 (2,1)(1,2)=-1 (2,2)(1,0)=1 -> 5
    assert ising.energy(g, "ISING2") == 6 - 0.5 * (-3 + 5)


@pytest.mark.parametrize("model", ising.HAMILTONIANS)
@pytest.mark.parametrize("n_x,n_y", [(4, 4), (3, 5), (2, 6), (8, 8)])
def test_local_field_and_coupling_matrix_agree_with_energy(model, n_x, n_y):
    rng = np.random.default_rng(0)
    g = rng.choice(np.array([-1, 1], np.int8), size=(50, n_x, n_y))
    e = ising.energy(g, model)
    h = ising.local_field(g, model)
    np.testing.assert_allclose(-0.5 * (g * h).sum(axis=(1, 2)), e)
    J = ising.coupling_matrix(n_x, n_y, model)
    s = g.reshape(50, -1).astype(float)
    np.testing.assert_allclose(-0.5 * np.einsum("ni,ij,nj->n", s, J, s), e)
    # flipping spin (1,1) changes E by 2 s h
    g2 = g.copy()
    g2[:, 1, 1] *= -1
    np.testing.assert_allclose(ising.energy(g2, model) - e, 2 * g[:, 1, 1] * h[:, 1, 1])
    # jax input gives the same numbers
    import jax.numpy as jnp
    np.testing.assert_allclose(np.asarray(ising.energy(jnp.asarray(g), model)), e)
    np.testing.assert_allclose(np.asarray(ising.local_field(jnp.asarray(g), model)), h)


@pytest.mark.parametrize("model", ising.HAMILTONIANS)
@pytest.mark.parametrize("n_x,n_y,n_colours", [(4, 4, None), (8, 6, None), (3, 5, None), (5, 5, None), (2, 2, None)])
def test_colouring_is_proper(model, n_x, n_y, n_colours):
    col = ising.colouring(n_x, n_y, model)
    J = ising.coupling_matrix(n_x, n_y, model)
    i, j = np.nonzero(J)
    assert np.all(col[i] != col[j])
    if n_x % 2 == 0 and n_y % 2 == 0:
        assert col.max() + 1 == (2 if model == "ISING1" else 4)


# ------------------------------------------------------------------- exact partition function
@pytest.mark.parametrize("n_x,n_y", [(4, 4), (3, 5), (2, 6), (4, 3)])
@pytest.mark.parametrize("beta", [0.1, 0.3, 0.44, 0.8])
def test_kaufman_formula_matches_enumeration(n_x, n_y, beta):
    e = ising.energy(ising.all_states(n_x, n_y), "ISING1")
    w = np.exp(-beta * (e - e.min()))
    log_z = np.log(w.sum()) - beta * e.min()
    assert ising.kaufman_log_z(n_x, n_y, beta) == pytest.approx(log_z, rel=1e-12)
    mean_e = (w * e).sum() / w.sum()
    assert ising.exact_mean_energy(n_x, n_y, beta) == pytest.approx(mean_e, abs=1e-6)


def test_integrated_autocorr_time_of_ar1():
    # AR(1) x_t = a x_{t-1} + noise has tau = (1 + a) / (1 - a)
    rng = np.random.default_rng(1)
    a, n, T = 0.8, 64, 4000
    x = np.zeros((n, T))
    noise = rng.normal(size=(n, T))
    for t in range(1, T):
        x[:, t] = a * x[:, t - 1] + noise[:, t]
    assert ising.integrated_autocorr_time(x) == pytest.approx((1 + a) / (1 - a), rel=0.1)
    assert ising.integrated_autocorr_time(rng.normal(size=(n, T))) == pytest.approx(1.0, abs=0.1)


def _bond_by_bond_distribution(n_x, n_y, beta, model):
    """Brute force over all 2**(n_x n_y) states with the energies written out bond by bond:
    independent of the rolls in `ising.energy`."""
    s = ising.all_states(n_x, n_y).astype(np.int64)
    energy = np.zeros(len(s))
    for x in range(n_x):
        for y in range(n_y):
            right = s[:, x, (y + 1) % n_y]
            down = s[:, (x + 1) % n_x, y]
            energy -= s[:, x, y] * (right + down)
            if model == "ISING2":
                down_right = s[:, (x + 1) % n_x, (y + 1) % n_y]
                up_right = s[:, (x - 1) % n_x, (y + 1) % n_y]
                energy -= 0.5 * s[:, x, y] * (down_right + up_right)
    values, inverse = np.unique(energy, return_inverse=True)
    weights = np.bincount(inverse, np.exp(-beta * (energy - energy.min())))
    return values, weights / weights.sum()


@pytest.mark.parametrize("shape", [(4, 4), (3, 4), (2, 6), (5, 3)])
@pytest.mark.parametrize("model", ["ISING1", "ISING2"])
@pytest.mark.parametrize("beta", [0.0, 0.25, 0.7])
def test_exact_distribution_matches_enumeration(shape, model, beta):
    e, p = ising.exact_energy_distribution(*shape, beta, model)
    e_ref, p_ref = _bond_by_bond_distribution(*shape, beta, model)
    ref = dict(zip(e_ref, p_ref))
    assert set(e) <= set(e_ref)
    assert p.sum() == pytest.approx(1.0)
    assert max(abs(ref[k] - v) for k, v in zip(e, p)) < 1e-12
    missing = [ref[k] for k in set(e_ref) - set(e)]  # only probabilities below round-off are dropped
    assert not missing or max(missing) < 1e-12


def test_exact_mean_energy_limits():
    # beta = 0: every state equally likely, <E> = 0; large beta: the ground state, -2N.
    assert ising.exact_mean_energy(4, 4, 0.0) == pytest.approx(0.0, abs=1e-10)
    assert ising.exact_mean_energy(4, 4, 5.0) == pytest.approx(-32.0, abs=1e-6)
    assert ising.exact_mean_energy(4, 4, 5.0, "ISING2") == pytest.approx(-48.0, abs=1e-6)


def test_chi_square_accepts_the_true_law_and_rejects_a_wrong_one():
    e, p = ising.exact_energy_distribution(4, 4, 0.3)
    rng = np.random.default_rng(0)
    counts = rng.multinomial(20_000, p)
    assert ising.chi_square_test(counts, p)[2] > 1e-3
    _, p_wrong = ising.exact_energy_distribution(4, 4, 0.35)
    assert ising.chi_square_test(counts, p_wrong)[2] < 1e-6


def test_enumerated_distribution_equals_the_transfer_matrix_and_kaufman():
    for model in ising.HAMILTONIANS:
        levels, p = ising.enumerated_distribution(3, 4, 0.3, model)
        e, q = ising.exact_energy_distribution(3, 4, 0.3, model)
        np.testing.assert_allclose(levels, e)
        np.testing.assert_allclose(p, q, atol=1e-14)
    for model in ising.HAMILTONIANS:
        e = ising.energy(ising.all_states(4, 4), model)
        assert ising.exact_log_z(4, 4, 0.3, model) == pytest.approx(np.log(np.exp(-0.3 * e).sum()), rel=1e-13)


@pytest.mark.parametrize("beta", [0.2, 0.44])
def test_heat_capacity_by_enumeration_and_kaufman_derivatives(beta):
    e = ising.energy(ising.all_states(4, 4))
    w = np.exp(-beta * (e - e.min()))
    mean = (w * e).sum() / w.sum()
    var = (w * (e - mean) ** 2).sum() / w.sum()
    assert ising.exact_heat_capacity(4, 4, beta) == pytest.approx(beta**2 * var, rel=1e-12)
    # wide lattices use finite differences of Kaufman's log Z: against the transfer matrix
    for shape in ((8, 8), (6, 9)):
        assert ising.kaufman_moments(*shape, beta) == pytest.approx(ising.exact_moments(*shape, beta), rel=1e-7)
    assert ising.exact_moments(12, 12, beta) == ising.kaufman_moments(12, 12, beta)

"""The Hamiltonian interface: every system answers the same questions, and the resolver and the
file attributes rebuild the same object; against the physics modules' own exact results."""
import json

import numpy as np
import pytest

import hamiltonians
import ising
import lattices
import potts

SYSTEMS = [ising.Ising("ISING1"), ising.Ising("ISING2"), potts.Potts(3), potts.Potts(4)]


def _grids(h, n=64, shape=(4, 5), seed=0):
    rng = np.random.default_rng(seed)
    if h.q == 2:
        return rng.choice(np.array([-1, 1], np.int8), size=(n, *shape))
    return rng.integers(0, h.q, size=(n, *shape)).astype(np.int8)


@pytest.mark.parametrize("h", SYSTEMS, ids=lambda h: h.name)
def test_every_system_answers_the_interface(h):
    for member in ("name", "label", "q", "trained_on", "beta_c", "lattice_kind"):
        getattr(h, member)
    assert h.lattice_kind in lattices.KINDS
    g = _grids(h)
    h.check_grids(g)
    # its table is the same energy, window by window (a table is also a Hamiltonian)
    t = h.table()
    assert t.q == h.q and t.trained_on == h.name and t.label == f"{h.name}_table"
    np.testing.assert_allclose(t.energy(g), h.energy(g), atol=1e-9)
    assert t.table() is t and t.lattice_kind in lattices.KINDS
    m = h.order_parameter(g)
    assert m.shape == (len(g),) and np.all(np.abs(m) <= 1)
    with pytest.raises(ValueError):
        h.check_grids(g + 7)
    # the class's crossing exponent 1/nu + omega, the same for its table: Ising 1 + 7/4, 3-state Potts
    # 6/5 + 4/5, none for 4 states (logarithmic corrections)
    assert h.crossing_exponent == t.crossing_exponent == {"ISING1": 2.75, "ISING2": 2.75, "POTTS3": 2.0}.get(h.name)


@pytest.mark.parametrize("h", SYSTEMS, ids=lambda h: h.name)
def test_file_attributes_rebuild_the_system(h):
    attrs = json.loads(json.dumps(h.attrs()))           # as plain as a file's attributes
    assert attrs["q"] == h.q and hamiltonians.from_attrs(attrs) == h
    assert hamiltonians.from_attrs(h.table().attrs()) is None      # a learned table lives in its run
    assert hamiltonians.resolve(h.name) == h and hamiltonians.resolve(h.name, as_table=True) == h.table()


def test_a_file_without_q_is_ising():
    assert hamiltonians.from_attrs({"hamiltonian": "ISING2"}) == ising.Ising("ISING2")
    assert hamiltonians.from_attrs({}) == ising.Ising("ISING1")
    assert hamiltonians.from_attrs({"q": 3}) == potts.Potts(3)


@pytest.mark.parametrize("h", [ising.Ising("ISING1"), ising.Ising("ISING2"), potts.Potts(3)], ids=lambda h: h.name)
def test_exact_results_through_the_object_against_enumeration(h):
    """P(E) on 3 x 3 through the interface equals brute force over every state; a 2% wrong beta does not."""
    beta = 0.4
    levels, p = h.exact_distribution(3, 3, beta)
    states = ising.all_states(3, 3) if h.q == 2 else potts.all_states(3, 3, h.q)
    e = h.energy(states)
    w = np.exp(-beta * (e - e.min()))
    brute = np.array([w[np.isclose(e, lv)].sum() for lv in levels]) / w.sum()
    np.testing.assert_allclose(p, brute, rtol=1e-10, atol=1e-14)
    _, p_wrong = h.exact_distribution(3, 3, beta * 1.02)
    assert np.abs(p_wrong - brute).max() > 1e-4
    mean, var = h.exact_moments(3, 3, beta)
    assert mean == pytest.approx((levels * brute).sum(), rel=1e-10)


def test_a_learned_table_has_no_exact_results_and_says_so():
    t = ising.Ising("ISING1").table()
    with pytest.raises(ValueError, match="table"):
        t.exact_distribution(3, 3, 0.4)


def test_the_resolver_names_what_it_takes(tmp_path):
    with pytest.raises(ValueError, match="NOPE"):
        hamiltonians.resolve("NOPE")
    with pytest.raises(ValueError, match="q must be"):
        hamiltonians.resolve("POTTS1")
    fit = tmp_path / "fit.json"
    fit.write_text(json.dumps({"couplings": {"J_horizontal": 1.0, "J_vertical": 1.0, "J_diagonal": 0.0,
                                             "J_antidiagonal": 0.0, "field": 0.0}, "trained_on": "ISING1"}))
    t = hamiltonians.resolve(str(fit))
    assert t.trained_on == "ISING1" and t.label == "fit"
    g = _grids(ising.Ising("ISING1"))
    np.testing.assert_allclose(t.energy(g), ising.energy(g), atol=1e-9)
    called = []
    assert hamiltonians.resolve(str(tmp_path), learned=lambda p: called.append(p) or "run") == "run"
    assert called == [str(tmp_path)]


def test_a_couplings_file_is_a_spin_glass_source(tmp_path):
    """--hamiltonian F.npz (arrays J_h, J_v, e.g. inverse_ising.py's per-bond fit) is that instance at its size."""
    rng = np.random.default_rng(3)
    J_h, J_v = rng.normal(size=(3, 5)).astype(np.float32), rng.normal(size=(3, 5)).astype(np.float32)
    np.savez(tmp_path / "fit.npz", J_h=J_h, J_v=J_v)
    h = hamiltonians.resolve(str(tmp_path / "fit.npz"))
    assert (h.n_x, h.n_y) == (3, 5)
    g = rng.choice(np.array([-1, 1], np.int8), (4, 3, 5))
    bonds = (J_h * g * np.roll(g, -1, axis=2) + J_v * g * np.roll(g, -1, axis=1)).sum(axis=(1, 2))
    np.testing.assert_allclose(h.energy(g), -bonds, rtol=1e-5)
    with pytest.raises(ValueError, match="--hamiltonian .*missing.npz: no such file"):
        hamiltonians.resolve(str(tmp_path / "missing.npz"))

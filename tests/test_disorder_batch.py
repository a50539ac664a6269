"""Many spin-glass instances in one compiled program (`spin_glass.Disorder`, `sampler.Sampler`: chains laid
out as instances x chains x betas): each instance's energy law at every beta against its own enumerated
P(E) with replica exchange on (and a power check: a wrong beta, another instance's law), no swap ever
between instances, the batch's first instance the very chains of a run of it alone; the command line
`phase_diagram.py --hamiltonian EA --instances K`."""
import json

import numpy as np
import pytest

import phase_diagram as pd
import spin_glass
from conftest import run_cli, user_error
from estimators import chi_square_test, level_counts
from sampler import Sampler

ALPHA = 1e-4                              # chi-square p-value threshold, fixed in advance (fixed seeds)
SEEDS = (2, 3, 5)                         # 4 x 4 ±J instances with E_0 = -18, -20, -24
LADDER = (0.3, 0.5, 0.8, 1.2, 2.0)        # T = 3.3 ... 0.5
TESTED = (1, 3, 4)                        # beta 0.5, 1.2, 2.0


@pytest.fixture(scope="module")
def batch():
    """3 instances x 2048 chains x 5 betas in one Sampler, swaps every sweep: energies (K, samples, nb)."""
    ensemble = spin_glass.Disorder.standard(4, 4, SEEDS)
    s = Sampler(4, 4, ensemble, LADDER, 2048, seed=11, swap_every=1)
    s.burn(200)
    spins, energies = (np.asarray(a)[:, :s.n_real] for a in s.produce(4, 25))
    K, nb = len(SEEDS), len(LADDER)
    grids = spins.reshape(4, K, 2048, nb, 4, 4)
    energies = energies.reshape(4, K, 2048, nb)
    own = ensemble.energy(np.moveaxis(grids, 1, -3))                                  # (4, 2048, nb, K)
    np.testing.assert_array_equal(np.moveaxis(own, -1, 1), energies)                 # each under its own J
    return ensemble, s, np.moveaxis(energies, 1, 0).reshape(K, -1, nb)


@pytest.mark.parametrize("b", TESTED)
def test_each_instance_has_its_own_energy_law(batch, b):
    ensemble, _, energies = batch
    beta = LADDER[b]
    for k, h in enumerate(ensemble.instances):
        levels, p = spin_glass.enumerated_distribution(h.J_h_array, h.J_v_array, beta)
        counts, strays = level_counts(energies[k, :, b], levels)
        assert strays == 0 and chi_square_test(counts, p)[2] > ALPHA, (h.label, beta)
        # power: the same samples against a 15 % wrong beta, and against the next instance's law
        _, p_wrong = spin_glass.enumerated_distribution(h.J_h_array, h.J_v_array, 1.15 * beta)
        assert chi_square_test(counts, p_wrong)[2] < ALPHA, (h.label, beta)
        other = ensemble.instances[(k + 1) % len(SEEDS)]
        levels_o, p_o = spin_glass.enumerated_distribution(other.J_h_array, other.J_v_array, beta)
        counts_o, strays_o = level_counts(energies[k, :, b], levels_o)
        assert strays_o > 0 or chi_square_test(counts_o, p_o)[2] < ALPHA, (h.label, other.label, beta)


def test_swaps_happen_and_are_counted_per_instance(batch):
    _, s, _ = batch
    rates = s.swap_rates(by_instance=True)
    assert rates.shape == (len(SEEDS), len(LADDER) - 1) and np.all(rates > 0.05) and np.all(rates <= 1)
    np.testing.assert_allclose(rates.mean(axis=0), s.swap_rates())
    assert list(s.lowest_energies(by_instance=True)[:, -1]) == [h.ground_state()[0] for h in
                                                                 spin_glass.Disorder.standard(4, 4, SEEDS).instances]


def test_chains_of_different_instances_never_swap():
    """A ferromagnet (E_0 = -32), a ±J instance (-18) and a ferromagnet of J = 1/4 (-8) with swaps every
    sweep: every chain's lowest energy is its own instance's ground state at the coldest beta and never
    below it at any beta (a configuration carried over from another instance would bring its energy)."""
    ones = np.ones((4, 4))
    ensemble = spin_glass.Disorder.of([spin_glass.EdwardsAnderson.of(ones, ones), spin_glass.EdwardsAnderson.standard(4, 4, 2),
                                       spin_glass.EdwardsAnderson.of(ones / 4, ones / 4)])
    e0 = np.array([h.ground_state()[0] for h in ensemble.instances])
    assert list(e0) == [-32, -18, -8]
    s = Sampler(4, 4, ensemble, [0.2, 0.6, 2.0, 6.0], 64, seed=4, swap_every=1)
    s.burn(300)
    spins, energies = (np.asarray(a)[:, :s.n_real] for a in s.produce(2, 10))
    low = s.chain_lowest_energies()                                                   # (3, 64, 4)
    assert np.all(low >= e0[:, None, None] - 1e-6)
    assert np.all(low[:, :, -1] == e0[:, None])
    own = ensemble.energy(np.moveaxis(spins.reshape(2, 3, 64, 4, 4, 4), 1, -3))
    np.testing.assert_array_equal(np.moveaxis(own, -1, 1).reshape(2, -1), energies)
    assert np.all(s.swap_rates(by_instance=True) > 0)


def test_the_first_instance_of_a_batch_is_its_run_alone():
    """Chain streams are keyed by chain id, so instance 0's chains (ids 0 ...) in a batch of 3 are exactly
    those of a Sampler of that instance alone, by the batch's grouped dense products and by its gathers
    (local fields of ±1 terms: exact either way)."""
    h = spin_glass.EdwardsAnderson.standard(4, 4, 3)
    batch = spin_glass.Disorder.of([h, *spin_glass.Disorder.standard(4, 4, (7, 8)).instances])
    runs = []
    for ham, dense in ((h, None), (batch, True), (batch, False)):
        s = Sampler(4, 4, ham, [0.4, 1.0, 2.5], 8, seed=9, swap_every=2, dense=dense)
        assert s.lat.dense == (dense is not False)
        s.burn(50)
        spins, energies = (np.asarray(a)[:, :24] for a in s.produce(3, 4))
        runs.append((spins, energies, s.chain_lowest_energies()[0]))
    for run in runs[1:]:
        for a, b in zip(runs[0], run):
            np.testing.assert_array_equal(a, b)


def test_a_disorder_average_is_one_size_and_no_data_file():
    import sampler

    with pytest.raises(ValueError, match="share a lattice size"):
        spin_glass.Disorder.of([spin_glass.EdwardsAnderson.standard(4, 4, 0), spin_glass.EdwardsAnderson.standard(4, 5, 0)])
    with pytest.raises(ValueError, match="one instance"):
        sampler.validate(spin_glass.Disorder.standard(4, 4, (0, 1)), 4, 4, [0.5], 10)
    assert spin_glass.Disorder.standard(4, 4, (3, 4, 5)).label == "EA_4x4_seeds3-5"


# ----------------------------------------------------------------------------- the command line
def test_instances_writes_a_disorder_average(tmp_path, capsys):
    code = pd.main(["--hamiltonian", "EA", "--disorder_seed", "3", "--instances", "2", "--sizes", "3",
                    "--betas", "0.3", "1.0", "--chains", "4", "--sweeps", "40", "--burn_in", "20", "--thin", "2",
                    "--out", str(tmp_path)])
    assert code == 0
    report = json.loads((tmp_path / "EA_seeds3-4.json").read_text())
    assert report["disorder_seeds"] == [3, 4] and report["instances"] == 2
    assert len(report["rows"]) == 2 * 2 and {r["disorder_seed"] for r in report["rows"]} == {3, 4}
    avg = report["average_rows"]
    assert len(avg) == 2 and all(r["instances"] == 2 for r in avg)
    for a in avg:
        rows = [r for r in report["rows"] if (r["L"], r["beta"]) == (a["L"], a["beta"])]
        assert a["U_per_site"] == pytest.approx(np.mean([r["U_per_site"] for r in rows]))
        assert a["U_exact_per_site"] == pytest.approx(np.mean([r["U_exact_per_site"] for r in rows]))
        assert a["C_per_site_spread"] == pytest.approx(np.std([r["C_per_site"] for r in rows], ddof=1))
    text = (tmp_path / "EA_seeds3-4.md").read_text()
    assert text.startswith("# The ±J spin glass, disorder seeds 3 ... 4") and "## Disorder average" in text
    assert (tmp_path / "EA_seeds3-4.png").stat().st_size > 5000


@pytest.mark.parametrize("flags, usage", [
    (["--hamiltonian", "EA", "--instances", "0"], True),
    (["--hamiltonian", "ISING1", "--instances", "2"], False),
    (["--instances", "3"], False),
])
def test_bad_instances_is_one_line(tmp_path, capsys, flags, usage):
    code, err = run_cli(pd.main, [*flags, "--sizes", "4", "6", "--out", tmp_path / "out", "--images", tmp_path / "img"],
                        capsys)
    user_error(code, err, "--instances", usage=usage)
    assert not (tmp_path / "out").exists() and not (tmp_path / "img").exists()


@pytest.mark.slow
def test_a_batch_is_the_same_on_one_or_three_devices():
    """Sharded over 1 or 3 XLA host devices (the chains padded to 81, 4 groups of 24 by the batched
    products), the same chains: streams are per chain id, the instance of a chain is its layout's."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = ("import jax, numpy as np, spin_glass; from sampler import Sampler; assert len(jax.devices()) == %d; "
            "s = Sampler(4, 4, spin_glass.Disorder.standard(4, 4, (2, 3, 5)), [0.4, 1.0, 2.5], 8, 3, swap_every=1); "
            "s.burn(20); e = np.asarray(s.produce(2, 3)[1])[:, :s.n_real]; print(s.B, e.tobytes().hex())")
    outs = []
    for nd in (1, 3):
        env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={nd}", JAX_PLATFORMS="cpu")
        run = subprocess.run([sys.executable, "-c", code % nd], check=True, cwd=Path(__file__).resolve().parents[1],
                             env=env, capture_output=True, text=True)
        outs.append(run.stdout.split())
    assert outs[0][1] == outs[1][1] and outs[1][0] == "81"

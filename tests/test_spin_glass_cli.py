"""`generate_ising.py --hamiltonian EA`: the instance (a seed's ±J, or a file's couplings) and replica
exchange through the command line, recorded in the file; bad input is one line and no file."""
import h5py
import numpy as np
import pytest

import generate_ising as gi
import hamiltonians
import spin_glass
from conftest import user_error

BASE = ["--n_x", "4", "--n_y", "5", "--n_samples", "16", "--burn_in", "20", "--no_progress"]


def test_a_seeds_instance_with_swaps_round_trips(tmp_path):
    out = tmp_path / "ea.hdf5"
    assert gi.main([*BASE, "--hamiltonian", "EA", "--disorder_seed", "3", "--n_beta_samples", "4", "--beta_min", "0.3",
                    "--beta_max", "3", "--swap_every", "2", "--filename", str(out)]) == 0
    with h5py.File(out) as f:
        attrs, grids, energies = dict(f.attrs), f["ising_grids"][:], f["true_energies"][:]
    h = hamiltonians.from_attrs(attrs)
    assert h == spin_glass.EdwardsAnderson.standard(4, 5, 3) and attrs["swap_every"] == 2
    np.testing.assert_allclose(attrs["betas"], np.geomspace(0.3, 3, 4))
    assert attrs["swap_acceptance"].shape == (3,) and np.all((attrs["swap_acceptance"] >= 0) & (attrs["swap_acceptance"] <= 1))
    np.testing.assert_array_equal(h.energy(grids), energies)


def test_a_files_couplings(tmp_path):
    rng = np.random.default_rng(0)
    J_h, J_v = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
    np.savez(tmp_path / "c.npz", J_h=J_h, J_v=J_v)
    out = tmp_path / "ea.hdf5"
    assert gi.main([*BASE, "--hamiltonian", "EA", "--couplings", str(tmp_path / "c.npz"), "--beta", "0.5",
                    "--filename", str(out)]) == 0
    with h5py.File(out) as f:
        h = hamiltonians.from_attrs(dict(f.attrs))
        assert f.attrs["disorder_seed"] == -1
        np.testing.assert_allclose(h.energy(f["ising_grids"][:]), f["true_energies"][:], atol=1e-4)
    np.testing.assert_allclose(h.J_h_array, J_h, rtol=1e-6)


@pytest.mark.parametrize("extra, named", [
    (["--hamiltonian", "EA", "--swap_every", "2"], "--swap_every"),                      # one beta
    (["--hamiltonian", "EA", "--couplings", "BAD_SHAPE"], "BAD_SHAPE"),
    (["--hamiltonian", "EA", "--couplings", "NAN"], "NAN"),
    (["--hamiltonian", "EA", "--couplings", "MISSING.npz"], "MISSING.npz"),
])
def test_bad_input_is_one_line_and_no_file(tmp_path, capsys, extra, named):
    np.savez(tmp_path / "BAD_SHAPE", J_h=np.ones((4, 5)), J_v=np.ones((5, 4)))
    nan = np.ones((4, 5))
    nan[1, 2] = np.nan
    np.savez(tmp_path / "NAN", J_h=nan, J_v=np.ones((4, 5)))
    extra = [str(tmp_path / f"{e}.npz") if e in ("BAD_SHAPE", "NAN") else
             str(tmp_path / e) if e == "MISSING.npz" else e for e in extra]
    out = tmp_path / "x.hdf5"
    with pytest.raises(SystemExit) as e:
        gi.main([*BASE, "--filename", str(out), *extra])
    user_error(e.value.code, capsys.readouterr().err, named, usage=True)
    assert not out.exists()


def test_consistency_reads_an_instance_down_to_its_ground_state(tmp_path):
    """consistency.py on an EA file whose coldest beta holds only ground states (standard error 0)."""
    import consistency

    out = tmp_path / "ea.hdf5"
    assert gi.main([*BASE, "--hamiltonian", "EA", "--disorder_seed", "1", "--n_beta_samples", "3", "--beta_min", "0.3",
                    "--beta_max", "8", "--swap_every", "1", "--filename", str(out)]) == 0
    assert consistency.main([str(out), "--out", str(tmp_path / "report.md")]) == 0
    checks = consistency.energy_histogram_check(out)
    assert checks[-1]["sem"] == 0 and abs(consistency.mean_energy_table(checks)[-1]["z"]) < 1
    assert all(c["stray_samples"] == 0 for c in checks)
    with h5py.File(out) as f:
        low = f.attrs["lowest_energy"]
    e0 = spin_glass.EdwardsAnderson.standard(4, 5, 1).ground_state()[0]
    assert low.shape == (3,) and low[-1] == e0 and np.all(low >= e0)


def test_the_standard_spin_glass_set(tmp_path, capsys):
    """data_files.py --hamiltonian EA (make data-ea): one instance, disorder seed 0, train/val/test at T = 2
    above the instance's specific-heat maximum (exact), eval T = 3 ... 0.2 with swaps; --q is refused."""
    import data_files

    assert data_files.ea_path("eval_12", tmp_path).endswith("eval_data_12x12.hdf5")
    argv = data_files.ea_command("train", tmp_path, n_train=32)
    assert argv[:4] == ["--hamiltonian", "EA", "--disorder_seed", "0"] and "0.5" in argv
    ev = data_files.ea_command("eval", tmp_path)
    assert "--swap_every" in ev and float(ev[ev.index("--beta_min") + 1]) == pytest.approx(1 / 3)
    assert float(ev[ev.index("--beta_max") + 1]) == 5.0
    h = spin_glass.EdwardsAnderson.standard(8, 8, 0)
    T = np.linspace(0.5, 3, 26)
    c = [h.exact_moments(8, 8, 1 / t)[1] / t ** 2 for t in T]
    assert T[int(np.argmax(c))] < 1 / 0.5                     # the training temperature is above the maximum
    assert gi.main([*argv, "--burn_in", "20", "--no_progress"]) == 0
    with h5py.File(data_files.ea_path("train", tmp_path)) as f:
        assert hamiltonians.from_attrs(dict(f.attrs)) == h and f.attrs["disorder_seed"] == 0
        assert np.all(f["beta"][:] == np.float32(0.5))
    from checks import main_guard

    capsys.readouterr()
    assert main_guard(data_files.main, ["--data_dir", str(tmp_path / "x"), "--hamiltonian", "EA", "--q", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--q" in err[0] and not (tmp_path / "x").exists()

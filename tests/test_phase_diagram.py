"""phase_diagram.py: the sampled thermodynamics against exact results, the Binder crossing, the
files it writes and its answers to a user's mistakes.

Physics against exact results, not against the code's own output: U/N and C/N of 4 x 4 and 6 x 6
ISING1 against the exact finite-lattice values (`ising.exact_mean_energy` / `exact_heat_capacity`,
the transfer matrix for these sizes), <|m|> and U4 of 4 x 4 against the enumeration of all 2^16
states. Seeds are fixed, so outcomes reproduce; the tolerance (Z standard errors) is fixed in advance."""
import io
import json
import math
from contextlib import redirect_stderr
from pathlib import Path

import numpy as np
import pytest

import estimators
import ising
import potts
import phase_diagram as pd
from checks import UserError
from conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
Z = 4.0
TINY = ["--sizes", "4", "6", "--betas", "0.3", "0.44", "0.6", "--chains", "32", "--sweeps", "4000", "--burn_in", "500",
        "--seed", "3"]
KEYS = {"hamiltonian", "sizes", "betas", "rows", "crossings", "tc", "tc_err", "beta_c", "chains", "sweeps", "burn_in",
        "thin", "seed", "command", "tc_exact", "beta_c_exact"}
ROW_KEYS = {"L", "beta", "U_per_site", "U_err", "C_per_site", "C_err", "abs_m", "abs_m_err", "chi_per_site", "chi_err",
            "binder", "binder_err", "tau_int_abs_m", "U_exact_per_site", "C_exact_per_site"}


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The command on the tiny grid, on a terminal: (report, out folder, images folder, stderr)."""
    root = tmp_path_factory.mktemp("phase")
    terminal = _Terminal()
    with redirect_stderr(terminal):
        assert pd.main([*TINY, "--out", str(root / "out"), "--images", str(root / "img")]) == 0
    return json.loads((root / "out" / "ISING1.json").read_text()), root / "out", root / "img", terminal.getvalue()


def _exact_4x4_magnetisation(beta):
    """(<|m|>, <m^2>, <m^4>) of 4 x 4 ISING1 by Boltzmann-weighting every state."""
    states = ising.all_states(4, 4)
    e, m = ising.energy(states), states.reshape(len(states), -1).mean(axis=1, dtype=np.float64)
    w = np.exp(-beta * (e - e.min()))
    w /= w.sum()
    return float(w @ np.abs(m)), float(w @ m ** 2), float(w @ m ** 4)


def test_energy_and_heat_capacity_match_the_exact_finite_lattice(tiny):
    report = tiny[0]
    assert len(report["rows"]) == 6
    for r in report["rows"]:
        L, b = r["L"], r["beta"]
        u, c = ising.exact_mean_energy(L, L, b) / L ** 2, ising.exact_heat_capacity(L, L, b) / L ** 2
        assert r["U_exact_per_site"] == pytest.approx(u, abs=1e-7) and r["C_exact_per_site"] == pytest.approx(c, abs=1e-6)
        assert 0 < r["U_err"] < 0.01 and 0 < r["C_err"] < 0.05, r
        assert abs(r["U_per_site"] - u) < Z * r["U_err"], r
        assert abs(r["C_per_site"] - c) < Z * r["C_err"], r


def test_magnetisation_and_binder_cumulant_match_enumeration(tiny):
    for r in (r for r in tiny[0]["rows"] if r["L"] == 4):
        abs_m, m2, m4 = _exact_4x4_magnetisation(r["beta"])
        assert 0 < r["abs_m_err"] < 0.01 and 0 < r["binder_err"] < 0.01, r
        assert abs(r["abs_m"] - abs_m) < Z * r["abs_m_err"], (r, abs_m)
        assert abs(r["binder"] - ising.binder_cumulant(m2, m4)) < Z * r["binder_err"], (r, ising.binder_cumulant(m2, m4))
        chi = r["beta"] * 16 * (m2 - abs_m ** 2)
        assert abs(r["chi_per_site"] - chi) < Z * r["chi_err"], (r, chi)


def test_report_files_and_progress_bar(tiny):
    report, out, img, err = tiny
    assert KEYS <= set(report) and report["hamiltonian"] == "ISING1" and report["sizes"] == [4, 6]
    assert report["betas"] == [0.3, 0.44, 0.6] and report["chains"] == 32 and report["thin"] == "measured"
    assert all(ROW_KEYS <= set(r) and r["tau_int_abs_m"] >= 1 for r in report["rows"])
    assert report["tc_exact"] == pytest.approx(2.269185, abs=1e-6) and report["beta_c_exact"] == pytest.approx(0.440687,
                                                                                                                abs=1e-6)
    (c,) = report["crossings"]
    assert c["sizes"] == [4, 6] and report["tc"] == c["T"] and report["beta_c"] == pytest.approx(1 / c["T"])
    assert report["command"].startswith("phase_diagram.py --sizes 4 6")
    assert sorted(p.name for p in out.iterdir()) == ["ISING1.json", "ISING1.md"]
    assert [p.name for p in img.iterdir()] == ["phase_ISING1.png"] and (img / "phase_ISING1.png").stat().st_size > 10_000
    assert "| 4 | 0.44 |" in (out / "ISING1.md").read_text()
    assert "100%" in err


def test_no_progress_bar_on_request(tmp_path):
    terminal = _Terminal()
    with redirect_stderr(terminal):
        assert pd.main(["--sizes", "4", "6", "--betas", "0.3", "0.5", "--sweeps", "64", "--burn_in", "64",
                        "--no-progress_bar", "--out", str(tmp_path), "--images", str(tmp_path)]) == 0
    assert terminal.getvalue() == ""


def test_crossing_recovers_a_planted_crossing():
    x = np.array([0.1, 0.3, 0.4, 0.42, 0.45, 0.5, 0.7])
    x0 = 0.4321
    y1, y2 = 0.6 + 2.0 * (x - x0), 0.6 + 7.0 * (x - x0)          # straight lines: linear interpolation is exact
    bc, i = ising.crossing(x, y1, y2)
    assert bc == pytest.approx(x0, abs=1e-12) and (x[i], x[i + 1]) == (0.42, 0.45)
    assert ising.crossing(x, y2, y1) == (pytest.approx(x0, abs=1e-12), i)           # either order
    # noise where the curves run together: d = -1e-3, +1e-3 (a small rise), then clearly negative
    # (a big fall): with the direction given, only the genuine rise is taken
    y2n = y2.copy()
    y2n[:2] = y1[:2] + np.array([-1e-3, 1e-3])
    err = np.full(len(x), 1e-3)
    assert ising.crossing(x, y1, y2n, err)[1] == 1                                    # the big fall
    bc, i = ising.crossing(x, y1, y2n, err, direction=+1)
    assert i == 3 and bc == pytest.approx(x0, abs=1e-12)
    assert ising.crossing(x, y1, y2n, err, direction=-1)[1] == 1
    assert ising.crossing(x, y1, y1 + 1.0) is None
    assert ising.linear_root([0.0, 1.0], [-1.0, 3.0], 0) == 0.25


def test_jackknife_and_binder_cumulant():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    full, err, reps = ising.jackknife(x, lambda v: v)
    np.testing.assert_allclose(full, x.mean(0))
    np.testing.assert_allclose(err, x.std(0, ddof=1) / math.sqrt(40))    # a mean: the standard error exactly
    assert reps.shape == (40, 3)
    _, err_sq, _ = ising.jackknife(x[:, 0], lambda v: v ** 2)             # delta method: 2 |mean| se
    assert err_sq == pytest.approx(2 * abs(x[:, 0].mean()) * x[:, 0].std(ddof=1) / math.sqrt(40), rel=0.05)
    with pytest.raises(ValueError, match="at least 2"):
        ising.jackknife(x[:1], lambda v: v)
    m = rng.normal(size=1_000_000)
    assert abs(ising.binder_cumulant((m ** 2).mean(), (m ** 4).mean())) < 0.01        # Gaussian: 0
    assert ising.binder_cumulant(0.25, 0.0625) == pytest.approx(2 / 3)              # m = +-1/2: 2/3


def _cli(argv, capsys):
    return run_cli(pd.main, argv, capsys)


@pytest.mark.parametrize("flags, message, usage", [
    (["--sizes", "8"], "at least 2 different sizes", False),
    (["--sizes", "1", "4"], "--sizes must be at least 2", False),
    (["--hamiltonian", "NO_SUCH_RUN"], "--hamiltonian NO_SUCH_RUN", False),
    (["--algorithm", "bogus"], "--algorithm bogus: unknown", False),
    (["--hamiltonian", "EA", "--algorithm", "cluster"], "--algorithm cluster", False),
    (["--proposal", "fitted"], "--proposal fitted: only self-learning", False),
    (["--hamiltonian", "weights/energy/EDNN_F1_C1_hid16x2", "--algorithm", "checkerboard", "--proposal", "fitted"],
     "--proposal fitted", False),
    (["--proposal", "bogus"], "argument --proposal: invalid choice", True),
    (["--hamiltonian", "weights/probability/GRU_1L_1H_hid64"], "only the extensive model", False),
    (["--betas", "-1", "0.5"], "argument --betas: must be a positive number", True),
    (["--betas", "0.4"], "at least 2 different positive", False),
    (["--chains", "1"], "--chains 1", False),
    (["--sizes", "0", "4"], "argument --sizes: must be a positive integer", True),
    (["--sweeps", "3", "--thin", "2"], "--sweeps 3", False),
    (["--out", "AFILE"], "--out", False),
    (["--images", "AFILE/sub"], "--images", False),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, flags, message, usage):
    afile = tmp_path / "AFILE"
    afile.write_text("")
    flags = [str(afile) + f[5:] if f.startswith("AFILE") else str(ROOT / f) if f.startswith("weights/") else f
             for f in flags]
    argv = ["--sizes", "4", "6", "--betas", "0.3", "0.5", "--out", tmp_path / "out", "--images", tmp_path / "img", *flags]
    code, err = _cli(argv, capsys)
    assert code == 2 and "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip() and not (usage and line.startswith(("usage:", " ")))]
    assert len(lines) == 1 and message in lines[0], err
    assert lines[0].startswith("error:") or usage
    assert sorted(tmp_path.iterdir()) == [afile]


def test_sizes_a_table_cannot_tile():
    table = ising.Table.of(np.zeros(2 ** 16), focus=2, context=1)
    with pytest.raises(UserError, match="--sizes 9"):
        pd.check_settings([4, 6, 9], [0.3, 0.4], 8, table)
    assert pd.check_settings([8, 4, 8], [0.4, 0.3, 0.4], 8, table) == ([4, 8], [0.3, 0.4])


@pytest.mark.parametrize("proposal", ["closed_form", "fitted"])
def test_a_run_of_the_extensive_model(tmp_path, proposal):
    """The learned Hamiltonian (trained on ISING1) through the table sampler (self-learning Monte Carlo,
    its proposal read off the table or refitted): named after its folder, with ISING1's exact values
    beside it, and close to them."""
    run = ROOT / "weights" / "energy" / "EDNN_F1_C1_hid16x2"
    assert pd.main(["--hamiltonian", str(run), "--sizes", "4", "6", "--betas", "0.3", "0.5", "--chains", "16",
                    "--sweeps", "400", "--burn_in", "100", "--proposal", proposal, "--no-progress_bar",
                    "--out", str(tmp_path), "--images", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "EDNN_F1_C1_hid16x2.json").read_text())
    assert report["algorithm"] == "cluster" and report.get("proposal", "closed_form") == proposal
    assert (proposal == "fitted") == ("(fitted proposal)" in (tmp_path / "EDNN_F1_C1_hid16x2.md").read_text())
    assert report["hamiltonian"] == str(run) and report["trained_on"] == "ISING1" and len(report["rows"]) == 4
    assert (tmp_path / "phase_EDNN_F1_C1_hid16x2.png").is_file() and (tmp_path / "EDNN_F1_C1_hid16x2.md").is_file()
    for r in report["rows"]:
        assert abs(r["U_per_site"] - r["U_exact_per_site"]) < 0.05, r


@pytest.mark.slow
def test_crossing_of_8_and_16_is_near_onsagers_beta_c(tmp_path):
    assert pd.main(["--sizes", "8", "16", "--betas", "0.4", "0.42", "0.43", "0.44", "0.45", "0.46", "0.48",
                    "--sweeps", "4000", "--burn_in", "1000", "--no-progress_bar", "--out", str(tmp_path),
                    "--images", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "ISING1.json").read_text())
    assert abs(report["beta_c"] / ising.BETA_C_ISING1 - 1) < 0.03, report["crossings"]
    assert abs(report["beta_c"] - ising.BETA_C_ISING1) < 5 * report["beta_c_err"] + 2e-3, report["crossings"]


def test_a_builtin_hamiltonian_as_its_table(tmp_path):
    """--as_table: ISING1 through its table (the learned Hamiltonians' sampler path) gives Kaufman's U/N
    and C/N within the error bars, and is named apart from the built-in run."""
    hamiltonian = pd.resolve("ISING1", as_table=True)
    assert isinstance(hamiltonian, ising.Table) and (hamiltonian.trained_on, hamiltonian.label) == ("ISING1", "ISING1_table")
    assert pd.main(["--as_table", "--sizes", "4", "6", "--betas", "0.3", "0.44", "--chains", "32", "--sweeps", "2000",
                    "--burn_in", "300", "--seed", "5", "--no-progress_bar", "--out", str(tmp_path),
                    "--images", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "ISING1_table.json").read_text())
    for r in report["rows"]:
        assert abs(r["U_per_site"] - r["U_exact_per_site"]) < Z * r["U_err"], r
        assert abs(r["C_per_site"] - r["C_exact_per_site"]) < Z * r["C_err"], r


def test_overview_sets_each_report_beside_its_true_hamiltonian(tmp_path):
    """--overview: a learned report is compared with the true Hamiltonian's run through its table when
    the folder holds one (else its built-in run); the C/N peak is the parabola's vertex."""
    def report(name, trained_on, tc, exact=True):
        rows = [{"L": 8, "beta": b, "U_per_site": -1.0, "C_per_site": c, **({"U_exact_per_site": -1.001,
                 "C_exact_per_site": c} if exact else {})} for b, c in ((0.40, 1.0), (0.44, 2.0), (0.48, 1.0))]
        (tmp_path / f"{name}.json").write_text(json.dumps({"hamiltonian": name, "name": name, "trained_on": trained_on,
                                                           "sizes": [4, 8], "tc": tc, "tc_err": 0.01, "rows": rows}))
    report("ISING1", "ISING1", 2.27)
    report("learned", "ISING1", 2.30)
    text = pd.overview(tmp_path)
    assert "| learned | ISING1 | 2.300 ± 0.010 | 2.270 ± 0.010 (ISING1) | +1.322% ± 0.627% |" in text
    report("ISING1_table", "ISING1", 2.25)
    assert "(ISING1_table) | +2.222%" in pd.overview(tmp_path)
    assert "| 1.0e-03 (L = 8) | 0.4400 (0.4400) |" in pd.overview(tmp_path)
    assert estimators.parabola_peak([0.1, 0.2, 0.3, 0.4], [1.0, 3.0, 2.0, 0.0]) == pytest.approx(0.2 + 0.1 * 0.5 / 3)
    assert pd.main(["--overview", "--out", str(tmp_path)]) == 0 and (tmp_path / "overview.md").is_file()


@pytest.fixture(scope="module")
def tiny_potts(tmp_path_factory):
    root = tmp_path_factory.mktemp("potts")
    assert pd.main(["--hamiltonian", "POTTS3", "--sizes", "3", "4", "--betas", "0.7", "1.0", "1.4", "--chains", "32",
                    "--sweeps", "2000", "--burn_in", "300", "--seed", "4", "--out", str(root), "--images", str(root),
                    "--no-progress_bar"]) == 0
    return json.loads((root / "POTTS3.json").read_text())


def _exact_potts_observables(L, q, beta):
    """(<e>, C/N = beta^2 N Var(e), <m>, U4) of the L x L Potts model by Boltzmann-weighting every state (e = E/N)."""
    states = potts.all_states(L, L, q)
    e, m = potts.energy(states) / L ** 2, potts.zq_magnetisation(states, q)
    w = np.exp(-beta * L ** 2 * (e - e.min()))
    w /= w.sum()
    return (float(w @ e), beta ** 2 * L ** 2 * float(w @ (e - w @ e) ** 2), float(w @ m),
            float(ising.binder_cumulant(w @ m ** 2, w @ m ** 4, components=2)))


def test_potts_observables_match_enumeration(tiny_potts):
    """3 x 3 and 4 x 4 three-state Potts (4 x 4: 3^16 states via the transfer matrix for U, C) on both sides
    of beta_c: U/N, C/N, <m>, U4 within Z standard errors of the exact values; T_c reported against the exact
    infinite-lattice value."""
    assert tiny_potts["tc_exact"] == pytest.approx(1 / math.log(1 + math.sqrt(3)))
    for r in tiny_potts["rows"]:
        L, b = r["L"], r["beta"]
        if L == 3:
            u, c, m, u4 = _exact_potts_observables(3, 3, b)
            assert abs(r["abs_m"] - m) < Z * r["abs_m_err"], (L, b, r["abs_m"], m)
            assert abs(r["binder"] - u4) < Z * r["binder_err"], (L, b, r["binder"], u4)
        else:
            mean, var = potts.exact_moments(L, L, 3, b)
            u, c = mean / L ** 2, b ** 2 * var / L ** 2
        assert abs(r["U_per_site"] - u) < Z * r["U_err"], (L, b, r["U_per_site"], u)
        assert abs(r["C_per_site"] - c) < Z * r["C_err"], (L, b, r["C_per_site"], c)


# ----------------------------------------------------------------------------- the spin glass's report
def test_spin_glass_report_matches_the_exact_instance_and_a_wrong_beta_does_not(tmp_path, capsys):
    """4 x 4 ±J instance, T = 3 ... 0.2 with replica exchange: U/N and C/N within their jackknife errors of
    the transfer matrix (rms z), the ground state seen at the coldest beta; the exact values of a 10%
    wrong beta are many errors away (power); at T = 0.2 the overlap's Binder ratio is that of two
    ground states drawn uniformly (enumeration), which that of T = 0.78 is not (power)."""
    import spin_glass

    betas = list(np.geomspace(1 / 3, 5, 7))
    code = pd.main(["--hamiltonian", "EA", "--disorder_seed", "2", "--sizes", "4", "--betas", *map(str, betas),
                    "--chains", "32", "--sweeps", "2000", "--burn_in", "300", "--thin", "4", "--out", str(tmp_path)])
    assert code == 0
    report = json.loads((tmp_path / "EA_seed2.json").read_text())
    assert (tmp_path / "EA_seed2.md").read_text().startswith("# The ±J spin glass")
    assert (tmp_path / "EA_seed2.png").stat().st_size > 5000
    (summary,) = report["sizes_summary"]
    h = spin_glass.EdwardsAnderson.standard(4, 4, 2)
    assert summary["ground_state_energy"] == h.ground_state()[0] and summary["ground_state_reached"]
    assert summary["n_z_U"] >= 4 and summary["rms_z_U"] < 2.0 and summary["rms_z_C"] < 2.0
    rows = report["rows"]
    assert rows[-1]["lowest_energy"] == h.ground_state()[0]
    wrong = []
    for r in rows:
        mean, var = h.exact_moments(4, 4, 1.1 * r["beta"])
        if r["U_err"] > 0:
            wrong.append((r["U_per_site"] - mean / 16) / r["U_err"])
    assert np.sqrt(np.mean(np.square(wrong))) > 4
    states = spin_glass.all_states(4, 4)
    ground = states[h.energy(states) == h.ground_state()[0]].reshape(-1, 16).astype(float)
    q = ground @ ground.T / 16
    g0 = 1 - (q ** 4).mean() / (3 * (q ** 2).mean() ** 2)
    cold = rows[-1]
    assert abs(cold["binder_q"] - g0) < 3 * cold["binder_q_err"]
    assert abs(rows[-4]["binder_q"] - g0) > 5 * rows[-4]["binder_q_err"]       # T = 0.78: the excited states count


@pytest.mark.parametrize("flags, message", [
    (["--exact_max", "20"], "--exact_max 20"),
    (["--betas", "0.4"], "--betas"),
    (["--chains", "1"], "--chains 1"),
])
def test_spin_glass_bad_input_is_one_line(tmp_path, capsys, flags, message):
    code, err = _cli(["--hamiltonian", "EA", "--sizes", "4", "--out", tmp_path / "out", *flags], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and message in lines[0], err
    assert not (tmp_path / "out").exists()


def test_a_killed_run_resumes_and_gives_the_uninterrupted_result(tmp_path, monkeypatch):
    """Every finished (size, beta block) is kept in the resume folder; a run killed in its second block and
    run again samples only what is missing, and its report equals the uninterrupted run's; a kept block of
    other settings is not reused."""
    kw = dict(sizes=(4, 6), betas=(0.3, 0.44, 0.6), chains=4, sweeps=200, burn_in=50, seed=3, progress=False)
    whole = pd.phase_diagram("ISING1", **kw)
    calls, real = [], pd.sample_block

    def dies_second(*a, **k):
        calls.append(a[0])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)
    monkeypatch.setattr(pd, "sample_block", dies_second)
    with pytest.raises(KeyboardInterrupt):
        pd.phase_diagram("ISING1", resume=tmp_path / "kept", **kw)
    assert [p.name for p in (tmp_path / "kept").iterdir()] == ["L4_0.npz"]
    monkeypatch.setattr(pd, "sample_block", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    resumed = pd.phase_diagram("ISING1", resume=tmp_path / "kept", **kw)
    assert calls == [4, 6, 6]                                  # L = 4 not sampled again
    assert json.dumps(resumed, sort_keys=True) == json.dumps(whole, sort_keys=True)
    other = pd.phase_diagram("ISING1", resume=tmp_path / "kept", **{**kw, "seed": 4})
    assert calls[3:] == [4, 6] and other["rows"] != whole["rows"]


def test_blocks_sampled_in_processes_give_the_same_report_and_are_kept(tmp_path, monkeypatch):
    """--workers 2: the blocks run in two spawned processes (none in this one), each kept in the resume folder
    as it finishes, and the report is the one of a single process (every block has its own seed)."""
    kw = dict(sizes=(4, 6), betas=(0.3, 0.44, 0.6), chains=4, sweeps=200, burn_in=50, seed=3, progress=False)
    one = pd.phase_diagram("ISING1", **kw)

    def not_here(*a, **k):
        raise AssertionError("sampled in the parent process")
    monkeypatch.setattr(pd, "sample_block", not_here)          # the spawned workers import their own
    two = pd.phase_diagram("ISING1", resume=tmp_path / "kept", workers=2, **kw)
    assert json.dumps(two, sort_keys=True) == json.dumps(one, sort_keys=True)
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == ["L4_0.npz", "L6_1.npz"]
    again = pd.phase_diagram("ISING1", resume=tmp_path / "kept", workers=2, **{**kw, "seed": 4})
    assert again["rows"] != one["rows"]                        # other settings: sampled anew, not loaded


def test_blocks_of_one_size_with_different_thinning_reweight_together(monkeypatch):
    """Thin is measured per beta block, so the betas of one size can hold different numbers of samples;
    the reweighted crossing uses the first n of each (n the fewest), and the run completes."""
    monkeypatch.setattr(pd, "beta_blocks", lambda nb, chains, sites: [np.array([i]) for i in range(nb)])
    real = pd.sample_block

    def uneven(*a, **k):
        b = real(*a, **k)
        if a[2][0] == 0.42:                                    # one beta keeps half its samples
            b["m"], b["E"] = b["m"][..., ::2], b["E"][..., ::2]
        return b
    monkeypatch.setattr(pd, "sample_block", uneven)
    r = pd.phase_diagram("ISING1", sizes=(4, 6), betas=(0.42, 0.44, 0.46), chains=4, sweeps=400, burn_in=50,
                         seed=2, progress=False)
    assert len(r["crossings"]) == 1 and "method" in r["crossings"][0]

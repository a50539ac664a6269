"""The spin glass's report (`phase_diagram.py --hamiltonian EA`): one instance, or a disorder average.

    python phase_diagram.py --hamiltonian EA --disorder_seed 0 --sizes 8 12 --out results/spin_glass
    python phase_diagram.py --hamiltonian EA --disorder_seed 0 --instances 32 --sizes 8 12

2D has no finite-temperature transition to cross, so this is its own report. On each L x L the
standard ±J instances of --disorder_seed S, S + 1, ..., S + K - 1 (K = --instances, default 1) run as
one compiled program (`spin_glass.Disorder`, `sampler.Sampler`: chains laid out as instances x chains x
betas and sharded over the devices JAX sees), 2 C chains per beta of each instance (C = --chains) with
replica exchange every --swap_every sweeps (a geometric ladder, default T = 3 ... 0.2; swaps only
between neighbouring betas of one instance and chain), all started at random. Chains c and C + c of an
instance are two independent replicas of it at each beta (each belongs to its own set of exchanging
chains); a pair gives the time averages of e, e^2 (both replicas), q^2, q^4 (q their overlap,
`spin_glass.overlap`), one independent sample per pair. Per instance: U/N = <e>, C/N = beta^2 N (<e^2> -
<e>^2) and the overlap's Binder ratio g = 1 - <q^4> / (3 <q^2>^2) (`spin_glass.binder_ratio`) with
jackknife errors over the pairs; the lowest energy the run has seen per beta
(`Sampler.lowest_energies`). Exact U/N and C/N (`spin_glass.moments`) and the ground-state energy
(`spin_glass.ground_state`) of each instance where the transfer matrix reaches (L <= --exact_max, 12 by
default: 14 x 14 takes minutes per beta); z = (sampled - exact) / error and its rms over the betas.

The disorder average (K > 1), per (L, beta): the mean over the instances of U/N, C/N and g, their
spread (the standard deviation over instances: sample-to-sample fluctuations, the physics of a glass)
and the error of the mean, spread / sqrt(K) (instances are independent, so this holds whatever the
thermal errors); beside it the mean of the instances' exact values where every instance has them, and
z = (mean sampled - mean exact) / thermal error of the mean (sqrt(sum_k err_k^2) / K): the sampler's
error alone, since the exact mean is of the same instances. K = 1 is the single-instance report.
"""
from __future__ import annotations

import math
import shlex
import time
from pathlib import Path

import numpy as np

import estimators
import spin_glass
from checks import UserError, atomic_path, check_output_dir, check_output_file, write_json

EA_BETAS = tuple(float(b) for b in np.geomspace(1 / 3, 5.0, 16))      # T = 3 ... 0.2
EA_CHAINS, EA_SWEEPS, EA_BURN_IN, EA_THIN, EA_EXACT_MAX = 64, 10_000, 4_000, 10, 12
OBSERVABLES = (("U_per_site", "U_err", "U_exact_per_site", "z_U"), ("C_per_site", "C_err", "C_exact_per_site", "z_C"),
               ("binder_q", "binder_q_err", None, None))


def size_seed(seed: int, size: int) -> int:
    """The Sampler's 64-bit seed of a size (`phase_diagram._seed(seed, size, 0)`, so earlier reports reproduce)."""
    a, b = np.random.SeedSequence([seed, size, 0]).generate_state(2, np.uint32)
    return int(a) | int(b) << 32


def report_name(disorder_seed: int, instances: int = 1) -> str:
    """<out>/<name>.json: EA_seed<S> for one instance, EA_seeds<S>-<S+K-1> for a disorder average."""
    return f"EA_seed{disorder_seed}" if instances == 1 else f"EA_seeds{disorder_seed}-{disorder_seed + instances - 1}"


# ----------------------------------------------------------------------------- sampling
def _pair_averages(s, n: int, thin: int) -> np.ndarray:
    """n samples `thin` sweeps apart of a Sampler with 2 C chains per beta and instance: per instance and pair
    (chain c, chain C + c) the time averages of e, e^2 (over both replicas), q^2, q^4, float64 (K, C, nb, 4);
    e = E/N."""
    nb, S, K = len(s.betas), s.S, s.n_instances
    C = s.n_chains // 2
    acc = np.zeros((K, C, nb, 4))
    for spins, energies in s.stream(n, thin):
        x = spins.reshape(len(spins), K, 2, C, nb, S).astype(np.float32)
        q = np.einsum("tkcbs,tkcbs->tkcb", x[:, :, 0], x[:, :, 1]) / S                      # (t, K, C, nb)
        e = energies.reshape(len(spins), K, 2, C, nb).astype(np.float64) / S                # instance, replica, pair
        acc += np.stack([e.mean(2).sum(0), (e * e).mean(2).sum(0), (q * q).sum(0), (q ** 4).sum(0)], axis=-1)
    return acc / n


def _burn_to_ground_state(s, burn_in: int, e0, piece: int = 512):
    """s.burn(burn_in); with the exact ground-state energies e0 (K,) of the instances, in traced pieces
    instead, recording for each set of exchanging chains (chain number) the first sweep after which its
    coldest beta (the last) holds a ground state: float (K, chains), inf where none did during burn-in.
    None without e0."""
    if e0 is None:
        s.burn(burn_in)
        return None
    nb, K = len(s.betas), s.n_instances
    e0 = np.asarray(e0, np.float64).reshape(K, 1)
    first, done = np.full((K, s.n_chains), np.inf), 0
    while done < burn_in:
        k = min(piece, burn_in - done)
        es = np.asarray(s.trace(k)[0])[:, :s.n_real].reshape(k, K, -1, nb)[..., -1]     # (k, K, chains)
        hit = es <= e0 + 1e-6
        at = np.where(hit.any(axis=0), done + 1 + hit.argmax(axis=0), np.inf)
        first = np.minimum(first, at)
        done += k
    return first


def _instance_rows(L, h, betas, v_all, low, first, swap, exact, e0):
    """One instance's rows (one per beta) and summary, from its pair averages v_all float64 (C, nb, 4),
    its lowest energies low (nb,), ground-state first sweeps first (chains,) or None, swap rates (nb - 1,)."""
    N, rows = L * L, []
    for b, beta in enumerate(betas):
        v = v_all[:, b]
        c, c_err, _ = estimators.jackknife(v, lambda m: beta ** 2 * N * (m[1] - m[0] ** 2))
        # spin_glass.binder_ratio's form, of the means <q^2>, <q^4>
        g, g_err, _ = estimators.jackknife(v, lambda m: estimators.binder_cumulant(m[2], m[3]))
        r = {"L": L, "beta": float(beta), "T": 1.0 / beta, "U_per_site": float(v[:, 0].mean()),
             "U_err": float(v[:, 0].std(ddof=1) / math.sqrt(len(v))), "C_per_site": float(c), "C_err": float(c_err),
             "q2": float(v[:, 2].mean()), "binder_q": float(g), "binder_q_err": float(g_err),
             "lowest_energy": float(low[b])}
        if exact:
            mean, var = h.exact_moments(L, L, beta)
            r.update(U_exact_per_site=mean / N, C_exact_per_site=beta ** 2 * var / N, ground_state_energy=e0)
            # None where the error is 0 (every sample a ground state: no spread to measure by)
            r.update(z_U=(r["U_per_site"] - r["U_exact_per_site"]) / r["U_err"] if r["U_err"] > 0 else None,
                     z_C=(r["C_per_site"] - r["C_exact_per_site"]) / r["C_err"] if r["C_err"] > 0 else None)
        rows.append(r)
    summary = {"L": L, "instance": h.label, "swap_acceptance": [float(a) for a in swap],
               "lowest_energy": float(low.min())}
    if first is not None:
        reached = np.isfinite(first)
        summary.update(ground_state_first_sweep={"sets": int(len(first)), "reached_in_burn_in": int(reached.sum()),
                                                 "median": float(np.median(first)), "max": float(first.max()),
                                                 "min": float(first.min())})
    if exact:
        zu, zc = ([r[k] for r in rows if r[k] is not None] for k in ("z_U", "z_C"))
        summary.update(ground_state_energy=e0, ground_state_reached=bool(low.min() <= e0 + 1e-6),
                       rms_z_U=float(np.sqrt(np.mean(np.square(zu)))) if zu else None, n_z_U=len(zu),
                       rms_z_C=float(np.sqrt(np.mean(np.square(zc)))) if zc else None, n_z_C=len(zc))
    return rows, summary


def spin_glass_rows(L: int, disorder_seeds, betas, chains: int, sweeps: int, burn_in: int, thin: int, seed: int,
                    swap_every: int = 1, exact: bool = True) -> tuple[list[dict], list[dict]]:
    """One size, every instance in one Sampler: (rows of each instance in turn, one per beta, a summary per
    instance: swap rates, exact ground state, the rms of z over the betas). disorder_seeds: an int or a list."""
    from sampler import Sampler

    seeds = [int(disorder_seeds)] if np.ndim(disorder_seeds) == 0 else [int(d) for d in disorder_seeds]
    ensemble = spin_glass.Disorder.standard(L, L, seeds)
    s = Sampler(L, L, ensemble, betas, 2 * chains, size_seed(seed, L), swap_every=swap_every)
    e0 = [h.ground_state()[0] for h in ensemble.instances] if exact else None
    first = _burn_to_ground_state(s, burn_in, e0)
    avg = _pair_averages(s, max(2, sweeps // thin), thin)
    low, swap = s.lowest_energies(by_instance=True), s.swap_rates(by_instance=True)
    rows, summaries = [], []
    for k, h in enumerate(ensemble.instances):
        r, sm = _instance_rows(L, h, betas, avg[k], low[k], None if first is None else first[k], swap[k], exact,
                               None if e0 is None else e0[k])
        if len(seeds) > 1:
            for x in (*r, sm):
                x["disorder_seed"] = h.seed
        rows += r
        summaries.append(sm)
    return rows, summaries


def average_rows(rows: list[dict]) -> list[dict]:
    """The disorder average per (L, beta) of instance rows (module docstring): mean, spread over the
    instances, error of the mean; the mean exact value and z where every instance has one."""
    out = []
    for key in sorted({(r["L"], r["beta"]) for r in rows}):
        group = [r for r in rows if (r["L"], r["beta"]) == key]
        K = len(group)
        a = {"L": key[0], "beta": key[1], "T": 1.0 / key[1], "instances": K}
        for value, err, exact, z in OBSERVABLES:
            x = np.array([r[value] for r in group])
            spread = float(x.std(ddof=1)) if K > 1 else 0.0
            thermal = float(np.sqrt(np.sum(np.square([r[err] for r in group]))) / K)
            a.update({value: float(x.mean()), value + "_spread": spread, err: spread / math.sqrt(K),
                      err.replace("_err", "_thermal_err"): thermal})
            if exact and all(exact in r for r in group):
                a[exact] = float(np.mean([r[exact] for r in group]))
                a[z] = (a[value] - a[exact]) / thermal if thermal > 0 else None
        out.append(a)
    return out


def spin_glass_report(disorder_seed=0, sizes=(8, 12), betas=EA_BETAS, chains=EA_CHAINS, sweeps=EA_SWEEPS,
                      burn_in=EA_BURN_IN, thin=EA_THIN, seed=0, swap_every=1, exact_max=EA_EXACT_MAX,
                      command=None, instances=1) -> dict:
    """The spin glass's report (module docstring): rows per (instance, L, beta), a summary per (size,
    instance), and for instances > 1 the disorder average per (L, beta), as JSON."""
    rows, summaries, timing = [], [], []
    betas = sorted(float(b) for b in betas)              # the coldest last
    seeds = list(range(disorder_seed, disorder_seed + instances))
    for L in sizes:
        t0 = time.time()
        r, sm = spin_glass_rows(L, seeds if instances > 1 else disorder_seed, betas, chains, sweeps, burn_in, thin,
                                seed, swap_every, exact=L <= exact_max)
        seconds = round(time.time() - t0, 1)
        if instances == 1:
            sm[0]["seconds"] = seconds
        timing.append({"L": L, "seconds": seconds, "instances": instances})
        rows += r
        summaries += sm
    report = {"hamiltonian": "EA", "name": report_name(disorder_seed, instances), "trained_on": "EA",
              "disorder_seed": disorder_seed, "sizes": list(sizes), "betas": [float(b) for b in betas],
              "chains": chains, "replicas": 2, "sweeps": sweeps, "burn_in": burn_in, "thin": thin,
              "swap_every": swap_every, "seed": seed, "exact_max": exact_max, "command": command, "rows": rows,
              "sizes_summary": summaries, "tc": None, "tc_err": None,
              "exact_values_of": "the instance itself: transfer matrix (spin_glass.moments, spin_glass.ground_state)",
              "errors": f"jackknife over {chains} independent replica pairs"}
    if instances > 1:
        report.update(instances=instances, disorder_seeds=seeds, average_rows=average_rows(rows), sizes_timing=timing,
                      exact_values_of="each instance itself: transfer matrix (spin_glass.moments, "
                                      "spin_glass.ground_state); the average's: the mean over the same instances",
                      average_errors=f"spread over the {instances} instances / sqrt({instances}); z against the "
                                     "thermal error of the mean (the instances' jackknife errors)")
    return report


# ----------------------------------------------------------------------------- figure, table, command line
def _title(report: dict) -> str:
    K = report.get("instances", 1)
    return (f"disorder seed {report['disorder_seed']}" if K == 1 else
            f"disorder seeds {report['disorder_seed']} ... {report['disorder_seed'] + K - 1} ({K} instances)")


def spin_glass_plot(report: dict, path) -> None:
    """U/N and C/N (± 2 errors) against T per size with the exact curves where known, and the overlap's
    Binder ratio g against T: of the instance, or of the disorder average (errors of the mean)."""
    from plotting import plt, save_figure

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), constrained_layout=True)
    table = report.get("average_rows", report["rows"])
    for L in report["sizes"]:
        rows = [r for r in table if r["L"] == L]
        T = [r["T"] for r in rows]
        for ax, key, err in ((axes[0], "U_per_site", "U_err"), (axes[1], "C_per_site", "C_err"),
                             (axes[2], "binder_q", "binder_q_err")):
            line = ax.errorbar(T, [r[key] for r in rows], yerr=[2 * r[err] for r in rows], fmt="o", ms=3,
                               label=f"L = {L}")
            exact = key.replace("_per_site", "_exact_per_site")
            if exact != key and exact in rows[0]:
                ax.plot(T, [r[exact] for r in rows], "-", lw=1, color=line[0].get_color(), label=f"L = {L} exact")
    for ax, label in zip(axes, ("U/N", "C/N", "g = 1 − ⟨q⁴⟩ / (3 ⟨q²⟩²)")):
        ax.set_xlabel("T")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    what = "sampled ± 2 errors" if "average_rows" not in report else "disorder average ± 2 errors of the mean"
    fig.suptitle(f"±J spin glass, {_title(report)}: {what}, exact lines (transfer matrix)", fontsize=10)
    save_figure(fig, path)


def _pm(value: float, err: float) -> str:
    """value ± err, both to the decimal of err's second significant digit."""
    d = min(8, max(0, 1 - math.floor(math.log10(err)))) if err > 0 else 4
    return f"{value:.{d}f} ± {err:.{d}f}"


def _z_cell(z) -> str:
    return "—" if z is None else f"{z:+.2f}"


def _summary_line(sm: dict, betas) -> str:
    line = f"- L = {sm['L']} ({sm['instance']}" + (f", {sm['seconds']} s" if "seconds" in sm else "")
    line += f"): lowest energy seen {sm['lowest_energy']:g}"
    if "ground_state_energy" in sm:
        line += (f", exact ground state {sm['ground_state_energy']:g} ({'reached' if sm['ground_state_reached'] else 'NOT reached'}); "
                 f"rms z of U/N {sm['rms_z_U']:.2f} over {sm['n_z_U']} betas, of C/N {sm['rms_z_C']:.2f} over "
                 f"{sm['n_z_C']} (betas with error 0, every sample a ground state, left out)")
    g = sm.get("ground_state_first_sweep")
    if g:
        line += (f"; at T = {1 / betas[-1]:.3g} the ground state was first held after {g['min']:g} / "
                 f"{g['median']:g} / {g['max']:g} sweeps (fastest / median / slowest of {g['sets']} sets of "
                 f"exchanging chains; {g['reached_in_burn_in']} within the burn-in)")
    return line + f"; swap acceptance {min(sm['swap_acceptance']):.2f} ... {max(sm['swap_acceptance']):.2f}"


def _instance_table(rows: list[dict]) -> list[str]:
    ex = any("U_exact_per_site" in r for r in rows)
    lines = ["| L | T | U/N | " + ("U/N exact | z | " if ex else "") + "C/N | " + ("C/N exact | z | " if ex else "")
             + "g (overlap Binder) | lowest E |" + (" E_0 exact |" if ex else ""), "|---" * (6 + 5 * ex) + "|"]
    for r in rows:
        has = "U_exact_per_site" in r
        cells = [str(r["L"]), f"{r['T']:.3f}", _pm(r["U_per_site"], r["U_err"])]
        if ex:
            cells += [f"{r['U_exact_per_site']:.5f}", _z_cell(r["z_U"])] if has else ["", ""]
        cells.append(_pm(r["C_per_site"], r["C_err"]))
        if ex:
            cells += [f"{r['C_exact_per_site']:.4f}", _z_cell(r["z_C"])] if has else ["", ""]
        cells += [_pm(r["binder_q"], r["binder_q_err"]), f"{r['lowest_energy']:g}"]
        if ex:
            cells.append(f"{r['ground_state_energy']:g}" if has else "")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _average_table(rows: list[dict]) -> list[str]:
    ex = any("U_exact_per_site" in r for r in rows)
    head = ["L", "T"]
    for name, exact in (("U/N", "U"), ("C/N", "C"), ("g", None)):
        head += [f"{name} mean ± error", "spread"] + ([f"{name} exact mean", "z"] if ex and exact else [])
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for r in rows:
        cells = [str(r["L"]), f"{r['T']:.3f}"]
        for value, err, exact, z in OBSERVABLES:
            cells += [_pm(r[value], r[err]), f"{r[value + '_spread']:.3g}"]
            if ex and exact:
                cells += [f"{r[exact]:.5f}", _z_cell(r[z])] if exact in r else ["", ""]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def spin_glass_markdown(report: dict) -> str:
    """The report as Markdown: one instance, a summary line per size and a row per (L, beta); a disorder
    average, its table per (L, beta) first, then each instance's lines and table."""
    lines = [f"# The ±J spin glass, {_title(report)}", "",
             f"sizes {report['sizes']}, {len(report['betas'])} betas (T = {1 / report['betas'][0]:.3g} ... "
             f"{1 / report['betas'][-1]:.3g}), {report['chains']} replica pairs each, replica exchange every "
             f"{report['swap_every']} sweep(s), {report['burn_in']} burn-in, {report['sweeps']} sweeps, thin "
             f"{report['thin']}, seed {report['seed']}; errors: {report['errors']}", ""]
    if "average_rows" not in report:
        lines += [_summary_line(sm, report["betas"]) for sm in report["sizes_summary"]]
        return "\n".join(lines + [""] + _instance_table(report["rows"])) + "\n"
    lines += [f"- L = {t['L']}: {t['instances']} instances in one program, {t['seconds']} s"
              for t in report["sizes_timing"]]
    lines += ["", "## Disorder average", "", f"errors of the mean: {report['average_errors']}", ""]
    lines += _average_table(report["average_rows"])
    for seed in report["disorder_seeds"]:
        lines += ["", f"## Instance of disorder seed {seed}", ""]
        lines += [_summary_line(sm, report["betas"]) for sm in report["sizes_summary"] if sm["disorder_seed"] == seed]
        lines += [""] + _instance_table([r for r in report["rows"] if r["disorder_seed"] == seed])
    return "\n".join(lines) + "\n"


def spin_glass_main(args, argv, script="phase_diagram.py") -> int:
    """`phase_diagram.main` for --hamiltonian EA: checks, `spin_glass_report`, <out>/<name>.json, .md and
    .png (`report_name`)."""
    from sampler import MAX_BETA, _padded_batch

    sizes = sorted(set(args.sizes or (8, 12)))
    betas = sorted(set(args.betas)) if args.betas else list(EA_BETAS)
    chains, sweeps = args.chains or EA_CHAINS, args.sweeps or EA_SWEEPS
    burn_in = EA_BURN_IN if args.burn_in is None else args.burn_in
    thin = args.thin or EA_THIN
    instances = args.instances or 1
    if sizes[0] < 2:
        raise UserError("--sizes must be at least 2 (a 1-wide periodic lattice couples a spin to itself)")
    if len(betas) < 2 or betas[-1] > MAX_BETA:
        raise UserError(f"--betas: replica exchange needs at least 2 betas, each at most {MAX_BETA:g}")
    if chains < 2:
        raise UserError(f"--chains {chains}: the error bars come from the spread between replica pairs; use at least 2")
    if sweeps < 2 * thin:
        raise UserError(f"--sweeps {sweeps}: measure at least 2 samples per chain (>= 2 x --thin sweeps)")
    if args.exact_max > spin_glass.MAX_ROW:
        raise UserError(f"--exact_max {args.exact_max}: the transfer matrix stops at rows of {spin_glass.MAX_ROW} sites")
    n = _padded_batch(instances * len(betas) * 2 * chains, 1)
    if n * ((max(sizes) ** 2 + 1) // 2) >= 2 ** 32:
        raise UserError(f"--instances {instances}: {n} chains of {max(sizes)}x{max(sizes)} overflow the sampler's "
                        "32-bit random-number counters; split the disorder seeds over several runs")
    check_output_dir("--out", args.out)
    name = report_name(args.disorder_seed, instances)
    json_path, md_path, png_path = (Path(args.out) / f"{name}.{ext}" for ext in ("json", "md", "png"))
    for path in (json_path, md_path, png_path):
        check_output_file("--out", path)
    report = spin_glass_report(args.disorder_seed, sizes, betas, chains, sweeps, burn_in, thin, args.seed,
                               args.swap_every, args.exact_max, shlex.join([script, *argv]), instances)
    write_json(json_path, report)
    spin_glass_plot(report, png_path)
    text = spin_glass_markdown(report)
    with atomic_path(md_path) as tmp:
        tmp.write_text(text)
    print(text, end="")
    print(f"wrote {json_path}, {md_path}, {png_path}")
    return 0

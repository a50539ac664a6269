"""Learned Hamiltonians of the 8 x 8 ±J instance (disorder seed 0) simulated: each coupling fit (.npz,
`inverse_ising.py`: pseudo-likelihood, or the label-free student `--teacher`) and the planted instance
through the repo's sampler with replica exchange (16 betas, T = 3 ... 0.2, swaps every sweep), their
samples scored with their own energy and with the planted one, beside the exact values of both
(transfer matrix, `inverse_ising.exact_comparison`). Writes <out>.md and <out>.json.

    python results/spin_glass_learned/simulate.py results/spin_glass_learned/simulated \\
        results/inverse_ising/pseudo_likelihood_per_bond_EA_8x8_seed0.npz results/spin_glass_learned/student_*.npz

Per beta: U/N own (the fit's energy in its own law), U/N planted (the planted energy of its samples:
what a user of the learned model would predict for the real system), C/N own, each with the error of
the mean over the 64 chains; the lowest planted energy among the samples. ~1 min per Hamiltonian.
"""
import json
import sys
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import hamiltonians                                       # noqa: E402
import inverse_ising                                      # noqa: E402
import sampler                                            # noqa: E402
from spin_glass import EdwardsAnderson                    # noqa: E402

CHAINS, N_PER_BETA, THIN, BURN_IN = 64, 4096, 4, 2000
BETAS = np.geomspace(1 / 3, 5.0, 16)


def simulate(fit: EdwardsAnderson, planted: EdwardsAnderson, path: Path, seed: int = 0) -> dict:
    nb, n = len(BETAS), planted.J_h_array.size
    sampler.generate(path, hamiltonian=fit, n_x=8, n_y=8, betas=BETAS, n_samples=N_PER_BETA, n_chains=CHAINS,
                     burn_in=BURN_IN, thin=THIN, random_seed=seed, progress=False, swap_every=1)
    with h5py.File(path, "r") as f:
        grids, own = f["ising_grids"][()], f["true_energies"][()].astype(np.float64)
    path.unlink()
    true = planted.energy(grids)
    shape = (-1, CHAINS, nb)                                # sample order (t * chains + c) * n_betas + b
    own, true = own.reshape(shape) / n, true.reshape(shape) / n
    exact = inverse_ising.exact_comparison((fit.J_h_array, fit.J_v_array), (planted.J_h_array, planted.J_v_array),
                                           [1 / b for b in BETAS])
    rows = []
    for b, beta in enumerate(BETAS):
        per_chain_own, per_chain_true = own[:, :, b].mean(0), true[:, :, b].mean(0)
        c_chain = beta ** 2 * n * own[:, :, b].var(0)
        ex = exact["rows"][b]
        rows.append({"T": 1 / beta, "u_own": per_chain_own.mean(), "u_own_err": per_chain_own.std(ddof=1) / CHAINS ** 0.5,
                     "u_own_exact": ex["u_fit"], "u_planted": per_chain_true.mean(),
                     "u_planted_err": per_chain_true.std(ddof=1) / CHAINS ** 0.5, "u_planted_exact": ex["u_cross"],
                     "u_exact": ex["u_exact"], "c_own": c_chain.mean(), "c_own_err": c_chain.std(ddof=1) / CHAINS ** 0.5,
                     "lowest_planted": true[:, :, b].min()})
    # z where the chains disagree; at the coldest betas every sample can sit at one energy (error 0)
    z = [(r["u_planted"] - r["u_planted_exact"]) / r["u_planted_err"] for r in rows if r["u_planted_err"] > 0]
    return {"rows": rows, "rms_z_planted": float(np.sqrt(np.mean(np.square(z)))), "n_z": len(z),
            "max_abs_du_planted_vs_planted_exact": max(abs(r["u_planted"] - r["u_exact"]) for r in rows),
            "lowest_planted": min(r["lowest_planted"] for r in rows), "e0_exact": exact["e0_exact"],
            "c_peak_T_exact": exact["c_peak_T_exact"], "c_peak_T_fit": exact["c_peak_T_fit"]}


def markdown(name: str, rep: dict) -> str:
    lines = [f"### {name}", "", "| T | U/N own, sampled | exact | U/N planted, sampled | exact | planted instance U/N | "
             "C/N own | lowest planted E/N |", "|---|---|---|---|---|---|---|---|"]
    for r in rep["rows"]:
        lines.append(f"| {r['T']:.3f} | {r['u_own']:.4f} ± {r['u_own_err']:.4f} | {r['u_own_exact']:.4f} | "
                     f"{r['u_planted']:.4f} ± {r['u_planted_err']:.4f} | {r['u_planted_exact']:.4f} | {r['u_exact']:.4f} | "
                     f"{r['c_own']:.3f} ± {r['c_own_err']:.3f} | {r['lowest_planted']:.5f} |")
    lines += ["", f"rms z of U/N planted (sampled against its exact value, over the {rep['n_z']} betas whose samples "
              f"are not all of one energy): {rep['rms_z_planted']:.2f}; largest "
              f"|U/N planted - planted instance's U/N|: {rep['max_abs_du_planted_vs_planted_exact']:.4f}; lowest planted "
              f"energy sampled {rep['lowest_planted']:.5f} (exact E_0/N {rep['e0_exact']:.5f}); C/N maximum at "
              f"T = {rep['c_peak_T_fit']:.3f} (planted {rep['c_peak_T_exact']:.3f})", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    out, sources = Path(sys.argv[1]), sys.argv[2:]
    planted = EdwardsAnderson.standard(8, 8, 0)
    named = [("planted instance (EA, disorder seed 0)", planted)]
    named += [(Path(s).stem, hamiltonians.spin_glass_instance(8, 8, couplings=s)) for s in sources]
    reports, text = {}, []
    for name, h in named:
        reports[name] = simulate(h, planted, out.with_suffix(".tmp.hdf5"))
        text.append(markdown(name, reports[name]))
        print(text[-1], flush=True)
    out.with_suffix(".json").write_text(json.dumps(reports, indent=1, default=float) + "\n")
    out.with_suffix(".md").write_text("\n".join(text))

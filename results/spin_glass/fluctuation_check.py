"""The README example's file (8 x 8 ±J, disorder seed 0, 8 betas T = 3 ... 0.2, replica exchange every
sweep, 500 lattices per beta) for random seeds A..B-1: each beta's chi-square p-value (asymptotic and
Monte Carlo) and, pooled over the seeds, every beta's histogram against the exact P(E).

    python results/spin_glass/fluctuation_check.py 0 60      # ~5 min on one core
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import consistency                                        # noqa: E402
import sampler                                            # noqa: E402
from estimators import chi_square_test                    # noqa: E402
from spin_glass import EdwardsAnderson                    # noqa: E402

h, betas = EdwardsAnderson.standard(8, 8, 0), np.geomspace(0.33, 5, 8)
a, b = int(sys.argv[1]), int(sys.argv[2])
folder = Path(sys.argv[3]) if len(sys.argv) > 3 else Path("/tmp")
p_asym, p_mc, pooled = [], [], None
for seed in range(a, b):
    f = folder / f"ea_fluctuation_{seed}.hdf5"
    sampler.generate(f, hamiltonian=h, n_x=8, n_y=8, betas=betas, n_samples=500, random_seed=seed, progress=False,
                     swap_every=1)
    checks = consistency.energy_histogram_check(f)
    f.unlink()
    p_asym.append([c["p_value"] for c in checks])
    p_mc.append([c["p_mc"] for c in checks])
    pooled = [c["counts"] for c in checks] if pooled is None else [x + c["counts"] for x, c in zip(pooled, checks)]
    print(seed, " ".join(f"{p:.3g}/{q:.3g}" for p, q in zip(p_asym[-1], p_mc[-1])), flush=True)
tested = np.array([c["bins"] > 1 for c in checks])        # the coldest betas hold one bin: no test
pa, pm = np.array(p_asym)[:, tested], np.array(p_mc)[:, tested]
print(f"{pa.size} tests; smallest p {pa.min():.2g} (p_mc {pm.min():.2g}); fraction p_mc < 0.01: {(pm < 0.01).mean():.3f}, "
      f"< 0.05: {(pm < 0.05).mean():.3f}; chance that the smallest of {pa.size} p_mc is <= the observed one: "
      f"{1 - (1 - pm.min()) ** pa.size:.2f}")
for c, counts in zip(checks, pooled):
    stat, dof, p = chi_square_test(counts, c["exact_probs"])
    print(f"pooled beta {c['beta']:.4g}: n = {counts.sum():.0f}, chi2 = {stat:.2f} / {dof}, p = {p:.3g}")

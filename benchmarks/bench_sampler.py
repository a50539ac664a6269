"""Sampler benchmark: attempted spin updates per second and stored decorrelated samples per second.

    python benchmarks/bench_sampler.py            # the figures (about a minute)
    python benchmarks/bench_sampler.py --tau      # tau_int / burn-in measurements behind the defaults

Measures, for 8 x 8 ISING1 at beta = 0.25, in one process:
  * the published algorithm: one chain, a Python loop, a random site per step, the whole
    Hamiltonian recomputed per step by a jitted JAX energy function; and the same in plain numpy;
  * this repo's compiled checkerboard sampler after compilation, for several chain counts
    (median over repeats), plus the vectorised random-site algorithm;
  * end to end (generate_ising.generate: sampling, device->host, HDF5 write): stored samples per
    second, each stored sample thin >= tau_int sweeps after the previous one of its chain.
Prints ratios and the machine load (other processes share the cores).
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import generate_ising as gi  # noqa: E402  (sets the XLA host device count before JAX loads)
import ising  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

L, BETA = 8, 0.25


def load():
    return "load average %.2f %.2f %.2f on %d cores" % (*os.getloadavg(), len(os.sched_getaffinity(0)))


def reference_steps_per_s(energy_fn, n_steps, seed=0):
    """The published algorithm: one chain, Python loop, full energy recomputed at every step."""
    rng = np.random.default_rng(seed)
    s = rng.choice(np.array([-1, 1]), size=(L, L))
    e = float(energy_fn(s))
    t0 = time.perf_counter()
    for _ in range(n_steps):
        x, y = rng.integers(0, L, 2)
        s[x, y] *= -1
        e_new = float(energy_fn(s))
        if e_new <= e or rng.random() < np.exp(-BETA * (e_new - e)):
            e = e_new
        else:
            s[x, y] *= -1
    return n_steps / (time.perf_counter() - t0)


def sampler_updates_per_s(n_chains, repeats, algorithm="checkerboard", target_updates=4e7):
    sm = gi.Sampler(L, L, "ISING1", [BETA], n_chains, 0, algorithm)
    sm.start()
    n = max(4, int(target_updates // (n_chains * L * L)))
    sm.burn(n)
    jax.block_until_ready(sm.blocks)                  # compile + warm up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sm.burn(n)
        jax.block_until_ready(sm.blocks)
        times.append(time.perf_counter() - t0)
    return n_chains * L * L * n / np.median(times)


def end_to_end(n_small, n_large, repeats):
    """Stored samples/s of generate(): total for n_large, and the marginal rate (n_large - n_small)
    / (t_large - t_small), which removes the fixed burn-in and start-up costs."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "bench.hdf5"
        kw = dict(n_x=L, n_y=L, betas=(BETA,), random_seed=1, progress=False)
        gi.generate(path, n_samples=n_large, **kw)   # compile every block shape used
        gi.generate(path, n_samples=n_small, **kw)
        ts, tl = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            gi.generate(path, n_samples=n_small, **kw)
            ts.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            gi.generate(path, n_samples=n_large, **kw)
            tl.append(time.perf_counter() - t0)
        import h5py
        with h5py.File(path, "r") as f:
            thin, tau, chains = int(f.attrs["thin_sweeps"]), float(f.attrs["tau_int_sweeps"][0]), int(f.attrs["n_chains"])
            size = os.path.getsize(path)
    t_s, t_l = np.median(ts), np.median(tl)
    return dict(total=n_large / t_l, marginal=(n_large - n_small) / (t_l - t_s), t_large=t_l, thin=thin, tau=tau,
                chains=chains, mb=size / 1e6)


def tau_report():
    """tau_int of the energy (sweeps) and relaxation from a random start, 8x8, 512 chains per beta."""
    for model, betas in (("ISING1", [0.0, 0.05, 0.125, 0.25, 0.35, 0.44, 0.5, 0.6, 1.0]),
                         ("ISING2", [0.05, 0.125, 0.2, 0.25, 0.3, 0.44, 0.5, 1.0])):
        sm = gi.Sampler(L, L, model, betas, 512, 0)
        sm.start()
        nb = len(betas)
        # relaxation: mean energy per beta after k sweeps from the random start
        marks, means, done = [10, 30, 100, 300, 1000, 2000], [], 0
        for k in marks:
            sm.burn(k - done)
            done = k
            means.append(sm.energies()[: sm.n_real].reshape(512, nb).mean(0))
        es, acc = sm.trace(4000)
        es = np.asarray(es)[:, : sm.n_real]
        eq = es.mean(0).reshape(512, nb).mean(0)
        se = es.mean(0).reshape(512, nb).std(0) / np.sqrt(512)
        print(f"\n{model} 8x8: tau_int of E in sweeps (4000 sweeps x 512 chains after 2000 burn-in), "
              f"and mean E after k sweeps from a random start minus the equilibrium mean")
        print("  beta   tau_int  accept  " + "  ".join(f"k={k:<5d}" for k in marks) + "   <E>eq +- se   exact")
        for b in range(nb):
            tau = ising.integrated_autocorr_time(es[:, b::nb].T)
            ex = ising.exact_mean_energy(L, L, betas[b]) if model == "ISING1" and betas[b] > 0 else float("nan")
            a = acc[: sm.n_real].reshape(512, nb)[:, b].sum() / (512 * 4000 * L * L)
            print(f"  {betas[b]:<5.3g}  {tau:7.2f}  {a:6.3f}  " + "  ".join(f"{m[b] - eq[b]:+7.2f}" for m in means)
                  + f"   {eq[b]:8.2f} +- {se[b]:.2f}  {ex:8.2f}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--chains", type=int, nargs="+", default=[256, 1024, 4096, 16384])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--tau", action="store_true", help="print the tau_int / burn-in tables instead")
    args = p.parse_args(argv)
    print(f"JAX {jax.__version__}, devices: {len(jax.devices())} x {jax.devices()[0].platform}; {load()}")
    if args.tau:
        tau_report()
        return

    energy_jit = jax.jit(lambda s: ising.energy(s, "ISING1"))
    ref_jax = reference_steps_per_s(lambda s: energy_jit(jnp.asarray(s)), 1500)
    ref_np = reference_steps_per_s(lambda s: ising.energy(s, "ISING1"), 20000)
    print(f"\nPublished algorithm (1 chain, Python loop, full energy per step):")
    print(f"  JAX (jitted energy): {ref_jax:10.3e} steps/s")
    print(f"  numpy:               {ref_np:10.3e} steps/s   (numpy / JAX = {ref_np / ref_jax:.2f})")

    print(f"\nCompiled sampler, 8x8 ISING1 beta={BETA}, attempted spin updates/s (median of {args.repeats}):")
    best = 0.0
    for n in args.chains:
        r = sampler_updates_per_s(n, args.repeats)
        best = max(best, r)
        print(f"  checkerboard {n:6d} chains: {r:10.3e}   x{r / ref_np:9.0f} numpy ref   x{r / ref_jax:9.0f} JAX ref")
    r = sampler_updates_per_s(1024, 3, "single", target_updates=4e6)
    print(f"  single-site  {1024:6d} chains: {r:10.3e}   x{r / ref_np:9.0f} numpy ref   (vectorised random-site check)")
    print(f"  best: {best:.3e} updates/s (target >= 1.5e8)")

    e2e = end_to_end(500_000, 2_500_000, max(1, args.repeats // 2))
    print(f"\nEnd to end, generate() to HDF5, 8x8 ISING1 beta={BETA}, {e2e['chains']} chains, "
          f"thin = {e2e['thin']} sweeps >= tau_int = {e2e['tau']:.2f}:")
    print(f"  2.5e6 samples in {e2e['t_large']:.2f} s incl. start-up and 1000 burn-in sweeps: "
          f"{e2e['total']:.3e} samples/s ({e2e['mb']:.0f} MB file)")
    print(f"  marginal (steady state, sampling + transfer + HDF5 write): {e2e['marginal']:.3e} "
          f"decorrelated samples/s (target >= 1e6)")
    print(f"  vs the published algorithm storing every step (correlated): numpy x{e2e['marginal'] / ref_np:.0f}")
    print(f"\n{load()}")


if __name__ == "__main__":
    main()

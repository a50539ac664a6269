"""Sampler benchmark: attempted spin updates per second and stored decorrelated samples per second.

    python benchmarks/bench_sampler.py            # the figures (a few minutes)
    python benchmarks/bench_sampler.py --tau      # tau_int / burn-in measurements behind the defaults
    python benchmarks/bench_sampler.py --tables   # table Hamiltonians only
    python benchmarks/bench_sampler.py --potts    # the Potts heat-bath kernel only
    python benchmarks/bench_sampler.py --cluster  # Swendsen-Wang against checkerboard at beta_c
    python benchmarks/bench_sampler.py --slmc     # SLMC on the learned Hamiltonians: acceptance, Potts tau_int
    python benchmarks/bench_sampler.py --disorder # K spin-glass instances in one program vs one by one

Measures, for 8 x 8 ISING1 at beta = 0.25, in one process:
  * the published algorithm: one chain, a Python loop, a random site per step, the whole
    Hamiltonian recomputed per step by a jitted JAX energy function; and the same in plain numpy;
  * this repo's compiled checkerboard sampler after compilation, for several chain counts
    (median over repeats), plus the vectorised random-site algorithm;
  * one XLA host device (JAX's default, which generate_ising keeps) against one per core
    (XLA_FLAGS=--xla_force_host_platform_device_count), in alternating child processes: the
    device count is fixed when JAX starts;
  * thrml's block Gibbs sampler on the same lattice and chain count, if thrml is installed
    (it is not a requirement: `pip install thrml` to compare);
  * the two local-field paths of the sampler, dense colour-block products and neighbour
    gathers, on 8 x 8, 32 x 32 and 64 x 64 (sweeps alone, and producing stored samples):
    where each wins sets sampler.DENSE_MAX_SITES;
  * a table Hamiltonian (3 x 3 window energies, the form of a learned energy function) against
    the built-in kernel on 16 x 16 ... 64 x 64, and the any-window table kernel it replaces there;
  * K spin-glass instances in one program (a disorder average) against the same K run one after
    another: build and compile time, instance-sweeps per second;
  * the q = 3 and q = 4 Potts heat-bath kernel against the Ising kernel on 8 x 8 and 64 x 64, near
    each model's critical point;
  * end to end (generate_ising.generate: sampling, device->host, HDF5 write): stored samples per
    second, each stored sample thin >= tau_int sweeps after the previous one of its chain.
Prints ratios and the machine load (other processes share the cores).
"""
import argparse
import functools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import estimators  # noqa: E402
import generate_ising as gi  # noqa: E402
import lattices  # noqa: E402
import metropolis  # noqa: E402
import sampler  # noqa: E402
import ising  # noqa: E402
import potts  # noqa: E402

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


def sampler_updates_per_s(n_chains, repeats, algorithm="checkerboard", target_updates=4e7, size=L, dense=None,
                          produce=False, hamiltonian="ISING1", beta=BETA, generic=False, betas=None, swap_every=0):
    """Attempted updates/s after compilation, median of repeats: burn-in sweeps, or (produce)
    stored samples 2 sweeps apart with their spins and energies.  generic: a focus-1 table through
    the any-window kernel (`lattices.TableLattice`) instead of its fast path."""
    betas = [beta] if betas is None else betas
    sm = sampler.Sampler(size, size, hamiltonian, betas, n_chains, 0, algorithm, dense=dense, swap_every=swap_every)
    if generic:
        sm.lat = lattices.TableLattice(size, size, sm.hamiltonian)
        sm.blocks = sampler._init(sm.lat, metropolis._stream_key(0, 1), sm.chains.cid)
    n = 2 * max(2, int(target_updates // (2 * n_chains * size * size)))

    def run():
        if produce:
            jax.block_until_ready(sm.produce(n // 2, 2))
        else:
            sm.burn(n)
            jax.block_until_ready(sm.blocks)

    run()                                             # compile + warm up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return len(betas) * n_chains * size * size * n / np.median(times)


def host_device_rates(n_chains, repeats, rounds=3):
    """{XLA host devices: median checkerboard rate} for 1 device and one per core, each measured
    in child processes, alternating (the machine is shared: its load drifts)."""
    cores = len(os.sched_getaffinity(0))
    rates = {1: [], cores: []}
    for _ in range(rounds):
        for n_dev in rates:
            env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={n_dev}")
            out = subprocess.run([sys.executable, __file__, "--rate_of", str(n_chains), "--repeats", str(repeats)],
                                 env=env, capture_output=True, text=True, check=True).stdout.split()
            assert int(out[0]) == n_dev, f"child process saw {out[0]} devices, not {n_dev}"
            rates[n_dev].append(float(out[-1]))
    return {n_dev: float(np.median(r)) for n_dev, r in rates.items()}


def thrml_updates_per_s(n_chains, repeats, sweeps=200):
    """thrml's block Gibbs sampler (heat bath, the same two colour blocks) on the 8 x 8 ISING1
    lattice at BETA, vmapped over chains: attempted updates/s, or None if thrml is missing."""
    try:
        import thrml
        from thrml.models import IsingEBM, IsingSamplingProgram, hinton_init
    except ImportError:
        return None
    nodes = [thrml.SpinNode() for _ in range(L * L)]
    bonds = ising.bonds(L, L, "ISING1")
    model = IsingEBM(nodes, [(nodes[i], nodes[j]) for i, j, _ in bonds], jnp.zeros(L * L),
                     jnp.asarray([w for *_, w in bonds], jnp.float32), jnp.asarray(BETA, jnp.float32))
    colour = ising.colouring(L, L, "ISING1")
    free = [thrml.Block([nodes[i] for i in np.flatnonzero(colour == c)]) for c in range(colour.max() + 1)]
    program = IsingSamplingProgram(model, free, clamped_blocks=[])
    schedule = thrml.SamplingSchedule(n_warmup=sweeps, n_samples=1, steps_per_sample=1)   # sweeps in all

    @jax.jit
    def run(key):
        k_init, k_run = jax.random.split(key)
        start = hinton_init(k_init, model, free, (n_chains,))
        return jax.vmap(lambda k, s: thrml.sample_states(k, program, schedule, s, [], [thrml.Block(nodes)]))(
            jax.random.split(k_run, n_chains), start)

    spins = np.where(np.asarray(jax.block_until_ready(run(jax.random.key(0)))[0])[:, 0], 1, -1)
    # a check that the comparison samples the same law: mean energy near the exact value
    print(f"  (thrml mean energy {ising.energy(spins.reshape(-1, L, L)).mean():.2f}, "
          f"exact {ising.exact_mean_energy(L, L, BETA):.2f})")
    times = []
    for r in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(run(jax.random.key(r + 1)))
        times.append(time.perf_counter() - t0)
    return n_chains * L * L * sweeps / np.median(times)


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
        sm = sampler.Sampler(L, L, model, betas, 512, 0)
        nb = len(betas)
        # relaxation: mean energy per beta after k sweeps from the random start
        marks, means, done = [10, 30, 100, 300, 1000, 2000], [], 0
        for k in marks:
            sm.burn(k - done - 1)
            done = k
            e_k = np.asarray(sm.trace(1)[0])[0, : sm.n_real]        # the energy after sweep k
            means.append(e_k.reshape(512, nb).mean(0))
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


def field_paths(repeats):
    """Dense colour-block products against neighbour gathers, by lattice size."""
    print(f"\nLocal-field paths, ISING1 beta={BETA}, attempted updates/s (median of {repeats}; "
          f"the sampler uses dense up to {sampler.DENSE_MAX_SITES} sites):")
    for size, n_chains in ((8, 8192), (32, 512), (64, 128)):
        for produce in (False, True):
            r = {dense: sampler_updates_per_s(n_chains, repeats, size=size, dense=dense, produce=produce,
                                              target_updates=2e7) for dense in (True, False)}
            print(f"  {size:2d}x{size:<2d} {n_chains:5d} chains, {'produce (thin 2)' if produce else 'sweeps only     '}: "
                  f"dense {r[True]:10.3e}   gather {r[False]:10.3e}   dense / gather {r[True] / r[False]:5.2f}")


def table_paths(repeats):
    """A table Hamiltonian (a learned energy function's form: 3 x 3 window energies) against the
    built-in kernel, ISING1 and its own table at beta = 0.44, the chain counts phase_diagram uses."""
    table = ising.Table.of(ising.builtin_table("ISING1"), name="ISING1")
    print(f"\nTable Hamiltonians, ISING1 as a 3 x 3 window table against built-in ISING1, beta=0.44, "
          f"attempted updates/s (median of {repeats}):")
    for size, n_chains in ((16, 1024), (32, 256), (64, 64)):
        for produce in (False, True):
            kw = dict(size=size, produce=produce, beta=0.44, target_updates=2e7)
            built = sampler_updates_per_s(n_chains, repeats, **kw)
            fast = sampler_updates_per_s(n_chains, repeats, hamiltonian=table, **kw)
            generic = sampler_updates_per_s(n_chains, 1, hamiltonian=table, generic=True, **dict(kw, target_updates=2e6))
            print(f"  {size:2d}x{size:<2d} {n_chains:5d} chains, {'produce (thin 2)' if produce else 'sweeps only     '}: "
                  f"built-in {built:10.3e}   table {fast:10.3e}   any-window kernel {generic:10.3e}   "
                  f"table / built-in {fast / built:5.2f}" + ("  (target >= 0.5)" if size == 64 else ""))


def potts_paths(repeats):
    """Heat-bath Potts updates against the Ising Metropolis kernel, same sizes and chain counts,
    each near its critical point (Potts: beta_c = ln(1 + sqrt q); ISING1: 0.44)."""
    print(f"\nPotts heat bath against ISING1 Metropolis (checkerboard), attempted updates/s (median of {repeats}):")
    for size, n_chains in ((8, 4096), (64, 64)):
        for produce in (False, True):
            kw = dict(size=size, produce=produce, target_updates=2e7)
            built = sampler_updates_per_s(n_chains, repeats, beta=0.44, **kw)
            rates = {q: sampler_updates_per_s(n_chains, repeats, hamiltonian=potts.Potts(q), beta=potts.beta_c(q), **kw)
                     for q in (3, 4)}
            print(f"  {size:2d}x{size:<2d} {n_chains:5d} chains, {'produce (thin 2)' if produce else 'sweeps only     '}: "
                  f"ISING1 {built:10.3e}   " + "   ".join(f"q={q} {r:10.3e} ({r / built:4.2f}x)" for q, r in rates.items()))


def spin_glass_paths(repeats):
    """The spin glass's kernel (a coupling per bond, continuous acceptance) against ISING1's, 64 x 64 at
    the same chains and betas, and what replica exchange every K sweeps adds to a sweep."""
    import spin_glass

    print(f"\nSpin glass (EA ±J, 64 x 64) against ISING1, attempted updates/s (median of {repeats}):")
    ea = spin_glass.EdwardsAnderson.standard(64, 64, 0)
    ladder = list(1.0 / np.geomspace(3.0, 0.5, 8))
    kw = dict(size=64, target_updates=4e7, betas=ladder)
    built = sampler_updates_per_s(8, repeats, **kw)
    rate = sampler_updates_per_s(8, repeats, hamiltonian=ea, **kw)
    print(f"  8 betas x 8 chains, sweeps only: ISING1 {built:10.3e}   EA {rate:10.3e} ({rate / built:4.2f}x, target >= 0.8)")
    ratios = swap_cost(ea, ladder, 64, rounds=max(5, 2 * repeats))
    for k, r in ratios.items():
        print(f"  EA with replica exchange every {k:2d} sweeps: {np.median(r):4.2f}x of no swaps (median of {len(r)} "
              f"interleaved rounds, quartiles {np.quantile(r, 0.25):4.2f} ... {np.quantile(r, 0.75):4.2f})")
    disorder_paths(repeats)


def disorder_batch(n_instances=32, size=16, n_chains=16, n_betas=8, rounds=3, target_updates=4e7):
    """K ±J instances of size x size, n_betas x n_chains chains each with replica exchange every sweep:
    one Sampler of `spin_glass.Disorder` (one program) against K Samplers run one after another, in the same
    process. Returns {"batched"/"sequential": (seconds to build and compile, instance-sweeps/s median of
    rounds)}; an instance-sweep is one sweep of one instance's chains. The two are timed in turn in each
    round, so a shared machine's load drifts alike."""
    import spin_glass

    ladder = list(1.0 / np.geomspace(3.0, 0.5, n_betas))
    seeds = range(n_instances)
    n = max(2, int(target_updates // (n_instances * n_chains * n_betas * size * size)))

    def build(hamiltonian):
        sm = sampler.Sampler(size, size, hamiltonian, ladder, n_chains, 0, swap_every=1)
        sm.burn(n)                                           # compile + warm up
        jax.block_until_ready(sm.blocks)
        return sm
    t0 = time.perf_counter()
    batched = build(spin_glass.Disorder.standard(size, size, seeds))
    t1 = time.perf_counter()
    alone = [build(spin_glass.EdwardsAnderson.standard(size, size, k)) for k in seeds]
    t2 = time.perf_counter()

    def timed(samplers):
        t = time.perf_counter()
        for sm in samplers:
            sm.burn(n)
            jax.block_until_ready(sm.blocks)
        return time.perf_counter() - t
    rates = {"batched": [], "sequential": []}
    for _ in range(rounds):
        rates["batched"].append(n_instances * n / timed([batched]))
        rates["sequential"].append(n_instances * n / timed(alone))
    return {"batched": (t1 - t0, float(np.median(rates["batched"]))),
            "sequential": (t2 - t1, float(np.median(rates["sequential"]))), "sweeps": n,
            "chains": batched.n_real, "padded": batched.B}


def disorder_paths(repeats, size=16, instances=(8, 32)):
    """`disorder_batch` for a few K: build time and instance-sweeps/s, batched against one after another."""
    print(f"\nDisorder average: K ±J instances of {size} x {size}, 8 betas x 16 chains each, replica exchange every "
          f"sweep, one program against K run one after another (median of {repeats} interleaved rounds; {load()}):")
    for K in instances:
        r = disorder_batch(K, size, rounds=repeats)
        (tb, rb), (ts, rs) = r["batched"], r["sequential"]
        print(f"  K = {K:3d} ({r['chains']} chains, {r['sweeps']} sweeps a round): build + compile {tb:5.1f} s batched, "
              f"{ts:5.1f} s one by one; {rb:9.1f} against {rs:9.1f} instance-sweeps/s ({rb / rs:4.2f}x)")


def swap_cost(hamiltonian, betas, size, rounds, n_chains=8, target_updates=4e7, every=(1, 10)):
    """{K: the throughput with replica exchange every K sweeps over the one without, float (rounds,)}: the
    samplers are built and compiled once and timed in turn in each round, so that the load of a shared
    machine drifts alike for all of them."""
    n = 2 * max(2, int(target_updates // (2 * n_chains * len(betas) * size * size)))
    samplers = {k: sampler.Sampler(size, size, hamiltonian, betas, n_chains, 0, swap_every=k) for k in (0, *every)}

    def timed(sm):
        t0 = time.perf_counter()
        sm.burn(n)
        jax.block_until_ready(sm.blocks)
        return time.perf_counter() - t0
    for sm in samplers.values():
        timed(sm)                                    # compile + warm up
    ratios = {k: [] for k in every}
    for _ in range(rounds):
        t = {k: timed(sm) for k, sm in samplers.items()}
        for k in every:
            ratios[k].append(t[0] / t[k])
    return {k: np.array(r) for k, r in ratios.items()}


@functools.partial(jax.jit, static_argnames=("lat", "kernel", "n"), donate_argnames=("blocks",))
def _abs_m_trace(lat, kernel, t0, n, blocks, ch):
    """n updates of `kernel` from update t0: (blocks, |m| after each update float32 (n, B)); a Potts
    lattice's |m| is the modulus of the Z_q magnetisation (1/N) sum_i exp(2 pi i s_i / q)."""
    def order(b):
        if not hasattr(lat, "q"):
            return jnp.abs(sum(jnp.sum(x, axis=1) for x in b)) / lat.S
        return jnp.abs(sum(jnp.sum(jnp.exp(2j * np.pi / lat.q * x), axis=1) for x in b)) / lat.S

    def body(b, i):
        b = kernel(lat, t0 + i, b, 0.0, ch)[0]
        return b, order(b)
    return jax.lax.scan(body, blocks, jnp.arange(n, dtype=jnp.uint32))


def _cluster_run(size, kernel, n_chains, n, equilibrated=None, algorithm="cluster", hamiltonian="ISING1",
                 beta=ising.BETA_C_ISING1):
    """A Hamiltonian (ISING1) at beta (beta_c) on size x size: tau_int(|m|) in updates over n updates of
    n_chains chains (from `equilibrated` blocks, else 200 cluster sweeps from a random start), and seconds
    per update of the whole batch (the trace's own time). Returns (tau, s_per_update, final blocks)."""
    sm = sampler.Sampler(size, size, hamiltonian, [beta], n_chains, 1, algorithm)
    if equilibrated is None:
        sw = sampler.Sampler(size, size, hamiltonian, [beta], n_chains, 2, "cluster")
        sw.burn(200)
        equilibrated = sw.blocks
    blocks = tuple(jnp.array(b) for b in equilibrated)
    blocks, _ = _abs_m_trace(sm.lat, kernel, jnp.uint32(10 ** 6), 8, blocks, sm.chains)   # compile
    jax.block_until_ready(blocks)
    t0, series, done = time.perf_counter(), [], 0
    while done < n:                                   # chunks: the series stays small on the device
        k = min(n - done, 2000)
        blocks, m = _abs_m_trace(sm.lat, kernel, jnp.uint32(done), k, blocks, sm.chains)
        series.append(np.asarray(m)[:, :sm.n_real])
        done += k
    dt = (time.perf_counter() - t0) / n
    return estimators.integrated_autocorr_time(np.concatenate(series).T), dt, blocks


def cluster_cost_ratio(size, n_chains=64, rounds=5, n_sw=10, n_cb=40):
    """Seconds per Swendsen-Wang sweep over seconds per checkerboard sweep, ISING1 at beta_c, the same
    chains: the two samplers compiled once and timed in turn in each round, so that the load of a shared
    machine drifts alike for both; float (rounds,)."""
    samplers = {alg: sampler.Sampler(size, size, "ISING1", [ising.BETA_C_ISING1], n_chains, 0, alg)
                for alg in ("cluster", "checkerboard")}
    sweeps = {"cluster": n_sw, "checkerboard": n_cb}

    def timed(alg):
        t0 = time.perf_counter()
        samplers[alg].burn(sweeps[alg])
        jax.block_until_ready(samplers[alg].blocks)
        return (time.perf_counter() - t0) / sweeps[alg]
    for alg in samplers:
        timed(alg)                                                  # compile
    return np.array([timed("cluster") / timed("checkerboard") for _ in range(rounds)])


def cluster_paths(n_sw=2000, n_local=(30000, 30000)):
    """Swendsen-Wang (--algorithm cluster) against the checkerboard kernel, ISING1 at beta_c, 64 chains:
    tau_int(|m|) on 64 x 64 (and single-cluster Wolff through the same bonds and labelling) and 128 x 128,
    and tau-corrected independent samples per second, the cost ratio of the two updates timed in turn
    (`cluster_cost_ratio`; the long traces' own times, taken hours apart on a shared machine, are printed
    but not compared)."""
    import cluster

    print(f"\nCluster updates, ISING1 at beta_c = {ising.BETA_C_ISING1:.4f}; {load()}")
    rows = {}
    for size, chains, n_loc in ((64, 64, n_local[0]), (128, 64, n_local[1])):
        tau_sw, dt_sw, eq = _cluster_run(size, cluster.swendsen_wang, chains, n_sw)
        rows[size, "swendsen-wang"] = (tau_sw, dt_sw)
        if size == 64:
            rows[size, "wolff (1 cluster)"] = _cluster_run(size, cluster.wolff, chains, n_sw, eq)[:2]
        rows[size, "checkerboard"] = _cluster_run(size, metropolis._sweep_checkerboard, chains, n_loc, eq,
                                                  "checkerboard")[:2]
        for name in ("swendsen-wang", "wolff (1 cluster)", "checkerboard"):
            if (size, name) in rows:
                tau, dt = rows[size, name]
                print(f"  {size:3d}x{size:<3d} {chains:3d} chains {name:18s}: tau_int(|m|) {tau:8.2f} updates, "
                      f"{dt / chains * 1e3:7.3f} ms per update and chain in its trace")
        cost = cluster_cost_ratio(size, chains)
        tau_ratio = rows[size, "checkerboard"][0] / rows[size, "swendsen-wang"][0]
        print(f"  {size:3d}x{size:<3d} swendsen-wang / checkerboard: tau {tau_ratio:.0f}x shorter, a sweep "
              f"{np.median(cost):.2f}x dearer (median of {len(cost)} interleaved rounds, quartiles "
              f"{np.quantile(cost, 0.25):.2f} ... {np.quantile(cost, 0.75):.2f}): independent samples/s "
              f"{tau_ratio / np.median(cost):.1f}x")
    print(f"  {load()}")


# T_c of each shipped learned Hamiltonian: its 64/128 crossing in results/phase/critical where it has one, else its
# 32/64 crossing in results/phase or results/phase/kaufman (the Potts EDNNs without the symmetry: their 16/32 in
# results/phase/potts_16_32)
LEARNED_T_C = {"EDNN_F1_C1_hid16x2_Q3": 0.9903, "EDNN_F1_C1_hid16x2_Flip_Q3": 0.9951,
               "EDNN_F1_C1_hid16x2_Centred_Q3_from_GRU_1L_1H_hid64_Cosine_Q3": 1.0178,
               "EDNN_F1_C1_hid16x2_Centred_Flip_Q3_from_2D_GRU_1L_1H_Bi_Joint_hid64_Cosine_Q3": 0.9931,
               "EDNN_F1_C1_hid16x2": 2.2693, "EDNN_F1_C1_hid16x2_E80": 2.2689,
               "EDNN_F1_C1_hid16x2_Centred_from_GRU_1L_1H_hid128_Cosine": 2.2906,
               "EDNN_F1_C1_hid16x2_Flip_ISING2_from_2D_GRU_1L_1H_Bi_Joint_hid64_Cosine_ISING2": 3.8201,
               "EDNN_F1_C1_hid16x2_Flip_from_2D_GRU_1L_1H_Bi_Joint_hid64_Cosine": 2.2816,
               "EDNN_F1_C1_hid16x2_ISING2": 3.8052, "EDNN_F1_C1_hid16x2_from_2D_GRU_1L_1H_Bi_Joint_hid64_Cosine": 2.740}


def slmc_paths(size=64, n_chains=64, burn=200, proposals=10, settle=50):
    """Self-learning Monte Carlo on the shipped learned energy functions (weights/energy, as tables) at
    each one's own T_c: the mean acceptance probability of the Swendsen-Wang proposal on the table's
    ferromagnetic pairs and its field (`lattices.slmc_pairs`), over `proposals` sweeps after `burn` SLMC
    sweeps: first the closed form, then the same chains' proposal refitted (`Sampler.learn_proposal`, as
    phase_diagram.py --proposal fitted does) and `settle` sweeps more."""
    from runs import learned_hamiltonian

    def acceptance(sm):
        a = []
        for k in range(proposals):
            a.append(np.asarray(_slmc_acceptance(sm.lat, sm.blocks, jnp.uint32(10 ** 6 + k), sm.chains))[:sm.n_real])
            sm.burn(1)
        return np.mean(a)

    print(f"\nSLMC acceptance, {size} x {size}, {n_chains} chains at each model's T_c; {load()}")
    for name, t_c in LEARNED_T_C.items():
        sm = sampler.Sampler(size, size, learned_hamiltonian(f"weights/energy/{name}"), [1.0 / t_c], n_chains, 0,
                             "cluster")
        sm.burn(burn)
        closed = acceptance(sm)
        lat = sm.lat
        G = ", ".join(f"{o}: {g.mean():.3f}" for o, g in zip(lat.cluster_offsets[:4], lat.proposal_gaps[:4]))
        redraw = f"weighted, field spread {np.ptp(lat.proposal_fields):.4f}" if lat.proposal_weighted else "uniform"
        sm.learn_proposal()
        sm.burn(settle)
        print(f"  {name:80s} beta {1 / t_c:.4f}: acceptance closed form {closed:.3f}, fitted {acceptance(sm):.3f}"
              f"   (closed form's gaps {G}, ...; {redraw})", flush=True)


def potts_table_paths(name="EDNN_F1_C1_hid16x2_Flip_Q3", size=64, n_chains=32, n_local=20000, n_cluster=2000):
    """A shipped learned Potts Hamiltonian (a table of 3^9 window energies) at its T_c on size x size:
    its heat-bath kernel against self-learning Monte Carlo (heat bath plus Swendsen-Wang proposals of the
    table's delta couplings), beside POTTS3's own heat bath and Swendsen-Wang: tau_int(|m|) (Z_q
    magnetisation) and the seconds per update in each trace, and the tau-corrected independent samples
    per second of each, as ratios to the table's heat bath (the traces run one after another: a shared
    machine's load drifts between them, printed before and after)."""
    import cluster
    from runs import learned_hamiltonian

    table, beta = learned_hamiltonian(f"weights/energy/{name}"), 1.0 / LEARNED_T_C[name]
    print(f"\nA learned Potts Hamiltonian ({name}), {size} x {size}, {n_chains} chains at beta {beta:.4f}; {load()}")
    rows = {}
    for label, h, kernels in (("table", table, (("slmc", cluster.slmc, n_cluster, "cluster"),
                                                 ("heat bath", metropolis._sweep_potts_window, n_local, "checkerboard"))),
                              ("POTTS3", potts.Potts(3), (("swendsen-wang", cluster.swendsen_wang, n_cluster, "cluster"),
                                                          ("heat bath", metropolis._sweep_heatbath, n_local, "checkerboard")))):
        eq = None
        for kname, kernel, n, alg in kernels:
            tau, dt, blocks = _cluster_run(size, kernel, n_chains, n, eq, alg, h, beta)
            eq = eq if eq is not None else blocks
            rows[label, kname] = tau, dt
            print(f"  {label:6s} {kname:14s}: tau_int(|m|) {tau:8.2f} updates, {dt / n_chains * 1e3:7.3f} ms per update "
                  f"and chain, independent samples/s {n_chains / (dt * max(tau, 0.5)):9.1f}", flush=True)
    base = rows["table", "heat bath"]
    rate = {k: 1.0 / (dt * max(tau, 0.5)) for k, (tau, dt) in rows.items()}
    print("  independent samples/s against the table's heat bath: " +
          ", ".join(f"{a} {b} {r * base[1] * max(base[0], 0.5):.1f}x" for (a, b), r in rate.items()))
    print(f"  {load()}")


@functools.partial(jax.jit, static_argnames=("lat",))
def _slmc_acceptance(lat, blocks, t, ch):
    import cluster
    return cluster.slmc_proposal(lat, blocks, t, ch)[4]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--chains", type=int, nargs="+", default=[256, 1024, 4096, 8192, 16384])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--tau", action="store_true", help="print the tau_int / burn-in tables instead")
    p.add_argument("--tables", action="store_true", help="only the table-Hamiltonian figures (a minute)")
    p.add_argument("--potts", action="store_true", help="only the Potts heat-bath figures (a minute)")
    p.add_argument("--spin_glass", action="store_true", help="only the spin glass's, replica exchange's and disorder "
                   "average's figures")
    p.add_argument("--disorder", action="store_true", help="only the disorder average's figures: K instances in one "
                   "program against one after another")
    p.add_argument("--cluster", action="store_true", help="only the cluster update's figures (Swendsen-Wang against "
                   "checkerboard at beta_c, 64 x 64 and 128 x 128: about 15 minutes)")
    p.add_argument("--slmc", action="store_true", help="only self-learning Monte Carlo's acceptance on the shipped "
                   "learned Hamiltonians (weights/energy) at their T_c, and its tau_int against the heat bath on a "
                   "learned Potts Hamiltonian (about 15 minutes)")
    p.add_argument("--rate_of", type=int, default=None, metavar="N_CHAINS",
                   help="print the device count and the checkerboard rate at N_CHAINS only (used for the child process)")
    args = p.parse_args(argv)
    if args.rate_of:
        print(len(jax.devices()), sampler_updates_per_s(args.rate_of, args.repeats))
        return
    print(f"JAX {jax.__version__}, devices: {len(jax.devices())} x {jax.devices()[0].platform}; {load()}")
    if args.tau:
        tau_report()
        return
    if args.tables:
        table_paths(args.repeats)
        return
    if args.potts:
        potts_paths(args.repeats)
        return
    if args.spin_glass:
        spin_glass_paths(args.repeats)
        return
    if args.disorder:
        disorder_paths(args.repeats)
        return
    if args.cluster:
        cluster_paths()
        return
    if args.slmc:
        slmc_paths()
        potts_table_paths()
        return

    energy_jit = jax.jit(lambda s: ising.energy(s, "ISING1"))
    ref_jax = reference_steps_per_s(lambda s: energy_jit(jnp.asarray(s)), 1500)
    ref_np = reference_steps_per_s(lambda s: ising.energy(s, "ISING1"), 20000)
    print("\nPublished algorithm (1 chain, Python loop, full energy per step):")
    print(f"  JAX (jitted energy): {ref_jax:10.3e} steps/s")
    print(f"  numpy:               {ref_np:10.3e} steps/s   (numpy / JAX = {ref_np / ref_jax:.2f})")

    print(f"\nCompiled sampler, 8x8 ISING1 beta={BETA}, attempted spin updates/s (median of {args.repeats}):")
    rates = {}
    for n in args.chains:
        rates[n] = r = sampler_updates_per_s(n, args.repeats)
        print(f"  checkerboard {n:6d} chains: {r:10.3e}   x{r / ref_np:9.0f} numpy ref   x{r / ref_jax:9.0f} JAX ref")
    r = sampler_updates_per_s(1024, 3, "single", target_updates=4e6)
    print(f"  single-site  {1024:6d} chains: {r:10.3e}   x{r / ref_np:9.0f} numpy ref   (vectorised random-site check)")
    best = max(rates, key=rates.get)
    print(f"  best: {rates[best]:.3e} updates/s at {best} chains (target >= 1.5e8)")
    cores = len(os.sched_getaffinity(0))
    if cores > 1:
        by_devices = host_device_rates(best, args.repeats)
        r1, rn = by_devices[1], by_devices[cores]
        print(f"  checkerboard {best:6d} chains, child processes: 1 XLA host device {r1:10.3e}, "
              f"{cores} devices {rn:10.3e}   ({cores} / 1 = {rn / r1:.2f})")
    th = thrml_updates_per_s(best, max(1, args.repeats // 2))
    if th is None:
        print("  thrml not installed: comparison skipped (pip install thrml to run it)")
    else:
        print(f"  thrml block Gibbs {best:6d} chains: {th:10.3e}   (this sampler / thrml = {rates[best] / th:.1f})")

    field_paths(max(1, args.repeats // 2))
    table_paths(max(1, args.repeats // 2))
    potts_paths(max(1, args.repeats // 2))
    spin_glass_paths(max(1, args.repeats // 2))

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

"""The Sampler: chains x betas of any Hamiltonian in one compiled JAX program, streamed; and the HDF5 file.

    s = Sampler(8, 8, ising.Ising("ISING1"), betas=[0.3, 0.44], n_chains=512, seed=0)
    s.burn(1000)
    for spins, energies in s.stream(n=100, thin=5):     # int8 (k, R, S), float32 (k, R) per call
        ...

The Hamiltonian (`hamiltonians.py`) gives the lattice (`lattices.py`), which names its kernel
(`metropolis.py`), its energy, start state and acceptance operand: nothing here asks what either is.
Chain g of the batch has beta betas[g % n_betas]; the batch is padded (`_padded_batch`) and sharded
over the devices JAX sees. A disorder average (`spin_glass.Disorder`, K instances of one size) is one
batch too, laid out as instances x chains x betas: chain g = (k n_chains + c) n_betas + b is chain c
of instance k at beta b, so the chains of every instance are sharded, padded and exchanged like any
others, and replica exchange (neighbouring betas of one chain number) never leaves an instance. `generate` is the data file: burn-in, the integrated autocorrelation time
of the energy, thinning, and the samples streamed into chunked HDF5 datasets while the next block is
computed, written under a temporary name and renamed when complete.

HDF5 layout: ising_grids int8 (N, n_x, n_y) (spins ±1, or Potts states 0..q-1); true_energies float32
(N,); beta float32 (N,); avg_E float32 (n_betas,) mean stored energy per beta; attributes: the
Hamiltonian's own (`attrs()`: hamiltonian, q, and a table's energy_function, trained_on, table_focus,
table_context), n_x, n_y, betas, n_chains, burn_in_sweeps, thin_sweeps, algorithm, random_seed,
acceptance_rate and tau_int_sweeps (per beta, measured), tau_int_stored_energy, tau_int_stored_order and
effective_samples (per beta: how independent the stored samples are, `stored_autocorrelation`), lowest_energy (per beta: the lowest energy after
any sweep from the measured burn-in sweeps on, `Sampler.lowest_energies`), n_samples_per_beta, versions
(JSON), command.
Sample order: index i = (t * n_chains + c) * n_betas + b (beta b fastest, then chain c, then stored
time t), so any prefix [:n] has every beta equally often (+-1) and draws its lattices from as many
different chains as possible.
"""
from __future__ import annotations

import functools
import json
import math
import shlex
import shutil
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import hamiltonians
from checks import UserError, atomic_path, check_output_file
from estimators import integrated_autocorr_time
from lattices import lattice
from metropolis import ALGORITHMS, Chains, _stream_key, _words, threefry2x32

DENSE_MAX_SITES = 1024   # pair lattices: dense products up to here, gathers above (benchmarks/README.md)
DEFAULT_BURN_IN = 1000
DEFAULT_TOTAL_CHAINS = 4096
TRACE_SWEEPS = 256       # last burn-in sweeps, where tau_int and the acceptance rate are measured
PROPOSALS = ("closed_form", "fitted")   # self-learning Monte Carlo's proposal (`Sampler.learn_proposal`)
FIT_SAMPLES, FIT_THIN = 64, 2           # "fitted": the burn-in samples its least squares takes, their spacing
FIT_SWEEPS = FIT_SAMPLES * FIT_THIN
# The largest beta sampled. The acceptance is min(1, exp(-beta dE)) in float32, which is 0 below
# exp(-88): beyond beta = 1e4 every move raising the energy by more than 0.01 is never taken, so the
# chains are frozen (a quench to zero temperature, not a Boltzmann sample), and the betas stored in
# float32 become inf above 3.4e38.
MAX_BETA = 1e4
BYTES_PER_SAMPLE = 9     # besides the lattice (1 byte a site): true_energies and beta (float32), chunk index


# --------------------------------------------------------------------------- compiled programs
def _sweeps(lat, algorithm, t0, n, blocks, ch):
    """n sweeps from sweep t0; returns the blocks."""
    sweep = lat.sweep(algorithm)
    return jax.lax.fori_loop(jnp.uint32(0), n, lambda i, b: sweep(lat, t0 + i, b, 0.0, ch)[0], blocks)


@functools.partial(jax.jit, static_argnames=("lat",))
def _init(lat, key, cid):
    """The random start (infinite temperature): float32 blocks (B, m_c)."""
    return lat.start(_words(lat, key, cid, jnp.uint32(0))[:, :lat.S])


_burn = jax.jit(_sweeps, static_argnames=("lat", "algorithm"), donate_argnames=("blocks",))


@functools.partial(jax.jit, static_argnames=("lat", "algorithm", "n"), donate_argnames=("blocks",))
def _trace(lat, algorithm, t0, n, blocks, ch):
    """n sweeps: (blocks, energy after each sweep (n, B), accepted flips per chain (B,))."""
    sweep = lat.sweep(algorithm)

    def body(state, i):
        b, e, acc = sweep(lat, t0 + i, state[0], state[1], ch)
        e = lat.stored_energy(b, e)
        return (b, e, state[2] + acc), e
    start = (blocks, lat.energies(blocks), jnp.zeros(ch.cid.shape, jnp.int32))
    (blocks, _, acc), es = jax.lax.scan(body, start, jnp.arange(n, dtype=jnp.uint32))
    return blocks, es, acc


@functools.partial(jax.jit, static_argnames=("lat", "algorithm", "n"), donate_argnames=("blocks",))
def _produce(lat, algorithm, t0, n, thin, blocks, ch):
    """n stored samples `thin` sweeps apart: (blocks, (spins int8 (n, B, S) in flat site order,
    energies float32 (n, B)), lowest energy after any of the sweeps float32 (B,)); int8 moves 4x less,
    and undoing the colour order here beats numpy."""
    kernel = lat.sweep(algorithm)

    def sweep(k, state):
        b, e = kernel(lat, k, state[0], state[1], ch)[:2]
        return b, e, jnp.minimum(state[2], lat.stored_energy(b, e))

    def body(state, i):
        b, e, low = jax.lax.fori_loop(t0 + i * thin, t0 + (i + 1) * thin, sweep, state)
        e = lat.stored_energy(b, e)
        return (b, e, low), (jnp.take(jnp.concatenate(b, axis=1).astype(jnp.int8), lat.inverse, axis=1), e)
    e = lat.energies(blocks)
    (blocks, _, low), out = jax.lax.scan(body, (blocks, e, e), jnp.arange(n, dtype=jnp.uint32))
    return blocks, out, low


def _swap_log_accept(d_beta, d_energy):
    """log of the replica-exchange acceptance min(1, exp((beta_i - beta_j)(E_i - E_j))) before the min:
    the ratio of exp(-beta_i E_j - beta_j E_i) to exp(-beta_i E_i - beta_j E_j), detailed balance of the
    product of the betas' Boltzmann laws."""
    return d_beta * d_energy


def _swap_round(n_betas, r, key, betas, blocks, e, cid):
    """Replica exchange, round r (uint32 scalar, may be traced): chain g (beta index b = g mod n_betas,
    b = r mod 2) and chain g + 1 (beta index b + 1, the same chain number) swap configurations with
    probability min(1, exp((beta_b - beta_(b+1)) (E_g - E_(g+1)))), from 24 bits of the stream `key` at
    counter (chain id, round); even and odd pairs alternate, so the pairs of a round are disjoint.
    betas float32 (B,), e float32 (B,) the energies of the blocks.  Returns (blocks, e, accepted bool
    (B,) at the lower chain of each pair); each block is gathered once by the pairs' permutation."""
    B = e.shape[0]
    g = jnp.arange(B)
    b = g % n_betas
    lower = (b % 2 == (r % 2).astype(b.dtype)) & (b + 1 < n_betas) & (g + 1 < B)
    up = jnp.minimum(g + 1, B - 1)
    log_a = _swap_log_accept(betas - betas[up], e - e[up])
    u = (threefry2x32(key[0], key[1], cid, jnp.broadcast_to(r, cid.shape))[0] >> jnp.uint32(8)).astype(jnp.float32)
    ok = lower & (u * jnp.float32(2.0 ** -24) < jnp.exp(jnp.minimum(log_a, 0.0)))
    partner = jnp.where(ok, g + 1, jnp.where(jnp.roll(ok, 1) & (g > 0), g - 1, g))
    return tuple(jnp.take(x, partner, axis=0) for x in blocks), jnp.take(e, partner), ok


@functools.partial(jax.jit, static_argnames=("lat", "n_betas", "parity"), donate_argnames=("blocks",))
def _exchange(lat, n_betas, parity, key, r, betas, blocks, cid):
    """One replica-exchange round r (parity = r mod 2) on blocks alone, their energies computed here
    (`_swap_round`).  Returns (blocks, accepted bool (B,) at the lower chain of each pair)."""
    assert parity in (0, 1)
    blocks, _, ok = _swap_round(n_betas, r, key, betas, blocks, lat.energies(blocks), cid)
    return blocks, ok


class Swaps(NamedTuple):
    """Replica exchange's inputs to the compiled programs: the swaps' random key uint32 (2,), the beta of
    each chain float32 (B,)."""
    key: jax.Array
    betas: jax.Array


@functools.partial(jax.jit, static_argnames=("lat", "algorithm", "n_betas", "every", "n", "record"),
                   donate_argnames=("blocks",))
def _exchange_run(lat, algorithm, n_betas, every, record, t0, n, thin, blocks, ch, sw):
    """Sweeps with replica exchange in one compiled program: n stored steps of `thin` sweeps from sweep t0,
    a swap round after every sweep t + 1 that is a multiple of `every` (round (t + 1) / every - 1), from
    the energies the kernel tracks (no recomputation).  record: "none" (burn-in), "energy" (the energy
    after each step, and the accepted flips) or "sample" (spins and energy after each step's last sweep,
    taken before that sweep's swap).  Returns (blocks, out, accepted swaps int32 (B,) per lower chain,
    lowest energy seen float32 (B,) per chain slot, accepted flips int32 (B,)); out: None, energies
    (n, B) or (spins int8 (n, B, S) in flat site order, energies (n, B))."""
    kernel = lat.sweep(algorithm)
    every = jnp.uint32(every)

    def sweep(t, state):
        blocks, e, low, flips, swaps = state
        blocks, e, a = kernel(lat, t, blocks, e, ch)
        e = lat.stored_energy(blocks, e)
        return blocks, e, jnp.minimum(low, e), (flips + a) if record == "energy" else flips, swaps

    def swap(t, state):
        blocks, e, low, flips, swaps = state
        due = (t + 1) % every == 0

        def exchange(x):
            b, en, s = x
            b, en, ok = _swap_round(n_betas, (t + 1) // every - 1, sw.key, sw.betas, b, en, ch.cid)
            return b, en, s + ok.astype(jnp.int32)
        blocks, e, swaps = jax.lax.cond(due, exchange, lambda x: x, (blocks, e, swaps))
        return blocks, e, low, flips, swaps

    def body(state, i):
        first = t0 + i * thin
        state = jax.lax.fori_loop(first, first + thin - 1, lambda t, st: swap(t, sweep(t, st)), state)
        last = first + thin - 1
        state = sweep(last, state)
        if record == "sample":
            out = (jnp.take(jnp.concatenate(state[0], axis=1).astype(jnp.int8), lat.inverse, axis=1), state[1])
        else:
            out = state[1] if record == "energy" else None
        return swap(last, state), out

    zeros = jnp.zeros(ch.cid.shape, jnp.int32)
    e = lat.energies(blocks)
    (blocks, _, low, flips, swaps), out = jax.lax.scan(body, (blocks, e, e, zeros, zeros),
                                                       jnp.arange(n, dtype=jnp.uint32))
    return blocks, out, swaps, low, flips


def _padded_batch(n, n_devices):
    """Batch size >= n: a multiple of n_devices, at least 64 (tiny runs share one compilation),
    else rounded up to 2^k * {1, 1.25, 1.5, 1.75} so that nearby sizes share compilations."""
    k = 1 << max(0, n.bit_length() - 3)
    b = 64 if n <= 64 else -(-n // k) * k
    return -(-b // n_devices) * n_devices


def _powers_of_two(n, per):
    """n split into calls of `per` (a power of two) and the rest in smaller powers of two: few shapes to compile."""
    rest = n % per
    return [per] * (n // per) + [1 << k for k in range(rest.bit_length() - 1, -1, -1) if rest >> k & 1]


# --------------------------------------------------------------------------- the sampler
class Sampler:
    """A batch of chains at given betas, sharded over all JAX devices.

    hamiltonian: a `hamiltonians.Hamiltonian` or a built-in name (ISING1, ISING2, POTTS<q>), or a
    disorder average (`spin_glass.Disorder`): n_chains chains per beta of each of its n_instances
    instances, batch index g = (k * n_chains + c) * n_betas + b for instance k, chain c, beta b.
    swap_every: K > 0 adds replica exchange: every K sweeps, chains of one chain number at neighbouring
    betas (in the order given) swap configurations by the exact rule (`_swap_round`), inside the sweeps'
    compiled program (`_exchange_run`); swap_rates() gives each neighbour pair's acceptance.  0 (default): no swaps, the chains are independent.
    State: self.blocks, float32 spins (B, m_c) per colour (see `lattices.py`).  Batch index g has
    beta betas[g % n_betas]; indices >= n_real are padding, discarded.  self.t counts sweeps.
    dense: local fields by dense products (default: up to DENSE_MAX_SITES sites) or gathers.
    """

    def __init__(self, n_x, n_y, hamiltonian, betas, n_chains, seed, algorithm="checkerboard", dense=None,
                 swap_every=0):
        self.hamiltonian = hamiltonians.resolve(hamiltonian)
        self.n_x, self.n_y, self.S, self.algorithm = n_x, n_y, n_x * n_y, algorithm
        lat = lattice(self.hamiltonian, n_x, n_y, self.S <= DENSE_MAX_SITES if dense is None else bool(dense))
        lat.check_algorithm(algorithm)
        self.betas = np.asarray(betas, np.float64).reshape(-1)
        self.n_instances, self.n_chains = lat.n_instances, int(n_chains)
        self.lat = lat.laid_out(len(self.betas) * self.n_chains)
        self.n_real = self.n_instances * len(self.betas) * self.n_chains
        mesh = Mesh(np.array(jax.devices()), ("chains",))
        self.B = B = _padded_batch(self.n_real, mesh.size)
        if B * ((self.S + 1) // 2) >= 2 ** 32:
            raise ValueError("too many chains for the 32-bit random-number counters; use fewer --n_chains")
        # one row of thresholds for a single beta, broadcast over the chains: a (1, k) operand
        # compiles to scalar compares, ~20 % faster than a row per chain
        rows = self.betas if len(self.betas) == 1 else self.betas[np.arange(B) % len(self.betas)]
        thr = self.lat.thresholds(rows, algorithm)
        by_chain = NamedSharding(mesh, PartitionSpec("chains"))
        self.chains = Chains(_stream_key(seed, 2),
                             jax.device_put(thr,
                                            by_chain if len(rows) == B else NamedSharding(mesh, PartitionSpec())),
                             jax.device_put(np.arange(B, dtype=np.uint32), by_chain))
        self.t, self.blocks = 0, _init(self.lat, _stream_key(seed, 1), self.chains.cid)   # sharded like cid
        self.swap_every = int(swap_every)
        if self.swap_every < 0 or (self.swap_every and len(self.betas) < 2):
            raise ValueError(f"--swap_every {swap_every}: replica exchange needs K > 0 and at least 2 betas")
        self._swap = Swaps(_stream_key(seed, 3), jnp.asarray(self.betas[np.arange(B) % len(self.betas)], jnp.float32))
        self._accepted = jnp.zeros(B, jnp.int32)                          # accepted swaps per lower chain
        self._tried = np.zeros(max(len(self.betas) - 1, 0))                # swap tries per neighbour pair
        self._low = jnp.full(B, jnp.inf, jnp.float32)                      # lowest energy seen per chain slot

    def _advance(self, n):
        """Sweep counter t0 (uint32) for n more sweeps; the random stream's counters are 32 bits.
        With replica exchange, counts the swap rounds they contain (after every multiple of swap_every)."""
        if (self.t + n) * (self.S if self.algorithm == "single" else 1) >= 2 ** 32:
            raise ValueError("run too long for the 32-bit sweep counter")
        if self.swap_every:
            nb, K = len(self.betas), self.swap_every
            rounds = np.arange(self.t // K + 1, (self.t + n) // K + 1) - 1          # round r after sweep (r + 1) K
            pairs = np.arange(nb - 1)
            self._tried += (self.n_real // nb) * (rounds[:, None] % 2 == pairs % 2).sum(axis=0)
        self.t += int(n)
        return jnp.uint32(self.t - n)

    def order(self):
        """Start from a ground state of the lattice instead (all +1; Potts: all 0)."""
        self.blocks = self.lat.ordered(self.blocks)

    def _run(self, record, n, thin):
        """Replica exchange: `_exchange_run` for n steps of thin sweeps; its bookkeeping; returns out."""
        self.blocks, out, acc, low, flips = _exchange_run(
            self.lat, self.algorithm, len(self.betas), self.swap_every, record, self._advance(n * thin), int(n),
            jnp.uint32(thin), self.blocks, self.chains, self._swap)
        self._accepted = self._accepted + acc
        self._low = jnp.minimum(self._low, low)
        return out, flips

    def swap_rates(self, by_instance=False):
        """Replica exchange: the acceptance of each neighbour pair of betas, float64 (n_betas - 1,), over
        all instances; by_instance: per instance, (n_instances, n_betas - 1) (NaN where none was tried)."""
        nb, K = len(self.betas), self.n_instances
        ok = np.asarray(self._accepted, np.float64)[:self.n_real].reshape(K, -1, nb).sum(axis=1)[:, :nb - 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            return ok / (self._tried / K) if by_instance else ok.sum(axis=0) / self._tried

    def lowest_energies(self, by_instance=False):
        """The lowest energy seen at each beta, float64 (n_betas,) (over all instances), by_instance:
        (n_instances, n_betas): over the energies the programs track, after every sweep of `trace` and
        `produce` (and of `burn` with replica exchange), each chain's start included there; inf where
        none was tracked."""
        low = np.asarray(self._low, np.float64)[:self.n_real].reshape(self.n_instances, -1, len(self.betas)).min(axis=1)
        return low if by_instance else low.min(axis=0)

    def chain_lowest_energies(self):
        """The lowest energy each real chain has seen, float64 (n_instances, n_chains, n_betas)."""
        return np.asarray(self._low, np.float64)[:self.n_real].reshape(self.n_instances, self.n_chains, -1)

    def learn_proposal(self, n=None, thin=None):
        """Self-learning Monte Carlo's learning step (--algorithm cluster on a table Hamiltonian): n samples
        of these chains, thin sweeps apart, refit the proposal to the table's energies there
        (`cluster.fit_proposal`); the chains go on from where they are, under the refitted proposal. The
        n * thin sweeps are spent like burn-in. Any proposal leaves the chain exact; this one is accepted
        more often at the betas it was fitted at. Default n, thin: FIT_SAMPLES, FIT_THIN."""
        import cluster
        from lattices import with_proposal
        check_proposal(self.lat, self.algorithm, "fitted")
        spins, e = (np.asarray(x)[:, :self.n_real] for x in self.produce(n or FIT_SAMPLES, thin or FIT_THIN))
        self.lat = with_proposal(self.lat, *cluster.fit_proposal(self.lat, spins.reshape(-1, self.n_x, self.n_y),
                                                                 e.reshape(-1)))

    def burn(self, n):
        """n sweeps, nothing recorded."""
        if n <= 0:
            return
        if self.swap_every:
            self._run("none", 1, n)
        else:
            self.blocks = _burn(self.lat, self.algorithm, self._advance(n), jnp.uint32(n), self.blocks, self.chains)

    def trace(self, n):
        """n sweeps; returns (energy after each sweep (n, B), accepted flips per chain (B,))."""
        if self.swap_every:
            return self._run("energy", n, 1)
        self.blocks, e, a = _trace(self.lat, self.algorithm, self._advance(n), int(n), self.blocks, self.chains)
        self._low = jnp.minimum(self._low, e.min(axis=0))
        return e, a

    def produce(self, n, thin):
        """n stored samples `thin` sweeps apart: (spins int8 (n, B, S) in flat site order,
        energies float32 (n, B)) as (asynchronous) device arrays.  With replica exchange, the swaps
        run inside the same program (a sample is the state after its last sweep, before that sweep's swap)."""
        if self.swap_every:
            return self._run("sample", n, thin)[0]
        self.blocks, out, low = _produce(self.lat, self.algorithm, self._advance(n * thin), int(n), jnp.uint32(thin),
                                         self.blocks, self.chains)
        self._low = jnp.minimum(self._low, low)
        return out

    def stream(self, n, thin, call_bytes=1 << 24):
        """n samples `thin` sweeps apart, in calls of about call_bytes of int8 spins (a power of two of
        samples each, the rest in smaller powers of two, so only a handful of shapes is compiled); the
        next call is queued before one is handed over, so the device works while the host writes.
        Yields (spins int8 (k, R, S) in flat site order, energies float32 (k, R)) numpy, R = n_real."""
        per = 1 << max(0, (call_bytes // (self.B * self.S)).bit_length() - 1)
        todo = _powers_of_two(n, per)
        pending = self.produce(todo[0], thin)
        for k in range(len(todo)):
            spins, energies = pending
            if k + 1 < len(todo):
                pending = self.produce(todo[k + 1], thin)
            yield np.asarray(spins)[:, :self.n_real], np.asarray(energies)[:, :self.n_real]


# --------------------------------------------------------------------------- the data file
def validate(hamiltonian, n_x, n_y, betas, n_samples, n_chains=None, burn_in=None, thin=None,
             algorithm="checkerboard", filename=None, random_seed=0, proposal="closed_form"):
    """Raise ValueError with a message saying what to change for impossible settings; returns
    the betas as float64 (n_betas,).  hamiltonian: a `hamiltonians.Hamiltonian` or a built-in name."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; use one of {', '.join(ALGORITHMS)}")
    if int(n_x) < 2 or int(n_y) < 2:
        raise ValueError(f"lattice {n_x}x{n_y} is too small: --n_x and --n_y must be at least 2 "
                         f"(a 1-wide periodic lattice couples a spin to itself)")
    h, S = hamiltonians.resolve(hamiltonian), int(n_x) * int(n_y)
    if not 0 <= int(random_seed) < 2 ** 64:
        raise ValueError(f"--random_seed must be in [0, 2^64) (got {random_seed})")
    betas = np.asarray(betas, np.float64).reshape(-1)
    if betas.size == 0:
        raise ValueError("no beta given: pass --beta or --n_beta_samples with --beta_min/--beta_max")
    if not np.all(np.isfinite(betas)) or np.any(betas < 0):
        raise ValueError(f"beta must be finite and >= 0 (got {betas.tolist()}); inverse temperatures are non-negative")
    if np.any(betas > MAX_BETA):
        raise ValueError(f"beta {betas.max():g} is above {MAX_BETA:g}: there exp(-beta dE) is 0 in float32 for every "
                         "energy step above 0.01, so the chains freeze instead of sampling; use a smaller --beta")
    for flag, value, least, what in (("--n_samples", n_samples, 1, "positive"), ("--n_chains", n_chains, 1, "positive"),
                                     ("--burn_in", burn_in, 0, ">= 0 sweeps"), ("--thin", thin, 1, ">= 1 sweep")):
        if value is not None and int(value) < least:
            raise ValueError(f"{flag} must be {what} (got {value})")
    if filename is not None:
        source = None if hamiltonians.builtin(str(h.name)) is not None else str(h.name)   # a run directory, a fit
        try:
            check_output_file("--filename", filename, inputs=(source,))
        except UserError as err:
            raise ValueError(str(err)) from None
        parent = Path(filename).resolve().parent
        if not parent.is_dir():
            raise ValueError(f"output folder {parent} does not exist: create it (mkdir -p {parent}) "
                             f"or choose another --filename")
        need = file_bytes(S, betas.size * int(n_samples))
        free = shutil.disk_usage(parent).free
        if need > free:
            raise ValueError(f"--filename {filename}: {betas.size * int(n_samples)} lattices of {n_x}x{n_y} need about "
                             f"{need / 1e9:.3g} GB, and {parent} has {free / 1e9:.3g} GB free; use fewer --n_samples "
                             "or another folder")
    lat = lattice(h, int(n_x), int(n_y), S <= DENSE_MAX_SITES)
    lat.check_algorithm(algorithm)                     # the lattice refuses sizes it cannot tile
    check_proposal(lat, algorithm, proposal)
    if lat.n_instances > 1:
        raise ValueError(f"a data file holds one instance; {h.label} has {lat.n_instances}: write one file per "
                         "--disorder_seed")
    return betas


def file_bytes(n_sites: int, n_lattices: int) -> int:
    """Disk space a data file of n_lattices lattices of n_sites needs, with 5 % and 1 MiB to spare."""
    return int(1.05 * n_lattices * (n_sites + BYTES_PER_SAMPLE)) + (1 << 20)


def _write_block(dsets, start, grids, energies, betas):
    """Append one block to the resizable datasets (a separate function so tests can interrupt it)."""
    stop = start + len(grids)
    for name, arr in zip(("ising_grids", "true_energies", "beta"), (grids, energies, betas)):
        dsets[name].resize(stop, axis=0)
        dsets[name][start:stop] = arr
    return stop


def check_proposal(lat, algorithm, proposal):
    """ValueError unless `proposal` (PROPOSALS) suits the lattice's update: only self-learning Monte Carlo
    has one to fit."""
    if proposal not in PROPOSALS:
        raise ValueError(f"unknown proposal {proposal!r}; use one of {', '.join(PROPOSALS)}")
    if proposal != "closed_form" and (algorithm != "cluster" or not hasattr(lat, "proposal_gaps")):
        raise ValueError(f"--proposal {proposal}: only self-learning Monte Carlo (--algorithm cluster on a learned "
                         "Hamiltonian) has a proposal to fit; drop --proposal")


def _burn_in(sampler, burn_in, n_chains, proposal="closed_form"):
    """Burn-in sweeps; the last TRACE_SWEEPS (in equilibrium) record the energy after each sweep
    and the accepted flips, so production needs no per-sweep bookkeeping; proposal "fitted": before
    them, FIT_SWEEPS sweeps refit the proposal (`Sampler.learn_proposal`).  Returns (tau_int
    of the energy in sweeps, acceptance rate), float64 (n_betas,) each, NaN where not measured."""
    nb, n_tr = len(sampler.betas), min(TRACE_SWEEPS, burn_in)
    fit = FIT_SWEEPS if proposal == "fitted" else 0
    sampler.burn(max(0, burn_in - n_tr - fit))
    if fit:
        sampler.learn_proposal()
    tau, acc = np.full(nb, np.nan), np.full(nb, np.nan)
    if n_tr:
        es, flips = (np.asarray(x)[..., :sampler.n_real] for x in sampler.trace(n_tr))   # (n_tr, R), (R,)
        acc = flips.reshape(n_chains, nb).sum(0) / (float(n_chains) * n_tr * sampler.S)
        if n_tr >= 16:
            tau = np.array([integrated_autocorr_time(es[:, b::nb].T) for b in range(nb)])
    return tau, acc


MIN_STORED_PER_CHAIN = 20   # stored samples of one chain below which their autocorrelation is not estimated


def stored_autocorrelation(energies, orders, n_chains: int, n_betas: int):
    """How independent a file's samples are: (tau_E, tau_m, effective samples), float64 (n_betas,) each.

    The thinning (`generate`'s thin) is set by the energy's tau_int in the burn-in; slower observables,
    the order parameter above all (near T_c it decorrelates many times slower under local updates), keep
    successive stored samples of one chain correlated. So the stored series themselves are measured:
    energies and orders (|order parameter|), float (N,) in the file's sample order (i = (t n_chains + c)
    n_betas + b); per beta the n_chains series over t, tau_int (`integrated_autocorr_time`, averaged over
    the chains) in stored samples (1: independent), of each. Effective samples: n_per_beta /
    max(1, tau_E, tau_m), the number of independent samples a mean over the file's lattices at that beta
    is worth. NaN where a chain stored fewer than MIN_STORED_PER_CHAIN samples (too short to tell)."""
    T = len(energies) // (n_chains * n_betas)
    nan = np.full(n_betas, np.nan)
    if T < MIN_STORED_PER_CHAIN:
        return nan, nan.copy(), nan.copy()
    cut = T * n_chains * n_betas
    per_beta = lambda x: np.asarray(x[:cut], np.float64).reshape(T, n_chains, n_betas).transpose(2, 1, 0)  # noqa: E731
    e, m = per_beta(energies), per_beta(orders)
    tau_e = np.array([integrated_autocorr_time(e[b]) for b in range(n_betas)])
    tau_m = np.array([integrated_autocorr_time(m[b]) for b in range(n_betas)])
    return tau_e, tau_m, len(energies) / n_betas / np.maximum(1.0, np.maximum(tau_e, tau_m))


def _stream(sampler, f, n_samples, thin, bar, block_bytes):
    """Produce n_samples per beta into the open HDF5 file f in the documented order.  Returns the
    mean energy per beta, float64 (n_betas,), and the stored energies and |order parameters| float32 (N,)
    (for `stored_autocorrelation`)."""
    R, nb, n_x, n_y = sampler.n_real, len(sampler.betas), sampler.n_x, sampler.n_y
    N = n_samples * nb
    dsets = {"ising_grids": f.create_dataset("ising_grids", (0, n_x, n_y), np.int8, maxshape=(N, n_x, n_y),
                                             chunks=(max(1, min(N, (1 << 20) // sampler.S)), n_x, n_y))}
    for name in ("true_energies", "beta"):
        dsets[name] = f.create_dataset(name, (0,), np.float32, maxshape=(N,), chunks=(min(N, 1 << 16),))
    beta_row = np.tile(sampler.betas.astype(np.float32), R // nb)                     # (R,)
    written, orders, energies = 0, np.empty(N, np.float32), np.empty(N, np.float32)
    for spins, en in sampler.stream(-(-N // R), thin, block_bytes):
        keep = min(spins.size // sampler.S, N - written)
        spins, en = spins.reshape(-1, n_x, n_y)[:keep], en.reshape(-1)[:keep]
        orders[written:written + keep] = np.abs(sampler.hamiltonian.order_parameter(spins))
        energies[written:written + keep] = en
        written = _write_block(dsets, written, spins, en, np.tile(beta_row, len(en) // R + 1)[:keep])
        bar.update(keep)
    return energies.reshape(n_samples, nb).mean(axis=0, dtype=np.float64), energies, orders


def generate(filename, *, hamiltonian="ISING1", n_x=8, n_y=8, betas=(0.25,), n_samples=10000, n_chains=None,
             burn_in=None, thin=None, random_seed=11, algorithm="checkerboard", progress=True,
             command=None, block_bytes=1 << 25, swap_every=0, proposal="closed_form"):
    """Sample n_samples lattices per beta and write them atomically to `filename` (HDF5).

    hamiltonian: a `hamiltonians.Hamiltonian` (its `attrs()` go into the file) or a built-in name.
    n_chains: chains per beta (default: about 4096 chains in total, at most n_samples).
    burn_in: sweeps discarded from a random start (default 1000).
    thin: sweeps between stored samples (default: ceil of the largest integrated
    autocorrelation time of the energy, measured per beta on the last 256 burn-in sweeps;
    the acceptance rate is measured there too; with burn_in = 0 both are NaN and thin is 1).
    The energy is not the slowest observable: the file records how correlated the stored samples of a
    chain still are, energy and |order parameter|, and the effective number of samples per beta
    (`stored_autocorrelation`); for independent samples raise thin until tau_int_stored_* is ~1.
    command: the attribute `command` (default: this process's command line).
    proposal: self-learning Monte Carlo's (--algorithm cluster on a learned Hamiltonian): "closed_form",
    the table's own pairs and field, or "fitted", refitted to its energies during the burn-in (`_burn_in`);
    the file's attribute `proposal` (absent: closed_form).
    swap_every: K > 0 adds replica exchange between neighbouring betas every K sweeps (`Sampler`); the
    file then records swap_every and swap_acceptance (per neighbour pair, measured over the whole run).
    lowest_energy (per beta): the lowest energy after any sweep of the last TRACE_SWEEPS burn-in sweeps and
    of production (with replica exchange, of the whole run).
    Raises ValueError for impossible settings (see `validate`); writes nothing then, and on any
    failure or interruption removes its temporary file.  Returns the Path written.
    """
    import h5py
    import jaxlib
    from tqdm.auto import tqdm

    h = hamiltonians.resolve(hamiltonian)
    betas = validate(h, n_x, n_y, betas, n_samples, n_chains, burn_in, thin, algorithm, filename, random_seed, proposal)
    n_x, n_y, n_samples, nb = int(n_x), int(n_y), int(n_samples), len(betas)
    n_chains = int(n_chains) if n_chains is not None else max(1, min(n_samples, -(-DEFAULT_TOTAL_CHAINS // nb)))
    burn_in = DEFAULT_BURN_IN if burn_in is None else int(burn_in)
    sampler = Sampler(n_x, n_y, h, betas, n_chains, random_seed, algorithm, swap_every=swap_every)
    tau, acc = _burn_in(sampler, burn_in, n_chains, proposal)
    if thin is None:
        thin = max(1, math.ceil(float(np.nanmax(tau)) - 1e-9)) if np.any(np.isfinite(tau)) else 1
    with atomic_path(filename) as tmp:
        with h5py.File(tmp, "w") as f, tqdm(total=n_samples * nb, unit="samples", unit_scale=True,
                                             disable=not progress, desc=f"{h.label} {n_x}x{n_y} {nb} beta(s)") as bar:
            avg_e, energies, orders = _stream(sampler, f, n_samples, int(thin), bar, block_bytes)
            f["avg_E"] = avg_e.astype(np.float32)
            tau_e, tau_m, effective = stored_autocorrelation(energies, orders, n_chains, nb)
            f.attrs.update(h.attrs())
            if proposal != "closed_form":
                f.attrs["proposal"] = proposal
            if swap_every:
                f.attrs.update({"swap_every": int(swap_every), "swap_acceptance": sampler.swap_rates()})
            f.attrs.update({"n_x": n_x, "n_y": n_y, "betas": betas, "n_chains": n_chains,
                            "burn_in_sweeps": burn_in, "thin_sweeps": int(thin),
                            "algorithm": sampler.lat.algorithm_name(algorithm),
                            "random_seed": int(random_seed), "acceptance_rate": acc, "tau_int_sweeps": tau,
                            "tau_int_stored_energy": tau_e, "tau_int_stored_order": tau_m,
                            "effective_samples": effective,
                            "lowest_energy": sampler.lowest_energies(),
                            "n_samples_per_beta": n_samples,
                            "versions": json.dumps({"python": sys.version.split()[0], "jax": jax.__version__,
                                                    "jaxlib": jaxlib.__version__, "numpy": np.__version__,
                                                    "h5py": h5py.__version__}),
                            "command": shlex.join(sys.argv) if command is None else command,
                            "sample_order": "index = (t * n_chains + chain) * n_betas + beta_index"})
    return Path(filename)

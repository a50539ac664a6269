"""Exact Metropolis sampling of the 2D Ising model (periodic boundaries), streamed to HDF5.

The physics is `ising.py`'s: ISING1 (nearest neighbours) and ISING2 (plus both diagonals at
J = 1/2), grid[x, y] with x the row, flat site x*n_y + y.

All chains (n_chains per beta, all betas together) run in one jit-compiled JAX program.  The
sites are reordered by the colours of `ising.colouring` (2 for ISING1, 4 for ISING2 on even
sizes, 3 or more on odd ones), with one float32 block of spins (chains, sites) per colour.
Sites of one colour do not interact, so a whole block is updated at once (checkerboard
Metropolis).  Its local field is the sum over the other blocks a of s_a J_ac: dense products
up to DENSE_MAX_SITES sites, gathers of the neighbours above (both exact in float32).  A flip
changes the energy by dE = 2 s_i h_i and is accepted when 31 random bits are below
round(2^31 a(dE)), precomputed per beta: a(dE) = c(beta) min(1, exp(-beta dE)), x 0.9 at
dE = 0, exact detailed balance and ergodic (`acceptance_scale`).  A sweep also returns the
energy it leaves, from the fields it computes anyway (`_sweep_checkerboard`): no extra products
(a separate energy from block products came out wrong from XLA CPU, jax 0.10.2, for 4 x 4 ISING2
at >= 4096 chains per device; the tests compare stored energies with `ising.energy`).
algorithm="single" is the reference's random-site single-spin-flip Metropolis (a sweep = S
steps), vectorised over chains: an independent check.

Random bits: Threefry-2x32-20 keyed by the seed, counter (global chain id, sweep), so a chain's
stream does not depend on how many chains run or how they are padded and sharded over the
devices JAX sees: a seed gives the same file on any machine.  (On CPU, one XLA host device per
core, XLA_FLAGS=--xla_force_host_platform_device_count=n, measured no faster than the default
single device, which already uses every core: benchmarks/bench_sampler.py.)

HDF5 layout (written under a temporary name, renamed when complete):
  ising_grids int8 (N, n_x, n_y) +-1; true_energies float32 (N,); beta float32 (N,);
  avg_E float32 (n_betas,) mean stored energy per beta; attributes model, n_x, n_y, betas,
  n_chains, burn_in_sweeps, thin_sweeps, algorithm, random_seed, acceptance_rate (per beta),
  tau_int_sweeps (per beta, measured), versions (JSON), command.
  Sample order: index i = (t * n_chains + c) * n_betas + b  (beta b fastest, then chain c,
  then stored time t), so any prefix [:n] has every beta equally often (+-1) and draws its
  lattices from as many different chains as possible.
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import os
import shlex
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ising import MODELS, check_model, colouring, energy, integrated_autocorr_time, neighbours

__all__ = ["generate", "main", "validate", "Sampler", "acceptance_scale", "acceptance_table", "threefry2x32"]

ALGORITHMS = ("checkerboard", "single")
DEFAULT_BURN_IN = 1000
DEFAULT_TOTAL_CHAINS = 4096
TRACE_SWEEPS = 256       # last burn-in sweeps, where tau_int and the acceptance rate are measured
DENSE_MAX_SITES = 1024   # dense products up to here (bench_sampler: 3-4x gathers at 8x8, even at 32x32,
                         # 1/4 at 64x64)
ZERO_ACCEPT = {"checkerboard": 0.9, "single": 1.0}   # acceptance factor at dE = 0 (acceptance_scale)


def acceptance_scale(betas, algorithm="checkerboard"):
    """Overall factor c(beta) of the acceptance a = c min(1, exp(-beta dE)), float64 like betas.

    Any c in (0, 1] and any factor in (0, 1] at dE = 0 (ZERO_ACCEPT) keep detailed balance,
    a(dE)/a(-dE) = exp(-beta dE).  Plain Metropolis (both 1) is not ergodic with sublattice
    updates: at beta = 0 every proposal is accepted and a sweep flips the whole lattice, and a
    lattice in which every spin has zero local field (diagonal stripes of width 2; rows +- on
    2 x n) flips completely at every half-sweep forever.  The factor 0.9 at dE = 0 removes such
    cycles (a deterministic cycle would need every flip to lower the energy), and
    c = 1 - exp(-20 beta)/2 makes beta = 0 exact heat-bath (each spin flips with probability
    1/2) while costing nothing where c > 0.996 (beta >= 0.25); measured tau_int of the energy
    on 8x8 at beta 0.05: 1.06 sweeps instead of 2.3.  The reference's random-site algorithm
    keeps plain Metropolis (its random site choice mixes).
    """
    b = np.asarray(betas, np.float64)
    return np.ones_like(b) if algorithm == "single" else 1.0 - 0.5 * np.exp(-20.0 * b)


def acceptance_table(betas, levels, zero_accept, scale):
    """Acceptance probabilities float64 (len(betas), len(levels) + 1): column i < len(levels) for
    s*h = levels[i] (levels[0] = 0, the rest positive): scale * exp(-2 beta s h), times
    zero_accept at s*h = 0; the last column, s*h < 0: scale (one number or one per beta)."""
    b = np.asarray(betas, np.float64).reshape(-1, 1)
    c = np.broadcast_to(np.asarray(scale, np.float64).reshape(-1, 1), b.shape)
    a = c * np.exp(-2.0 * b * np.asarray(levels, np.float64)[None, :])
    a[:, 0] *= zero_accept
    return np.concatenate([a, c], axis=1)


# ------------------------------------------------------------------------------------ RNG
_ROT = (13, 15, 26, 6, 17, 29, 16, 24)


def threefry2x32(k0, k1, x0, x1):
    """Threefry-2x32 with 20 rounds (Salmon et al. 2011) on uint32 arrays (jnp or np).

    Written out with elementwise ops so XLA fuses it into the sweep kernel (much faster on
    CPU than jax.random's implementation).  Returns the two output words.
    """
    xp = jnp if any(isinstance(a, jax.Array) for a in (k0, k1, x0, x1)) else np
    u = xp.uint32
    k0, k1, x0, x1 = (xp.asarray(a, dtype=u) for a in (k0, k1, x0, x1))
    ks = (k0, k1, k0 ^ k1 ^ u(0x1BD11BDA))
    x0, x1 = x0 + ks[0], x1 + ks[1]
    with np.errstate(over="ignore"):
        for i in range(5):
            for r in (_ROT[:4] if i % 2 == 0 else _ROT[4:]):
                x0 = x0 + x1
                x1 = ((x1 << u(r)) | (x1 >> u(32 - r))) ^ x0
            x0 = x0 + ks[(i + 1) % 3]
            x1 = x1 + ks[(i + 2) % 3] + u(i + 1)
    return x0, x1


def _stream_key(seed, stream):
    """Key uint32 (2,) of an independent random stream (1: start, 2: sweeps) of a 64-bit seed."""
    seed = int(seed)
    a, b = threefry2x32(np.uint32(seed & 0xFFFFFFFF), np.uint32(seed >> 32), np.uint32(stream),
                        np.uint32(0x9E3779B9))
    return jnp.asarray([a, b], jnp.uint32)


# ---------------------------------------------------------------------------- the lattice
def _padded(rows):
    """rows: per site a list of (index, J) -> (index int32 (n, k), J float32 (n, k)), zero padded."""
    k = max(len(r) for r in rows)
    return (np.array([[q for q, _ in r] + [0] * (k - len(r)) for r in rows], np.int32),
            np.array([[w for _, w in r] + [0.0] * (k - len(r)) for r in rows], np.float32))


class Lattice:
    """Static tables of one lattice in colour order; `lattice()` makes one object per lattice, the
    static argument of the jitted kernels (they compile once per lattice).

    Positions offsets[c]:offsets[c+1] hold colour c (m_c sites, "block" c); order int (S,) maps
    position -> flat site, inverse int (S,) flat site -> position.  nbr int32 (S, k) and
    nbw float32 (S, k): the neighbour positions of each position and their couplings.
    couplings {(a, c): table} for each pair of coupled colours, how block a enters the local field
    of block c: J_ac float32 (m_a, m_c) if dense, else (indices into block a int32 (m_c, k_ac),
    couplings float32 (m_c, k_ac)).  levels: the values of s_i h_i >= 0, 0 first.
    """

    def __init__(self, n_x, n_y, model, dense):
        self.n_x, self.n_y, self.model, self.dense, self.S = n_x, n_y, model, dense, n_x * n_y
        col = colouring(n_x, n_y, model)
        self.order = np.argsort(col, kind="stable")
        self.inverse = np.argsort(self.order)
        self.offsets = np.concatenate([[0], np.cumsum(np.bincount(col))])
        self.n_colours = len(self.offsets) - 1
        nb = neighbours(n_x, n_y, model)
        self.nbr, self.nbw = _padded([[(self.inverse[j], w) for j, w in nb[i].items()] for i in self.order])
        tables = {}
        for p, i in enumerate(self.order):
            c = col[i]
            for j, w in nb[i].items():
                a, q = col[j], self.inverse[j]
                rows = tables.setdefault((a, c), [[] for _ in range(self.offsets[c + 1] - self.offsets[c])])
                rows[p - self.offsets[c]].append((q - self.offsets[a], w))
        self.couplings = {pair: _padded(rows) for pair, rows in tables.items()}
        if dense:
            for (a, c), (idx, w) in self.couplings.items():
                J = np.zeros((self.offsets[a + 1] - self.offsets[a], len(idx)), np.float32)
                np.add.at(J, (idx, np.arange(len(idx))[:, None]), w)
                self.couplings[a, c] = J
        # translation invariance: every site sees the couplings of site 0
        sums = {0.0}
        for w in nb[0].values():
            sums = {s + d for s in sums for d in (w, -w)}
        self.levels = [0.0] + sorted(v for v in sums if v > 0)

    def block(self, x, c):
        """Colour c's columns of x (B, >= S) in colour order."""
        return x[:, self.offsets[c]:self.offsets[c + 1]]

    def split(self, x):
        """(B, S) in colour order -> tuple of blocks (B, m_c)."""
        return tuple(self.block(x, c) for c in range(self.n_colours))


@functools.lru_cache(maxsize=32)
def lattice(n_x, n_y, model, dense):
    return Lattice(n_x, n_y, model, dense)


# --------------------------------------------------------------------------- the kernels
class Chains(NamedTuple):
    """The kernels' inputs besides the spins: key uint32 (2,) of the sweeps' random stream,
    thr uint32 (B or 1, n_levels + 1) = round(2^31 acceptance_table), chain ids cid uint32 (B,)."""
    key: jax.Array
    thr: jax.Array
    cid: jax.Array


def _words(lat, key, cid, t):
    """Random words uint32 (B, 2 ceil(S/2)) for sweep t, column p for colour-ordered position p."""
    nblk = (lat.S + 1) // 2
    ctr = cid[:, None] * jnp.uint32(nblk) + jnp.arange(nblk, dtype=jnp.uint32)[None, :]
    return jnp.concatenate(threefry2x32(key[0], key[1], ctr, jnp.broadcast_to(t, ctr.shape)), axis=1)


def _accept(levels, sh, bits, thr):
    """Metropolis test, bool like sh: 31 random bits < thr[level of s*h] (a chain of selects)."""
    k = len(levels) - 1
    t = thr[:, k:k + 1]
    for i in range(k - 1, -1, -1):
        t = jnp.where(sh <= levels[i] + 0.25, thr[:, i:i + 1], t)
    t = jnp.where(sh < -0.25, thr[:, k + 1:k + 2], t)
    return (bits >> jnp.uint32(1)) < t


def _couple(lat, s_a, a, c):
    """Local field float32 (B, m_c) on block c from the spins s_a (B, m_a) of block a."""
    if lat.dense:
        return s_a @ lat.couplings[a, c]
    idx, w = lat.couplings[a, c]
    return jnp.sum(jnp.take(s_a, idx, axis=1) * w, axis=-1)


def _sweep_checkerboard(lat, t, blocks, e, ch):
    """Sweep t: each block in turn, all its sites at once.  Returns (blocks, energies (B,),
    accepted flips (B,)) after the sweep; kernels that do not use the last two never compute them.
    The energy is -sum_c s_c . (field on c from the colours a < c): those blocks are final when c
    is updated, and every bond is counted once.  (The energy e before the sweep is not needed.)"""
    words = _words(lat, ch.key, ch.cid, t)
    blocks, e_after, acc = list(blocks), 0.0, 0          # 0 - x: never -0.0
    for c in range(lat.n_colours):
        fields = {a: _couple(lat, blocks[a], a, c) for a, c2 in lat.couplings if c2 == c}
        ok = _accept(lat.levels, blocks[c] * functools.reduce(jnp.add, fields.values()), lat.block(words, c), ch.thr)
        acc = acc + jnp.sum(ok, axis=1, dtype=jnp.int32)
        blocks[c] = jnp.where(ok, -blocks[c], blocks[c])
        if c > 0:
            lower = functools.reduce(jnp.add, [fields[a] for a in fields if a < c])
            e_after = e_after - jnp.sum(blocks[c] * lower, axis=1)
    return tuple(blocks), e_after, acc


def _sweep_single(lat, t, blocks, e, ch):
    """Sweep t: S random-site Metropolis steps in every chain (the reference's algorithm) on the
    joined spins (B, S) in colour order; the energy e (B,) before the sweep plus the changes of
    the accepted flips (exact in float32: integers and half-integers).  Returns like
    `_sweep_checkerboard`."""
    S, position = jnp.uint32(lat.S), jnp.arange(lat.S, dtype=jnp.int32)[None, :]

    def step(k, carry):
        s, e, acc = carry
        u0, u1 = threefry2x32(ch.key[0], ch.key[1], ch.cid, jnp.broadcast_to(t * S + k, ch.cid.shape))
        r = (u0 % S).astype(jnp.int32)            # a state-independent site choice keeps Boltzmann stationary
        h = jnp.sum(jnp.take_along_axis(s, jnp.take(lat.nbr, r, axis=0), axis=1) * jnp.take(lat.nbw, r, axis=0), axis=1)
        sh = jnp.take_along_axis(s, r[:, None], axis=1)[:, 0] * h
        ok = _accept(lat.levels, sh[:, None], u1[:, None], ch.thr)[:, 0]
        s = jnp.where((position == r[:, None]) & ok[:, None], -s, s)
        return s, e + jnp.where(ok, 2.0 * sh, 0.0), acc + ok.astype(jnp.int32)

    start = (jnp.concatenate(blocks, axis=1), jnp.broadcast_to(e, ch.cid.shape).astype(jnp.float32),
             jnp.zeros(ch.cid.shape, jnp.int32))
    s, e, acc = jax.lax.fori_loop(jnp.uint32(0), S, step, start)
    return lat.split(s), e, acc


_SWEEPS = {"checkerboard": _sweep_checkerboard, "single": _sweep_single}


def _sweeps(lat, algorithm, t0, n, blocks, ch):
    """n sweeps from sweep t0; returns the blocks."""
    return jax.lax.fori_loop(jnp.uint32(0), n, lambda i, b: _SWEEPS[algorithm](lat, t0 + i, b, 0.0, ch)[0], blocks)


def _energies(lat, blocks):
    """Energies float32 (B,) of the state from `ising.energy`: the start of `_trace`/`_produce`."""
    grids = jnp.take(jnp.concatenate(blocks, axis=1), lat.inverse, axis=1).reshape(-1, lat.n_x, lat.n_y)
    return energy(grids, lat.model)


@functools.partial(jax.jit, static_argnames=("lat",))
def _init(lat, key, cid):
    """Random +-1 start (infinite temperature): float32 blocks (B, m_c)."""
    bits = _words(lat, key, cid, jnp.uint32(0))[:, :lat.S]
    return lat.split(jnp.where((bits >> jnp.uint32(31)) == 1, 1.0, -1.0).astype(jnp.float32))


_burn = jax.jit(_sweeps, static_argnames=("lat", "algorithm"), donate_argnames=("blocks",))


@functools.partial(jax.jit, static_argnames=("lat", "algorithm", "n"), donate_argnames=("blocks",))
def _trace(lat, algorithm, t0, n, blocks, ch):
    """n sweeps: (blocks, energy after each sweep (n, B), accepted flips per chain (B,))."""
    def body(state, i):
        b, e, acc = _SWEEPS[algorithm](lat, t0 + i, state[0], state[1], ch)
        return (b, e, state[2] + acc), e
    start = (blocks, _energies(lat, blocks), jnp.zeros(ch.cid.shape, jnp.int32))
    (blocks, _, acc), es = jax.lax.scan(body, start, jnp.arange(n, dtype=jnp.uint32))
    return blocks, es, acc


@functools.partial(jax.jit, static_argnames=("lat", "algorithm", "n"), donate_argnames=("blocks",))
def _produce(lat, algorithm, t0, n, thin, blocks, ch):
    """n stored samples `thin` sweeps apart: (blocks, (spins int8 (n, B, S) in flat site order,
    energies float32 (n, B))); int8 moves 4x less, and undoing the colour order here beats numpy."""
    def sweep(k, state):
        return _SWEEPS[algorithm](lat, k, state[0], state[1], ch)[:2]

    def body(state, i):
        b, e = jax.lax.fori_loop(t0 + i * thin, t0 + (i + 1) * thin, sweep, state)
        return (b, e), (jnp.take(jnp.concatenate(b, axis=1).astype(jnp.int8), lat.inverse, axis=1), e)
    (blocks, _), out = jax.lax.scan(body, (blocks, _energies(lat, blocks)), jnp.arange(n, dtype=jnp.uint32))
    return blocks, out


# --------------------------------------------------------------------------- the sampler
def _padded_batch(n, n_devices):
    """Batch size >= n: a multiple of n_devices, at least 64 (tiny runs share one compilation),
    else rounded up to 2^k * {1, 1.25, 1.5, 1.75} so that nearby sizes share compilations."""
    k = 1 << max(0, n.bit_length() - 3)
    b = 64 if n <= 64 else -(-n // k) * k
    return -(-b // n_devices) * n_devices


class Sampler:
    """Metropolis sampler for a batch of chains at given betas, sharded over all JAX devices.

    State: self.blocks, float32 spins (B, m_c) per colour (see `Lattice`).  Batch index g has
    beta betas[g % n_betas]; indices >= n_real are padding, discarded.  self.t counts sweeps.
    dense: local fields by dense products (default: up to DENSE_MAX_SITES sites) or gathers.
    """

    def __init__(self, n_x, n_y, model, betas, n_chains, seed, algorithm="checkerboard", dense=None):
        self.n_x, self.n_y, self.S, self.algorithm = n_x, n_y, n_x * n_y, algorithm
        self.lat = lattice(n_x, n_y, model, self.S <= DENSE_MAX_SITES if dense is None else bool(dense))
        self.betas = np.asarray(betas, np.float64).reshape(-1)
        self.n_real = len(self.betas) * int(n_chains)
        mesh = Mesh(np.array(jax.devices()), ("chains",))
        self.B = B = _padded_batch(self.n_real, mesh.size)
        if B * ((self.S + 1) // 2) >= 2 ** 32:
            raise ValueError("too many chains for the 32-bit random-number counters; use fewer --n_chains")
        # one row of thresholds for a single beta, broadcast over the chains: a (1, k) operand
        # compiles to scalar compares, ~20 % faster than a row per chain
        rows = self.betas if len(self.betas) == 1 else self.betas[np.arange(B) % len(self.betas)]
        thr = acceptance_table(rows, self.lat.levels, ZERO_ACCEPT[algorithm], acceptance_scale(rows, algorithm))
        by_chain = NamedSharding(mesh, PartitionSpec("chains"))
        self.chains = Chains(_stream_key(seed, 2),
                             jax.device_put(np.round(thr * 2.0 ** 31).astype(np.uint32),
                                            by_chain if len(rows) == B else NamedSharding(mesh, PartitionSpec())),
                             jax.device_put(np.arange(B, dtype=np.uint32), by_chain))
        self.t, self.blocks = 0, _init(self.lat, _stream_key(seed, 1), self.chains.cid)   # sharded like cid

    def _advance(self, n):
        """Sweep counter t0 (uint32) for n more sweeps; the random stream's counters are 32 bits."""
        if (self.t + n) * (self.S if self.algorithm == "single" else 1) >= 2 ** 32:
            raise ValueError("run too long for the 32-bit sweep counter")
        self.t += int(n)
        return jnp.uint32(self.t - n)

    def burn(self, n):
        """n sweeps, nothing recorded."""
        if n > 0:
            self.blocks = _burn(self.lat, self.algorithm, self._advance(n), jnp.uint32(n), self.blocks, self.chains)

    def trace(self, n):
        """n sweeps; returns (energy after each sweep (n, B), accepted flips per chain (B,))."""
        self.blocks, es, acc = _trace(self.lat, self.algorithm, self._advance(n), int(n), self.blocks, self.chains)
        return es, acc

    def produce(self, n, thin):
        """n stored samples `thin` sweeps apart: (spins int8 (n, B, S) in flat site order,
        energies float32 (n, B)) as (asynchronous) device arrays."""
        self.blocks, out = _produce(self.lat, self.algorithm, self._advance(n * thin), int(n), jnp.uint32(thin),
                                    self.blocks, self.chains)
        return out


# ------------------------------------------------------------------------------- writing
def _write_block(dsets, start, grids, energies, betas):
    """Append one block to the resizable datasets (a separate function so tests can interrupt it)."""
    stop = start + len(grids)
    for name, arr in zip(("ising_grids", "true_energies", "beta"), (grids, energies, betas)):
        dsets[name].resize(stop, axis=0)
        dsets[name][start:stop] = arr
    return stop


def validate(model, n_x, n_y, betas, n_samples, n_chains=None, burn_in=None, thin=None,
             algorithm="checkerboard", filename=None, random_seed=0):
    """Raise ValueError with a message saying what to change for impossible settings; returns
    the betas as float64 (n_betas,)."""
    check_model(model)
    if not 0 <= int(random_seed) < 2 ** 64:
        raise ValueError(f"--random_seed must be in [0, 2^64) (got {random_seed})")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; use one of {', '.join(ALGORITHMS)}")
    if int(n_x) < 2 or int(n_y) < 2:
        raise ValueError(f"lattice {n_x}x{n_y} is too small: --n_x and --n_y must be at least 2 "
                         f"(a 1-wide periodic lattice couples a spin to itself)")
    betas = np.asarray(betas, np.float64).reshape(-1)
    if betas.size == 0:
        raise ValueError("no beta given: pass --beta or --n_beta_samples with --beta_min/--beta_max")
    if not np.all(np.isfinite(betas)) or np.any(betas < 0):
        raise ValueError(f"beta must be finite and >= 0 (got {betas.tolist()}); inverse temperatures are non-negative")
    for flag, value, least, what in (("--n_samples", n_samples, 1, "positive"), ("--n_chains", n_chains, 1, "positive"),
                                     ("--burn_in", burn_in, 0, ">= 0 sweeps"), ("--thin", thin, 1, ">= 1 sweep")):
        if value is not None and int(value) < least:
            raise ValueError(f"{flag} must be {what} (got {value})")
    if filename is not None:
        parent = Path(filename).resolve().parent
        if not parent.is_dir():
            raise ValueError(f"output folder {parent} does not exist: create it (mkdir -p {parent}) "
                             f"or choose another --filename")
        if Path(filename).is_dir():
            raise ValueError(f"--filename {filename} is a directory; give a file name")
    return betas


def _burn_in(sampler, burn_in, n_chains):
    """Burn-in sweeps; the last TRACE_SWEEPS (in equilibrium) record the energy after each sweep
    and the accepted flips, so production needs no per-sweep bookkeeping.  Returns (tau_int of
    the energy in sweeps, acceptance rate), float64 (n_betas,) each, NaN where not measured."""
    nb, n_tr = len(sampler.betas), min(TRACE_SWEEPS, burn_in)
    sampler.burn(burn_in - n_tr)
    tau, acc = np.full(nb, np.nan), np.full(nb, np.nan)
    if n_tr:
        es, flips = (np.asarray(x)[..., :sampler.n_real] for x in sampler.trace(n_tr))   # (n_tr, R), (R,)
        acc = flips.reshape(n_chains, nb).sum(0) / (float(n_chains) * n_tr * sampler.S)
        if n_tr >= 16:
            tau = np.array([integrated_autocorr_time(es[:, b::nb].T) for b in range(nb)])
    return tau, acc


def _stream(sampler, f, n_samples, thin, bar, block_bytes):
    """Produce n_samples per beta into the open HDF5 file f in the documented order; the next
    block is queued before one is written, so the device works while the host writes.  Returns
    the mean energy per beta, float64 (n_betas,)."""
    R, nb, n_x, n_y = sampler.n_real, len(sampler.betas), sampler.n_x, sampler.n_y
    N = n_samples * nb
    dsets = {"ising_grids": f.create_dataset("ising_grids", (0, n_x, n_y), np.int8, maxshape=(N, n_x, n_y),
                                             chunks=(max(1, min(N, (1 << 20) // sampler.S)), n_x, n_y))}
    for name in ("true_energies", "beta"):
        dsets[name] = f.create_dataset(name, (0,), np.float32, maxshape=(N,), chunks=(min(N, 1 << 16),))
    # time slices per produce call: a power of two (about block_bytes of spins), the remainder in
    # smaller powers of two, so only a handful of shapes is ever compiled
    per, n_slices = 1 << max(0, (block_bytes // (sampler.B * sampler.S)).bit_length() - 1), -(-N // R)
    rest = n_slices % per
    schedule = [per] * (n_slices // per) + [1 << k for k in range(rest.bit_length() - 1, -1, -1) if rest >> k & 1]
    beta_row = np.tile(sampler.betas.astype(np.float32), R // nb)                     # (R,)
    sum_e, written, pending = np.zeros(nb), 0, sampler.produce(schedule[0], thin)
    for k, n_now in enumerate(schedule):
        spins, en = pending
        if k + 1 < len(schedule):
            pending = sampler.produce(schedule[k + 1], thin)
        keep = min(n_now * R, N - written)
        spins = np.asarray(spins)[:, :R].reshape(n_now * R, n_x, n_y)[:keep]
        en = np.asarray(en)[:, :R].reshape(-1)[:keep]
        sum_e += np.bincount(np.arange(keep) % nb, weights=en, minlength=nb)
        written = _write_block(dsets, written, spins, en, np.tile(beta_row, n_now)[:keep])
        bar.update(keep)
    return sum_e / n_samples


def generate(filename, *, model="ISING1", n_x=8, n_y=8, betas=(0.25,), n_samples=10000, n_chains=None,
             burn_in=None, thin=None, random_seed=11, algorithm="checkerboard", progress=True,
             command=None, block_bytes=1 << 25):
    """Sample n_samples lattices per beta and write them atomically to `filename` (HDF5).

    n_chains: chains per beta (default: about 4096 chains in total, at most n_samples).
    burn_in: sweeps discarded from a random start (default 1000).
    thin: sweeps between stored samples (default: ceil of the largest integrated
    autocorrelation time of the energy, measured per beta on the last 256 burn-in sweeps;
    the acceptance rate is measured there too; with burn_in = 0 both are NaN and thin is 1).
    command: the attribute `command` (default: this process's command line).
    Raises ValueError for impossible settings (see `validate`); writes nothing then, and on any
    failure or interruption removes its temporary file.  Returns the Path written.
    """
    import h5py
    import jaxlib
    from tqdm.auto import tqdm

    betas = validate(model, n_x, n_y, betas, n_samples, n_chains, burn_in, thin, algorithm, filename, random_seed)
    n_x, n_y, n_samples, nb = int(n_x), int(n_y), int(n_samples), len(betas)
    n_chains = int(n_chains) if n_chains is not None else max(1, min(n_samples, -(-DEFAULT_TOTAL_CHAINS // nb)))
    burn_in = DEFAULT_BURN_IN if burn_in is None else int(burn_in)
    sampler = Sampler(n_x, n_y, model, betas, n_chains, random_seed, algorithm)
    tau, acc = _burn_in(sampler, burn_in, n_chains)
    if thin is None:
        thin = max(1, math.ceil(float(np.nanmax(tau)) - 1e-9)) if np.any(np.isfinite(tau)) else 1
    path = Path(filename)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with h5py.File(tmp, "w") as f, tqdm(total=n_samples * nb, unit="samples", unit_scale=True,
                                             disable=not progress, desc=f"{model} {n_x}x{n_y} {nb} beta(s)") as bar:
            f["avg_E"] = _stream(sampler, f, n_samples, int(thin), bar, block_bytes).astype(np.float32)
            f.attrs.update({"model": model, "n_x": n_x, "n_y": n_y, "betas": betas, "n_chains": n_chains,
                            "burn_in_sweeps": burn_in, "thin_sweeps": int(thin), "algorithm": algorithm,
                            "random_seed": int(random_seed), "acceptance_rate": acc, "tau_int_sweeps": tau,
                            "n_samples_per_beta": n_samples,
                            "versions": json.dumps({"python": sys.version.split()[0], "jax": jax.__version__,
                                                    "jaxlib": jaxlib.__version__, "numpy": np.__version__,
                                                    "h5py": h5py.__version__}),
                            "command": shlex.join(sys.argv) if command is None else command,
                            "sample_order": "index = (t * n_chains + chain) * n_betas + beta_index"})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# ------------------------------------------------------------------------------------ CLI
HELP_DEFAULTS = """
How the defaults were chosen (8x8, checkerboard, 512 chains per beta; reproduce with
`python benchmarks/bench_sampler.py --tau`).  Integrated autocorrelation time of the energy
tau_int = 1 + 2 sum_t rho(t), in sweeps:
  ISING1  beta 0.05: 1.3  0.125: 1.1  0.25: 1.2  0.35: 3.0  0.44: 5.2  0.5: 3.2  0.6: 1.7  1.0: 1.1
  ISING2  beta 0.05: 1.3  0.125: 1.3  0.2: 2.2   0.25: 4.2  0.3: 2.6   0.44: 1.2  1.0: 1.0
--thin (default: measured): ceil(tau_int) of the slowest beta of the run, measured on the fly
  on the last 256 burn-in sweeps of all chains (stored in the attributes thin_sweeps and
  tau_int_sweeps), so stored samples of one chain are at least tau_int sweeps apart
  (8x8 ISING1: thin 2 at beta 0.25, 5 for a range reaching 0.44).
--burn_in (default 1000 sweeps): from the random start the mean energy reaches its equilibrium
  value within about 100 sweeps at every beta above (and the exact finite-lattice value of
  Kaufman 1949 for ISING1); 1000 is 10x that and ~200 tau_int at the critical point.
--n_chains (default: about 4096 chains in total, never more than --n_samples): the sampler's
  throughput saturates around 4096 chains of 8x8 on 2 cores.
The acceptance rate per beta is measured on the same last 256 burn-in sweeps.
Checkerboard acceptance: c(beta) min(1, exp(-beta dE)), x 0.9 at dE = 0, with
c = 1 - exp(-20 beta)/2 (exact detailed balance; makes the sublattice updates ergodic at every
beta >= 0, see generate_ising.acceptance_scale).  --algorithm single uses plain Metropolis.
Sample order: index = (t * n_chains + chain) * n_betas + beta_index, so any prefix [:n]
covers all betas evenly and takes its lattices from as many chains as possible.
"""


def build_parser():
    p = argparse.ArgumentParser(
        description="Sample 2D Ising lattices (periodic, J=1) with a compiled JAX Metropolis sampler "
                    "and stream them to an HDF5 file (written atomically).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=HELP_DEFAULTS)
    p.add_argument("--n_x", type=int, default=8, help="rows (default 8)")
    p.add_argument("--n_y", type=int, default=8, help="columns (default 8)")
    p.add_argument("--beta", type=float, default=0.25, help="inverse temperature, if no beta range (default 0.25)")
    p.add_argument("--n_beta_samples", type=int, default=None,
                   help="number of betas: linspace(beta_min, beta_max, n_beta_samples); overrides --beta")
    p.add_argument("--beta_min", type=float, default=None, help="smallest beta of the range")
    p.add_argument("--beta_max", type=float, default=None, help="largest beta of the range")
    p.add_argument("--random_seed", type=int, default=11, help="seed; same seed and flags give an identical file (default 11)")
    p.add_argument("--model", choices=MODELS, default="ISING1", help="Hamiltonian (default ISING1)")
    p.add_argument("--n_samples", type=int, default=10000, help="stored lattices per beta (default 10000)")
    p.add_argument("--burn_in", type=int, default=None, help=f"sweeps discarded first (default {DEFAULT_BURN_IN})")
    p.add_argument("--thin", type=int, default=None, help="sweeps between stored samples (default: measured tau_int)")
    p.add_argument("--n_chains", type=int, default=None,
                   help=f"independent chains per beta (default: about {DEFAULT_TOTAL_CHAINS} in total, at most n_samples)")
    p.add_argument("--algorithm", choices=ALGORITHMS, default="checkerboard",
                   help="checkerboard (sublattice) updates, or 'single': the reference's random-site single-spin flips")
    p.add_argument("--filename", default="training_data.hdf5", help="output HDF5 file (default training_data.hdf5)")
    p.add_argument("--no_progress", action="store_true", help="hide the progress bar")
    return p


def main(argv=None):
    """The command line; argv defaults to sys.argv[1:].  The file records the command as
    `generate_ising.py <argv>`, also when another program (data_files.py) calls main(argv)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        ranged = args.n_beta_samples is not None
        if ranged != (args.beta_min is not None) or ranged != (args.beta_max is not None):
            raise ValueError("--n_beta_samples needs --beta_min and --beta_max" if ranged else
                             "--beta_min/--beta_max need --n_beta_samples")
        if ranged and args.n_beta_samples < 1:
            raise ValueError(f"--n_beta_samples must be >= 1 (got {args.n_beta_samples})")
        if ranged and args.beta_min > args.beta_max:
            raise ValueError(f"--beta_min {args.beta_min} > --beta_max {args.beta_max}: swap them")
        betas = np.linspace(args.beta_min, args.beta_max, args.n_beta_samples) if ranged else np.array([args.beta])
        validate(args.model, args.n_x, args.n_y, betas, args.n_samples, args.n_chains, args.burn_in,
                 args.thin, args.algorithm, args.filename, args.random_seed)
    except ValueError as e:
        parser.error(str(e))
    path = generate(args.filename, model=args.model, n_x=args.n_x, n_y=args.n_y, betas=betas,
                    n_samples=args.n_samples, n_chains=args.n_chains, burn_in=args.burn_in, thin=args.thin,
                    random_seed=args.random_seed, algorithm=args.algorithm, progress=not args.no_progress,
                    command=shlex.join([Path(__file__).name, *argv]))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

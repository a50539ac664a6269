"""Exact Metropolis sampling of the 2D Ising model (periodic boundaries), streamed to HDF5.

Models (J = 1, total energy, each bond counted once):
  ISING1: E = -sum_i s_i (s_right(i) + s_down(i))                       (8x8: -128 ... 128)
  ISING2: ISING1 - 1/2 sum_i s_i (s_downright(i) + s_upright(i))
Lattice index convention: grid[x, y] with x the row (0..n_x-1, "down" = x+1) and y the column
(0..n_y-1, "right" = y+1).

Sampler
-------
All chains (``n_chains`` per beta, all betas together) evolve in one jit-compiled JAX program;
the sweep loop runs inside ``lax.fori_loop``/``lax.scan``.  Spins live in float32 arrays
(chains, sites of one colour), chain axis first, one per colour class of a proper colouring of
the interaction graph (even sizes: 2 colours (x+y) mod 2 for ISING1, 4 colours
(x mod 2, y mod 2) for ISING2; odd sizes: a greedy colouring, which needs 3 or more colours).
Sites of one colour do not interact, so a whole colour class is updated at once
(checkerboard Metropolis): the local field of the active class is a small dense product
``other_colours @ J_block`` (exact in float32: integer and half-integer sums; above 256 sites
a gather of the neighbours from a fixed index table instead), the energy
change is 2 s_i h_i, and a flip is accepted when 31 uniform random bits are below the
precomputed integer threshold round(2^31 a(dE)) (no exp in the loop), with
a(dE) = c(beta) min(1, exp(-beta dE)), times 0.9 at dE = 0: exact detailed balance, and unlike
plain Metropolis (c = 1) the sublattice updates stay ergodic (see `acceptance_scale`).
Random bits come from a counter-based Threefry-2x32-20 generator keyed by
the seed with counter (global chain id, sweep): every chain's stream is independent of how
many chains run, of padding and of how the chains are sharded over devices, so the same
seed gives the same file on any machine.

``algorithm="single"`` is the published reference's random-site single-spin-flip Metropolis
(one sweep = n_x*n_y steps at uniformly chosen sites), vectorised over chains.  It works for
all sizes and serves as an independent check of the checkerboard kernel.

When JAX sees several devices the chains are sharded over all of them.  On CPU this module
asks XLA for one host device per available core (set before JAX is imported; override with
the environment variable ISING_HOST_DEVICES=n, or by setting
--xla_force_host_platform_device_count yourself in XLA_FLAGS).

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

import os
import sys

if "jax" not in sys.modules and "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    # One XLA host device per core, so that the chains can be sharded over the cores (a
    # prototype measured ~2x on a quiet 2-core machine vs one device; on a busy machine the
    # difference is within noise, see benchmarks/bench_sampler.py).  Must precede `import jax`.
    try:
        _ncores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        _ncores = os.cpu_count() or 1
    _ndev = int(os.environ.get("ISING_HOST_DEVICES", _ncores))
    if _ndev > 1:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                                   + f" --xla_force_host_platform_device_count={_ndev}").strip()

import argparse
import functools
import json
import math
import shlex
import time
from pathlib import Path

import numpy as np

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ising import MODELS, check_model, colouring, energy, integrated_autocorr_time, neighbours

ALGORITHMS = ("checkerboard", "single")

# Defaults (see --help text for how they were chosen).
DEFAULT_BURN_IN = 1000
DEFAULT_TOTAL_CHAINS = 4096
ZERO_ACCEPT_CB = 0.9
TRACE_SWEEPS = 256  # last burn-in sweeps used to measure tau_int and the acceptance rate
# Acceptance probability of a flip with dE = 0.  Any value in (0, 1] keeps the Boltzmann law
# stationary (a(dE)/a(-dE) = exp(-beta dE) holds trivially at dE = 0).  The reference's
# random-site Metropolis uses 1.  Checkerboard updates with 1 are NOT ergodic: a lattice in
# which every spin has zero local field (e.g. diagonal stripes of width 2, or rows +/- on a
# 2 x n lattice) flips completely and deterministically at every half-sweep forever.  Any
# value < 1 removes such cycles (a deterministic cycle would need every flip to lower the
# energy); see tests/test_generate_ising.py for the enumeration checks.
ZERO_ACCEPT = {"checkerboard": ZERO_ACCEPT_CB, "single": 1.0}


def acceptance_scale(betas, algorithm="checkerboard"):
    """Overall factor c(beta) of the checkerboard acceptance, a = c min(1, exp(-beta dE)).

    Detailed balance holds for any c in (0, 1].  With c = 1, as beta -> 0 every proposal is
    accepted and a checkerboard sweep just flips the whole lattice (at beta = 0 the chain is
    deterministic and never mixes).  c = 1 - exp(-20 beta) / 2 makes beta = 0 exact heat-bath
    (each spin flips with probability 1/2) and is > 0.996 for beta >= 0.25, where it costs
    nothing (measured tau_int of the energy on 8x8: 1.06 at beta 0.05 instead of 2.3).
    The reference's random-site algorithm keeps c = 1 (its random site choice mixes).
    """
    b = np.asarray(betas, np.float64)
    if algorithm == "single":
        return np.ones_like(b)
    return 1.0 - 0.5 * np.exp(-20.0 * b)

__all__ = ["generate", "main", "acceptance_scale", "acceptance_table", "validate", "threefry2x32", "Sampler"]


# ------------------------------------------------------------------------------ RNG
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
    x0 = x0 + ks[0]
    x1 = x1 + ks[1]
    with np.errstate(over="ignore"):
        for i in range(5):
            for r in (_ROT[:4] if i % 2 == 0 else _ROT[4:]):
                x0 = x0 + x1
                x1 = (x1 << u(r)) | (x1 >> u(32 - r))
                x1 = x1 ^ x0
            x0 = x0 + ks[(i + 1) % 3]
            x1 = x1 + ks[(i + 2) % 3] + u(i + 1)
    return x0, x1


def _stream_key(seed, stream):
    """Key pair (uint32, uint32) for an independent random stream of a seed."""
    seed = int(seed)
    a, b = threefry2x32(np.uint32(seed & 0xFFFFFFFF), np.uint32((seed >> 32) & 0xFFFFFFFF),
                        np.uint32(stream), np.uint32(0x9E3779B9))
    return np.uint32(a), np.uint32(b)


# -------------------------------------------------------------------------- sampler
def acceptance_table(betas, levels, zero_accept, scale=1.0):
    """Acceptance probabilities (len(betas), len(levels) + 1) float64.

    Column i < len(levels): s*h = levels[i] (levels[0] = 0, the rest positive):
    scale * exp(-2 beta s h), times zero_accept at s*h = 0; last column: s*h < 0: scale.
    `scale` may depend on beta (array); a(dE)/a(-dE) = exp(-beta dE) holds for every choice.
    """
    b = np.asarray(betas, np.float64).reshape(-1, 1)
    c = np.broadcast_to(np.asarray(scale, np.float64).reshape(-1, 1), b.shape)
    a = c * np.exp(-2.0 * b * np.asarray(levels, np.float64)[None, :])
    a[:, 0] *= zero_accept
    return np.concatenate([a, c], axis=1)


def _padded_batch(n, n_devices):
    """Batch size >= n: a multiple of n_devices, at least 64, rounded up to 2^k * {1, 1.25, 1.5,
    1.75} so that compiled kernels are reused across nearby sizes (at most 25 % padding)."""
    if n <= 64:
        b = 64                                  # tiny runs (tests) share one compilation
    else:
        k = 1 << (n.bit_length() - 3)          # steps of 1/8 .. 1/4 of the size
        b = -(-n // k) * k
    return -(-b // n_devices) * n_devices


DENSE_MAX_SITES = 256   # up to this many sites the local fields are small dense products


class _Geometry:
    """Static lattice data: colour order, neighbour table (positions), Metropolis levels, and for
    small lattices the dense coupling matrix in colour order."""

    def __init__(self, n_x, n_y, model, dense):
        self.n_x, self.n_y, self.model = n_x, n_y, model
        self.S = S = n_x * n_y
        col = colouring(n_x, n_y, model)
        self.order = np.argsort(col, kind="stable")          # colour-ordered position -> site
        self.inverse = np.argsort(self.order)                 # site -> position
        self.offsets = np.concatenate([[0], np.cumsum(np.bincount(col))])
        nb = neighbours(n_x, n_y, model)
        rows = [sorted((int(self.inverse[j]), w) for j, w in nb[self.order[p]].items()) for p in range(S)]
        k = max(len(r) for r in rows)
        self.nbr = np.array([[q for q, _ in r] + [0] * (k - len(r)) for r in rows], np.int32)
        self.nbw = np.array([[w for _, w in r] + [0.0] * (k - len(r)) for r in rows], np.float32)
        # Possible values of s_i h_i >= 0 (translation invariance: every site has the same weights).
        sums = {0.0}
        for wk in nb[0].values():
            sums = {s + d for s in sums for d in (wk, -wk)}
        self.levels = [0.0] + sorted(v for v in sums if v > 0)
        self.J = None
        if dense:
            J = np.zeros((S, S), np.float32)
            for p in range(S):
                J[p, self.nbr[p]] += self.nbw[p]
            self.J = J


def _accept(levels, sh, bits, thr):
    """Metropolis test: accept iff 31 random bits < thr[level of s*h].

    thr (B, n_levels + 1) uint32 = round(2^31 a): columns follow `levels` (0 then the positive
    values of s*h), the last column is for s*h < 0; see `acceptance_table`.  A chain of selects
    (no gather, no exp in the loop) picks the threshold.
    """
    k = len(levels) - 1
    t = thr[:, k:k + 1]
    for i in range(k - 1, -1, -1):
        t = jnp.where(sh <= levels[i] + 0.25, thr[:, i:i + 1], t)
    t = jnp.where(sh < -0.25, thr[:, k + 1:k + 2], t)
    return (bits >> jnp.uint32(1)) < t


@functools.lru_cache(maxsize=64)
def _kernels(n_x, n_y, model, algorithm, devices, dense):
    """Compiled init / burn / trace / produce functions for one lattice, model and algorithm.

    The state is a tuple of float32 blocks (B, m_c), one per colour class.  Shapes (batch B)
    and everything that varies between runs (keys, thresholds, sweep counters, numbers of
    sweeps) are arguments, so jit reuses the compilation.
    """
    geo = _Geometry(n_x, n_y, model, dense)
    S, nblk, offs, levels = geo.S, (geo.S + 1) // 2, geo.offsets, geo.levels
    ncol = len(offs) - 1
    mesh = Mesh(np.array(devices), ("chains",))
    sh2 = NamedSharding(mesh, PartitionSpec("chains", None))
    sh1 = NamedSharding(mesh, PartitionSpec("chains"))
    pairs, Jblk = [], {}
    if dense:
        pairs = [(a, c) for c in range(ncol) for a in range(ncol)
                 if a != c and np.any(geo.J[offs[a]:offs[a + 1], offs[c]:offs[c + 1]])]
        Jblk = {(a, c): jnp.asarray(geo.J[offs[a]:offs[a + 1], offs[c]:offs[c + 1]]) for a, c in pairs}
    nbr_c = [jnp.asarray(geo.nbr[offs[c]:offs[c + 1]]) for c in range(ncol)]
    nbw_c = [jnp.asarray(geo.nbw[offs[c]:offs[c + 1]]) for c in range(ncol)]
    nbr, nbw = jnp.asarray(geo.nbr), jnp.asarray(geo.nbw)
    pos_iota = jnp.arange(S, dtype=jnp.int32)[None, :]
    inverse = jnp.asarray(geo.inverse, jnp.int32)

    def counters(cid):
        return cid[:, None] * jnp.uint32(nblk) + jnp.arange(nblk, dtype=jnp.uint32)[None, :]

    def split(s):
        return tuple(s[:, offs[c]:offs[c + 1]] for c in range(ncol))

    def join(blocks):
        return blocks[0] if ncol == 1 else jnp.concatenate(blocks, axis=1)

    def grids_of(blocks):
        """Colour-ordered blocks -> float32 lattices (B, n_x, n_y)."""
        return jnp.take(join(blocks), inverse, axis=1).reshape(-1, n_x, n_y)

    def energies(blocks):
        # From the Hamiltonian's definition (rolls).  A dot-product form over the colour blocks
        # returned wrong values inside the single-flip produce loop for batches >= 8192 on XLA
        # CPU (jax 0.10.2) although the same function was right in a separate jit; the rolls are
        # also an independent check of the coupling matrix used by the sweeps.
        return energy(grids_of(blocks), model)

    def energies_blocks(blocks):
        """E = -sum over coupled colour pairs a < c of s_c . (s_a J_ac) (each bond once): the same
        small products as the sweeps, ~6x cheaper than the rolls inside the produce loop."""
        e = jnp.zeros(blocks[0].shape[0], jnp.float32)
        for a, c in pairs:
            if a < c:
                e = e - jnp.sum(blocks[c] * (blocks[a] @ Jblk[(a, c)]), axis=1)
        return e

    # Stored energies: the block products for the checkerboard kernel on small lattices (checked
    # against `energy` of the stored lattices by the tests); the rolls otherwise (see `energies`).
    energies_stored = energies_blocks if (dense and algorithm == "checkerboard") else energies

    def sweep_checkerboard(t, blocks, key, thr, cid, track):
        """One sweep: every colour class in turn, all its sites at once.
        track: also return the energy change and the number of accepted flips per chain."""
        ctr = counters(cid)
        u0, u1 = threefry2x32(key[0], key[1], ctr, jnp.broadcast_to(t, ctr.shape))
        words = u0 if S == 1 else jnp.concatenate([u0, u1], axis=1)
        blocks = list(blocks)
        de = acc = 0
        for c in range(ncol):
            if dense:   # local field of class c as small dense products (exact sums of +-1, 1/2)
                h = None
                for a, c2 in pairs:
                    if c2 == c:
                        term = blocks[a] @ Jblk[(a, c)]
                        h = term if h is None else h + term
            else:       # large lattices: gather the neighbours (O(S) instead of O(S^2) work)
                h = jnp.sum(jnp.take(join(blocks), nbr_c[c], axis=1) * nbw_c[c][None], axis=-1)
            sh = blocks[c] * h
            ok = _accept(levels, sh, words[:, offs[c]:offs[c + 1]], thr)
            if track:
                de = de + jnp.sum(jnp.where(ok, 2.0 * sh, 0.0), axis=1)   # dE = 2 s h per accepted flip
                acc = acc + jnp.sum(ok, axis=1, dtype=jnp.int32)
            blocks[c] = jnp.where(ok, -blocks[c], blocks[c])
        return (tuple(blocks), de, acc) if track else tuple(blocks)

    def step_single(t, s, key, thr, cid):
        """One random-site Metropolis step in every chain (the reference's algorithm)."""
        u0, u1 = threefry2x32(key[0], key[1], cid, jnp.broadcast_to(t, cid.shape))
        # site choice u0 mod S: any state-independent choice law keeps the Boltzmann law stationary
        r = (u0 % jnp.uint32(S)).astype(jnp.int32)
        nb = jnp.take(nbr, r, axis=0)                                            # (B, k)
        h = jnp.sum(jnp.take_along_axis(s, nb, axis=1) * jnp.take(nbw, r, axis=0), axis=1)
        sr = jnp.take_along_axis(s, r[:, None], axis=1)[:, 0]
        sh = sr * h
        ok = _accept(levels, sh[:, None], u1[:, None], thr)[:, 0]
        s = jnp.where((pos_iota == r[:, None]) & ok[:, None], -s, s)
        return s, jnp.where(ok, 2.0 * sh, 0.0), ok.astype(jnp.int32)

    def sweep_single(t, blocks, key, thr, cid, track):
        """S random-site steps."""
        def body(k, c):
            s, de, acc = c
            s, d, a = step_single(t * jnp.uint32(S) + k, s, key, thr, cid)
            return s, de + d, acc + a
        z = jnp.zeros(cid.shape, jnp.float32)
        s, de, acc = jax.lax.fori_loop(jnp.uint32(0), jnp.uint32(S), body, (join(blocks), z, z.astype(jnp.int32)))
        return (split(s), de, acc) if track else split(s)

    sweep = sweep_checkerboard if algorithm == "checkerboard" else sweep_single

    def run_sweeps(t0, n, blocks, key, thr, cid):
        return jax.lax.fori_loop(jnp.uint32(0), n, lambda i, b: sweep(t0 + i, b, key, thr, cid, False), blocks)

    @functools.partial(jax.jit, out_shardings=tuple([sh2] * ncol))
    def init(key, cid):
        """Random +-1 start (infinite temperature)."""
        ctr = counters(cid)
        u0, u1 = threefry2x32(key[0], key[1], ctr, jnp.zeros_like(ctr))
        bits = jnp.concatenate([u0, u1], axis=1)[:, :S]
        return split(jnp.where((bits >> jnp.uint32(31)) == 1, 1.0, -1.0).astype(jnp.float32))

    @functools.partial(jax.jit, donate_argnums=(2,))
    def burn(t0, n, blocks, key, thr, cid):
        return run_sweeps(t0, n, blocks, key, thr, cid)

    @functools.partial(jax.jit, static_argnums=(1,), donate_argnums=(2,))
    def trace(t0, n, blocks, key, thr, cid):
        """n sweeps recording the energy after each (n, B) and the accepted flips per chain (B,)."""
        def body(c, i):
            b, e, acc = c
            b, de, a = sweep(t0 + i, b, key, thr, cid, True)
            return (b, e + de, acc + a), e + de
        init_c = (blocks, energies(blocks), jnp.zeros(cid.shape, jnp.int32))
        (blocks, _, acc), es = jax.lax.scan(body, init_c, jnp.arange(n, dtype=jnp.uint32))
        return blocks, es, acc

    @functools.partial(jax.jit, static_argnums=(1,), donate_argnums=(3,))
    def produce(t0, n, thin, blocks, key, thr, cid):
        """n stored samples thin sweeps apart: spins int8 (n, B, S) in flat site order x*n_y+y
        (the colour order undone on the device, faster than numpy), energies (n, B)."""
        def body(b, i):
            b = run_sweeps(t0 + i * thin, thin, b, key, thr, cid)
            spins = jnp.take(join(b).astype(jnp.int8), inverse, axis=1)    # int8: 4x less to move
            return b, (spins, energies_stored(b))
        return jax.lax.scan(body, blocks, jnp.arange(n, dtype=jnp.uint32))

    return geo, (sh1, sh2), init, burn, trace, produce, energies


class Sampler:
    """Metropolis sampler for a batch of chains at given betas (compiled kernels are cached).

    State: self.blocks, float32 spins (B, m_c) per colour class; concatenated they are in colour
    order (self.order maps colour-ordered position -> flat site x*n_y+y).  Batch index g has
    beta betas[g % n_betas] (beta fastest); indices >= n_real are padding for sharding and
    compilation reuse, and are discarded.  self.t counts sweeps since the start.
    """

    def __init__(self, n_x, n_y, model, betas, n_chains, seed, algorithm="checkerboard", devices=None,
                 zero_accept=None, scale=None):
        self.n_x, self.n_y, self.model, self.algorithm = n_x, n_y, model, algorithm
        devices = tuple(devices if devices is not None else jax.devices())
        (geo, (self.sh1, self.sh2), self._init, self._burn, self._trace, self._produce,
         self._energies) = _kernels(n_x, n_y, model, algorithm, devices, n_x * n_y <= DENSE_MAX_SITES)
        self.S, self.order, self.inverse, self.levels = geo.S, geo.order, geo.inverse, geo.levels
        self.betas = np.asarray(betas, np.float64).reshape(-1)
        self.n_betas = len(self.betas)
        self.n_real = self.n_betas * int(n_chains)
        self.B = B = _padded_batch(self.n_real, len(devices))
        if B * max(1, (self.S + 1) // 2) >= 2 ** 32:
            raise ValueError("too many chains for the 32-bit random-number counters; use fewer --n_chains")
        self.zero_accept = float(ZERO_ACCEPT[algorithm] if zero_accept is None else zero_accept)
        # one row of thresholds per beta, broadcast over the chains when there is one beta only
        # (a (1, k) operand compiles to scalar compares, ~20 % faster than per-chain rows)
        rows = self.betas if self.n_betas == 1 else self.betas[np.arange(B) % self.n_betas]
        c = acceptance_scale(rows, algorithm) if scale is None else scale
        thr = np.round(acceptance_table(rows, self.levels, self.zero_accept, c) * 2.0 ** 31).astype(np.uint32)
        self.thresholds = jax.device_put(thr, self.sh2 if len(rows) == B else
                                         NamedSharding(self.sh2.mesh, PartitionSpec()))
        self.chain_id = jax.device_put(np.arange(B, dtype=np.uint32), self.sh1)
        self.seed = int(seed)
        self.key_init = jnp.asarray(_stream_key(seed, 1), jnp.uint32)
        self.key_sweep = jnp.asarray(_stream_key(seed, 2), jnp.uint32)

    def _max_sweeps_check(self, n):
        per = self.S if self.algorithm == "single" else 1
        if (self.t + n) * per >= 2 ** 32:
            raise ValueError("run too long for the 32-bit sweep counter")

    def _args(self):
        return self.key_sweep, self.thresholds, self.chain_id

    def start(self):
        self.t = 0
        self.blocks = self._init(self.key_init, self.chain_id)

    def burn(self, n):
        """n sweeps, nothing recorded."""
        if n > 0:
            self._max_sweeps_check(n)
            self.blocks = self._burn(jnp.uint32(self.t), jnp.uint32(n), self.blocks, *self._args())
            self.t += int(n)

    def trace(self, n):
        """n sweeps; returns (energies after each sweep (n, B), accepted flips per chain (B,))."""
        self._max_sweeps_check(n)
        self.blocks, es, acc = self._trace(jnp.uint32(self.t), int(n), self.blocks, *self._args())
        self.t += int(n)
        return es, acc

    def produce(self, n, thin):
        """n stored samples `thin` sweeps apart; returns (spins int8 (n, B, S) flat site order,
        energies float32 (n, B)) as (asynchronous) device arrays."""
        self._max_sweeps_check(n * thin)
        self.blocks, out = self._produce(jnp.uint32(self.t), int(n), jnp.uint32(thin), self.blocks, *self._args())
        self.t += int(n) * int(thin)
        return out

    def energies(self):
        return np.asarray(self._energies(self.blocks))

    def to_grids(self, spins):
        """int8 (..., S) flat site order (as returned by produce) -> int8 (..., n_x, n_y)."""
        return spins.reshape(spins.shape[:-1] + (self.n_x, self.n_y))


# ------------------------------------------------------------------------- writing
def _versions():
    import h5py
    return json.dumps({"python": sys.version.split()[0], "jax": jax.__version__,
                       "jaxlib": getattr(jax.lib, "__version__", jax.__version__),
                       "numpy": np.__version__, "h5py": h5py.__version__})


def _write_block(dsets, start, grids, energies, betas):
    """Append one block to the resizable datasets (a separate function so tests can interrupt it)."""
    stop = start + len(grids)
    for name, arr in zip(("ising_grids", "true_energies", "beta"), (grids, energies, betas)):
        dsets[name].resize(stop, axis=0)
        dsets[name][start:stop] = arr
    return stop


def validate(model, n_x, n_y, betas, n_samples, n_chains=None, burn_in=None, thin=None,
             algorithm="checkerboard", filename=None, random_seed=0):
    """Raise ValueError with a message saying what to change for impossible settings."""
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
    if int(n_samples) <= 0:
        raise ValueError(f"--n_samples must be positive (got {n_samples})")
    if n_chains is not None and int(n_chains) <= 0:
        raise ValueError(f"--n_chains must be positive (got {n_chains})")
    if burn_in is not None and int(burn_in) < 0:
        raise ValueError(f"--burn_in must be >= 0 sweeps (got {burn_in})")
    if thin is not None and int(thin) <= 0:
        raise ValueError(f"--thin must be >= 1 sweep (got {thin})")
    if filename is not None:
        parent = Path(filename).resolve().parent
        if not parent.is_dir():
            raise ValueError(f"output folder {parent} does not exist: create it (mkdir -p {parent}) "
                             f"or choose another --filename")
        if Path(filename).is_dir():
            raise ValueError(f"--filename {filename} is a directory; give a file name")
    return betas


def generate(filename, *, model="ISING1", n_x=8, n_y=8, betas=(0.25,), n_samples=10000, n_chains=None,
             burn_in=None, thin=None, random_seed=11, algorithm="checkerboard", progress=True,
             command=None, block_bytes=1 << 25):
    """Sample n_samples lattices per beta and write them atomically to `filename` (HDF5).

    n_chains: chains per beta (default: about 4096 chains in total, at most n_samples).
    burn_in: sweeps discarded from a random start (default 1000).
    thin: sweeps between stored samples (default: ceil of the largest integrated
    autocorrelation time of the energy, measured per beta on the last 256 burn-in sweeps;
    the acceptance rate is measured there too; with burn_in = 0 both are NaN and thin is 1).
    Raises ValueError for impossible settings (see `validate`); writes nothing then, and on any
    failure or interruption removes its temporary file.  Returns the Path written.
    """
    import h5py
    from tqdm.auto import tqdm

    betas = validate(model, n_x, n_y, betas, n_samples, n_chains, burn_in, thin, algorithm, filename, random_seed)
    n_x, n_y, n_samples = int(n_x), int(n_y), int(n_samples)
    nb = len(betas)
    if n_chains is None:
        n_chains = max(1, min(n_samples, -(-DEFAULT_TOTAL_CHAINS // nb)))
    n_chains = int(n_chains)
    burn_in = DEFAULT_BURN_IN if burn_in is None else int(burn_in)
    path = Path(filename)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")

    sampler = Sampler(n_x, n_y, model, betas, n_chains, random_seed, algorithm)
    sampler.start()
    # Burn-in.  Its last n_tr sweeps (in equilibrium) record the energy after every sweep and the
    # accepted flips: tau_int and the acceptance rate per beta are measured there, so the
    # production loop needs no per-sweep bookkeeping.
    n_tr = min(TRACE_SWEEPS, burn_in)
    sampler.burn(burn_in - n_tr)
    tau = np.full(nb, np.nan)
    acc = np.full(nb, np.nan)
    if n_tr:
        es, na = sampler.trace(n_tr)
        es = np.asarray(es)[:, : sampler.n_real]                                  # (n_tr, R)
        acc = np.asarray(na)[: sampler.n_real].reshape(n_chains, nb).sum(0) / (float(n_chains) * n_tr * n_x * n_y)
        if n_tr >= 16:
            tau = np.array([integrated_autocorr_time(es[:, b::nb].T) for b in range(nb)])
    if thin is None:
        thin = max(1, math.ceil(float(np.nanmax(tau)) - 1e-9)) if np.any(np.isfinite(tau)) else 1
    thin = int(thin)

    R, B, S = sampler.n_real, sampler.B, sampler.S
    n_slices = -(-n_samples // n_chains)
    N = n_samples * nb
    # Blocks of stored time slices: a power of two (about block_bytes of spins), the remainder
    # split into smaller powers of two, so only a handful of block shapes is ever compiled.
    per_block = 1 << max(0, (block_bytes // max(1, B * S)).bit_length() - 1)
    schedule = [per_block] * (n_slices // per_block)
    rest = n_slices % per_block
    schedule += [1 << k for k in range(rest.bit_length() - 1, -1, -1) if rest >> k & 1]
    beta_row = np.tile(betas.astype(np.float32), n_chains)            # (R,)
    sum_e = np.zeros(nb)
    cnt = np.zeros(nb, np.int64)
    try:
        with h5py.File(tmp, "w") as f:
            chunk = max(1, min(N, (1 << 20) // S))
            dsets = {
                "ising_grids": f.create_dataset("ising_grids", (0, n_x, n_y), np.int8, maxshape=(N, n_x, n_y),
                                                chunks=(chunk, n_x, n_y)),
                "true_energies": f.create_dataset("true_energies", (0,), np.float32, maxshape=(N,),
                                                  chunks=(min(N, 1 << 16),)),
                "beta": f.create_dataset("beta", (0,), np.float32, maxshape=(N,), chunks=(min(N, 1 << 16),)),
            }
            bar = tqdm(total=N, unit="samples", unit_scale=True, disable=not progress,
                       desc=f"{model} {n_x}x{n_y} {nb} beta(s)")
            written = 0
            pending = sampler.produce(schedule[0], thin)
            for k, n_now in enumerate(schedule):
                spins, en = pending
                if k + 1 < len(schedule):   # queue the next block: the device works while the host writes
                    pending = sampler.produce(schedule[k + 1], thin)
                spins = np.asarray(spins)[:, :R].reshape(n_now * R, S)
                en = np.asarray(en)[:, :R].reshape(-1)
                bet = np.tile(beta_row, n_now)
                keep = min(len(en), N - written)
                spins, en, bet = spins[:keep], en[:keep], bet[:keep]
                idx = (np.arange(keep) % nb)
                sum_e += np.bincount(idx, weights=en, minlength=nb)
                cnt += np.bincount(idx, minlength=nb)
                written = _write_block(dsets, written, sampler.to_grids(spins), en, bet)
                bar.update(keep)
            bar.close()
            assert written == N
            f.create_dataset("avg_E", data=(sum_e / np.maximum(cnt, 1)).astype(np.float32))
            attrs = {"model": model, "n_x": n_x, "n_y": n_y, "betas": betas, "n_chains": n_chains,
                     "burn_in_sweeps": burn_in, "thin_sweeps": thin, "algorithm": algorithm,
                     "random_seed": int(random_seed), "acceptance_rate": acc, "tau_int_sweeps": tau,
                     "n_samples_per_beta": n_samples, "versions": _versions(),
                     "command": command if command is not None else shlex.join(sys.argv),
                     "sample_order": "index = (t * n_chains + chain) * n_betas + beta_index"}
            for k, v in attrs.items():
                f.attrs[k] = v
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


# ---------------------------------------------------------------------------------- CLI
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
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.n_beta_samples is not None:
            if args.beta_min is None or args.beta_max is None:
                raise ValueError("--n_beta_samples needs --beta_min and --beta_max")
            if args.n_beta_samples < 1:
                raise ValueError(f"--n_beta_samples must be >= 1 (got {args.n_beta_samples})")
            if args.beta_min > args.beta_max:
                raise ValueError(f"--beta_min {args.beta_min} > --beta_max {args.beta_max}: swap them")
            betas = np.linspace(args.beta_min, args.beta_max, args.n_beta_samples)
        else:
            if args.beta_min is not None or args.beta_max is not None:
                raise ValueError("--beta_min/--beta_max need --n_beta_samples")
            betas = np.array([args.beta])
        validate(args.model, args.n_x, args.n_y, betas, args.n_samples, args.n_chains, args.burn_in,
                 args.thin, args.algorithm, args.filename, args.random_seed)
    except ValueError as e:
        parser.error(str(e))
    cmd = shlex.join([Path(sys.argv[0]).name] + (list(argv) if argv is not None else sys.argv[1:]))
    path = generate(args.filename, model=args.model, n_x=args.n_x, n_y=args.n_y, betas=betas,
                    n_samples=args.n_samples, n_chains=args.n_chains, burn_in=args.burn_in, thin=args.thin,
                    random_seed=args.random_seed, algorithm=args.algorithm, progress=not args.no_progress,
                    command=cmd)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Exact Monte Carlo sweeps of 2D lattice models (periodic boundaries) in JAX: the kernels and the Sampler.

The physics is `ising.py`'s: ISING1 (nearest neighbours) and ISING2 (plus both diagonals at
J = 1/2), grid[x, y] with x the row, site index x*n_y + y. `generate_ising.py` drives a
`Sampler` (burn-in, thinning) and streams its samples to HDF5.

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
A table Hamiltonian (`ising.Table`: a learned energy function as window energies) is sampled
exactly by colour updates too: 3 x 3 windows (focus 1) by `WindowLattice`, strided sub-lattices and
three lookups per flip, as fast as the built-in kernel at 64 x 64 (benchmarks/bench_sampler.py
--tables); larger windows by `TableLattice` (any window, gathers; 25-30x slower).  The q-state
Potts model (`potts.Potts`) is sampled by heat-bath colour updates (`_sweep_heatbath`).  The
lattices' static tables (colours, couplings, strides) are `lattices.py`'s.
algorithm="single" is the reference's random-site single-spin-flip Metropolis (a sweep = S
steps), vectorised over chains: an independent check.

Random bits: Threefry-2x32-20 keyed by the seed, counter (global chain id, sweep), so a chain's
stream does not depend on how many chains run or how they are padded and sharded over the
devices JAX sees: a seed gives the same file on any machine.  (On CPU, one XLA host device per
core, XLA_FLAGS=--xla_force_host_platform_device_count=n, measured no faster than the default
single device, which already uses every core: benchmarks/bench_sampler.py.)
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import potts
from ising import energy
from lattices import (Lattice, POTTS_LATTICES, PottsLattice, PottsWindowLattice, TableLattice,  # noqa: F401 (API)
                      WindowLattice, lattice)

ALGORITHMS = ("checkerboard", "single")
DENSE_MAX_SITES = 1024   # dense products up to here (bench_sampler: 3-4x gathers at 8x8, even at 32x32,
                         # 1/4 at 64x64)
ZERO_ACCEPT = {"checkerboard": 0.9, "single": 1.0}   # acceptance factor at dE = 0 (acceptance_scale)
ZERO_DE = 1e-6           # a table's |dE| below this counts as dE = 0 (exact for integer tables)


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


# --------------------------------------------------------------------------- the kernels
class Chains(NamedTuple):
    """The kernels' inputs besides the spins: key uint32 (2,) of the sweeps' random stream,
    thr uint32 (B or 1, n_levels + 1) = round(2^31 acceptance_table) (a table Hamiltonian: float32
    (B or 1, 2), beta and c(beta)), chain ids cid uint32 (B,)."""
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


def _patterns(lat, s):
    """Window patterns int32 (B, n_tiles) of the spins s (B, S) in colour order."""
    bits = (s > 0).astype(jnp.int32)
    return jnp.sum(jnp.take(bits, lat.tile_pos, axis=1) << jnp.arange(lat.tile_pos.shape[1], dtype=jnp.int32), axis=-1)


def _sweep_table(lat, t, blocks, e, ch):
    """Sweep t of a table Hamiltonian: each colour in turn, all its sites at once.  A flip of site i
    changes E by dE = sum over its tiles of table[p ^ mask] - table[p]; it is accepted with
    probability c(beta) min(1, exp(-beta dE)), x 0.9 at dE = 0 (as `acceptance_scale`), from 24 random
    bits; the tiles' patterns follow the flips.  ch.thr float32 (B or 1, 2): beta and c(beta) per chain.
    Returns like `_sweep_checkerboard`; the energy is the sum of the table over the final patterns."""
    words, table = _words(lat, ch.key, ch.cid, t), jnp.asarray(lat.table.values, jnp.float32)
    blocks, acc = list(blocks), 0
    pattern = _patterns(lat, jnp.concatenate(blocks, axis=1))
    for c in range(lat.n_colours):
        p = jnp.take(pattern, lat.site_tiles[c], axis=1)                          # (B, m_c, K)
        de = jnp.sum(table[p ^ lat.site_masks[c]] - table[p], axis=-1)
        ok = _table_accept(de, lat.block(words, c), ch)
        acc = acc + jnp.sum(ok, axis=1, dtype=jnp.int32)
        blocks[c] = jnp.where(ok, -blocks[c], blocks[c])
        flipped = jnp.concatenate([ok, jnp.zeros_like(ok[:, :1])], axis=1)        # column m_c: no such site
        pattern = pattern ^ jnp.where(jnp.take(flipped, lat.tile_site[c], axis=1), lat.tile_mask[c], 0)
    return tuple(blocks), jnp.sum(table[pattern], axis=1), acc


def _table_accept(de, bits, ch):
    """The table kernels' Metropolis test: probability c(beta) min(1, exp(-beta dE)), x 0.9 at dE = 0
    (as `acceptance_scale`), from 24 of the random bits; ch.thr float32 (B or 1, 2): beta, c(beta)."""
    beta, scale = ch.thr[:, 0:1], ch.thr[:, 1:2]
    a = scale * jnp.minimum(1.0, jnp.exp(-beta * de)) * jnp.where(jnp.abs(de) < ZERO_DE, ZERO_ACCEPT["checkerboard"], 1.0)
    return (bits >> jnp.uint32(8)).astype(jnp.float32) * jnp.float32(2.0 ** -24) < a


def _sweep_window(lat, t, blocks, e, ch):
    """Sweep t of a `WindowLattice`: each colour in turn, dE from the three band lookups.  Returns
    (blocks, e unchanged, accepted flips (B,)): `_window_energy` gives the energy where it is stored."""
    words, bands = _words(lat, ch.key, ch.cid, t), jnp.asarray(lat.bands)
    blocks, acc, B = list(blocks), 0, blocks[0].shape[0]
    for c in range(lat.n_colours):
        code = []
        for row in lat.rows:                                   # 5 rows of 4 or 5 bits
            code.append(sum((lat.grid(blocks, c, dx, dy) > 0).astype(jnp.int32) << k for k, (dx, dy) in enumerate(row)))
        g = sum(bands[u][code[u] | code[u + 1] << len(lat.rows[u]) | code[u + 2] << (len(lat.rows[u]) + len(lat.rows[u + 1]))]
                for u in range(3))
        s = blocks[c]
        ok = _table_accept(s * g.reshape(B, -1), lat.block(words, c), ch)
        acc = acc + jnp.sum(ok, axis=1, dtype=jnp.int32)
        blocks[c] = jnp.where(ok, -s, s)
    return tuple(blocks), e, acc


def _window_energy(lat, blocks):
    """Energies float32 (B,) of a `WindowLattice` (or `PottsWindowLattice`) state: the table summed over
    every site's window (pattern bits of the spins, or base-q digits of the states)."""
    table, e = jnp.asarray(lat.table.values, jnp.float32), 0.0
    potts_table = isinstance(lat, PottsWindowLattice)
    for c in range(lat.n_colours):
        p = 0
        for wx in (-1, 0, 1):
            for wy in (-1, 0, 1):
                g, k = lat.grid(blocks, c, wx, wy), (wx + 1) * 3 + wy + 1
                p = p + (g.astype(jnp.int32) * lat.q ** k if potts_table else (g > 0).astype(jnp.int32) << k)
        e = e + jnp.sum(table[p], axis=(1, 2))
    return e


def _sweep_potts_window(lat, t, blocks, e, ch):
    """Sweep t of a `PottsWindowLattice`: each colour in turn, every site of it redrawn at once by heat bath
    from p(s_i = k | rest) ∝ exp(-beta G_k), G_k = the sum over the 9 windows holding i of the table entry
    with s_i = k (the rest of E does not depend on s_i); exact, as `_sweep_heatbath`.  ch.thr float32
    (B or 1, 1): beta.  Returns (blocks, e unchanged, sites whose state changed (B,)): `_window_energy`
    gives the energy where it is stored."""
    words, beta, q = _words(lat, ch.key, ch.cid, t), ch.thr, lat.q
    table, blocks, acc = jnp.asarray(lat.table.values, jnp.float32), list(blocks), 0
    for c in range(lat.n_colours):
        at = functools.lru_cache(maxsize=None)(lambda dx, dy: lat.grid(blocks, c, dx, dy).astype(jnp.int32))
        g = [0.0] * q
        for u in (-1, 0, 1):                           # the window centred on i + (u, v) holds i at (-u, -v)
            for v in (-1, 0, 1):
                base = sum(at(u + wx, v + wy) * q ** ((wx + 1) * 3 + wy + 1)
                           for wx in (-1, 0, 1) for wy in (-1, 0, 1) if (u + wx, v + wy) != (0, 0))
                step = q ** ((1 - u) * 3 + 1 - v)
                g = [g[k] + table[base + k * step] for k in range(q)]
        g = [x.reshape(blocks[c].shape) for x in g]
        low = functools.reduce(jnp.minimum, g)
        partial = [jnp.exp(-beta * (g[0] - low))]
        for k in range(1, q):
            partial.append(partial[-1] + jnp.exp(-beta * (g[k] - low)))
        r = (lat.block(words, c) >> jnp.uint32(8)).astype(jnp.float32) * jnp.float32(2.0 ** -24) * partial[-1]
        new = functools.reduce(jnp.add, [(r >= w).astype(jnp.float32) for w in partial[:-1]])
        acc = acc + jnp.sum(new != blocks[c], axis=1, dtype=jnp.int32)
        blocks[c] = new
    return tuple(blocks), e, acc


def _counts(lat, s_a, a, c):
    """Neighbour counts on block c of the states s_a (B, m_a) of block a, one float32 (B, m_c) per state:
    each state's indicator through the dense couplings, or the neighbours gathered once and compared."""
    if lat.dense:
        return [(s_a == k).astype(jnp.float32) @ lat.couplings[a, c] for k in range(lat.q)]
    idx, w = lat.couplings[a, c]
    nbr = jnp.take(s_a, idx, axis=1)                                           # (B, m_c, k_ac)
    return [jnp.sum((nbr == k) * w, axis=-1) for k in range(lat.q)]


def _sweep_heatbath(lat, t, blocks, e, ch):
    """Sweep t of a `PottsLattice`: each colour in turn, every site of it redrawn at once from its
    conditional law p(s_i = k | rest) = w_k / sum_l w_l, w_k = exp(beta (n_k - 4)) (heat bath: exact,
    and ergodic at every beta, so no acceptance factor is needed), n_k <= 4 the neighbours in state k;
    the new state is the number of partial sums w_0 + ... + w_k (k < q - 1) at or below u sum_l w_l,
    u from 24 random bits.  Unrolled over the q states (no cumulative sums or one-hot axes: measured
    ~4x faster on CPU).  ch.thr float32 (B or 1, 1): beta.  Returns (blocks, energies (B,), sites whose
    state changed (B,)); the energy -sum_c sum_i n_{s_i}(colours a < c) counts every bond once, as in
    `_sweep_checkerboard`."""
    words, beta = _words(lat, ch.key, ch.cid, t), ch.thr
    blocks, e_after, acc = list(blocks), 0.0, 0
    for c in range(lat.n_colours):
        counts = {}                                    # colour a -> [neighbours of colour a in state k]
        if lat.strided:                                # the four neighbours' blocks, rolled
            for dx, dy in ((0, 1), (0, -1), (1, 0), (-1, 0)):
                a = ((c // 2 + dx) % 2) * 2 + (c % 2 + dy) % 2
                g = lat.grid(blocks, c, dx, dy).reshape(blocks[c].shape)
                one = [(g == k).astype(jnp.float32) for k in range(lat.q)]
                counts[a] = [x + y for x, y in zip(counts[a], one)] if a in counts else one
        else:
            counts = {a: _counts(lat, blocks[a], a, c) for a, c2 in lat.couplings if c2 == c}
        n = [functools.reduce(jnp.add, [v[k] for v in counts.values()]) for k in range(lat.q)]
        partial = [jnp.exp(beta * (n[0] - 4.0))]
        for k in range(1, lat.q):
            partial.append(partial[-1] + jnp.exp(beta * (n[k] - 4.0)))
        u = (lat.block(words, c) >> jnp.uint32(8)).astype(jnp.float32) * jnp.float32(2.0 ** -24) * partial[-1]
        new = functools.reduce(jnp.add, [(u >= w).astype(jnp.float32) for w in partial[:-1]])
        acc = acc + jnp.sum(new != blocks[c], axis=1, dtype=jnp.int32)
        blocks[c] = new
        lower = [counts[a] for a in counts if a < c]
        if lower:
            same = sum(jnp.where(new == k, functools.reduce(jnp.add, [v[k] for v in lower]), 0.0) for k in range(lat.q))
            e_after = e_after - jnp.sum(same, axis=1)
    return tuple(blocks), e_after, acc


_SWEEPS = {"checkerboard": _sweep_checkerboard, "single": _sweep_single}


def _sweep(lat, algorithm):
    """The sweep kernel of a lattice: the table's for a table Hamiltonian, else the algorithm's."""
    if isinstance(lat, PottsLattice):
        return _sweep_heatbath
    if isinstance(lat, PottsWindowLattice):
        return _sweep_potts_window
    if isinstance(lat, WindowLattice):
        return _sweep_window
    return _sweep_table if isinstance(lat, TableLattice) else _SWEEPS[algorithm]


def _sweeps(lat, algorithm, t0, n, blocks, ch):
    """n sweeps from sweep t0; returns the blocks."""
    return jax.lax.fori_loop(jnp.uint32(0), n, lambda i, b: _sweep(lat, algorithm)(lat, t0 + i, b, 0.0, ch)[0], blocks)


def _energies(lat, blocks):
    """Energies float32 (B,) of the state from `ising.energy` (or the table): the start of `_trace`/`_produce`."""
    if isinstance(lat, WindowLattice):
        return _window_energy(lat, blocks)
    if isinstance(lat, TableLattice):
        return jnp.sum(jnp.asarray(lat.table.values, jnp.float32)[_patterns(lat, jnp.concatenate(blocks, axis=1))], axis=1)
    grids = jnp.take(jnp.concatenate(blocks, axis=1), lat.inverse, axis=1).reshape(-1, lat.n_x, lat.n_y)
    return potts.energy(grids) if isinstance(lat, PottsLattice) else energy(grids, lat.hamiltonian)


@functools.partial(jax.jit, static_argnames=("lat",))
def _init(lat, key, cid):
    """Random +-1 start (Potts: states 0..q-1; infinite temperature): float32 blocks (B, m_c)."""
    bits = _words(lat, key, cid, jnp.uint32(0))[:, :lat.S]
    if isinstance(lat, POTTS_LATTICES):
        return lat.split((bits % jnp.uint32(lat.q)).astype(jnp.float32))
    return lat.split(jnp.where((bits >> jnp.uint32(31)) == 1, 1.0, -1.0).astype(jnp.float32))


_burn = jax.jit(_sweeps, static_argnames=("lat", "algorithm"), donate_argnames=("blocks",))


@functools.partial(jax.jit, static_argnames=("lat", "algorithm", "n"), donate_argnames=("blocks",))
def _trace(lat, algorithm, t0, n, blocks, ch):
    """n sweeps: (blocks, energy after each sweep (n, B), accepted flips per chain (B,))."""
    def body(state, i):
        b, e, acc = _sweep(lat, algorithm)(lat, t0 + i, state[0], state[1], ch)
        e = _window_energy(lat, b) if isinstance(lat, WindowLattice) else e
        return (b, e, state[2] + acc), e
    start = (blocks, _energies(lat, blocks), jnp.zeros(ch.cid.shape, jnp.int32))
    (blocks, _, acc), es = jax.lax.scan(body, start, jnp.arange(n, dtype=jnp.uint32))
    return blocks, es, acc


@functools.partial(jax.jit, static_argnames=("lat", "algorithm", "n"), donate_argnames=("blocks",))
def _produce(lat, algorithm, t0, n, thin, blocks, ch):
    """n stored samples `thin` sweeps apart: (blocks, (spins int8 (n, B, S) in flat site order,
    energies float32 (n, B))); int8 moves 4x less, and undoing the colour order here beats numpy."""
    def sweep(k, state):
        return _sweep(lat, algorithm)(lat, k, state[0], state[1], ch)[:2]

    def body(state, i):
        b, e = jax.lax.fori_loop(t0 + i * thin, t0 + (i + 1) * thin, sweep, state)
        e = _window_energy(lat, b) if isinstance(lat, WindowLattice) else e
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

    def __init__(self, n_x, n_y, hamiltonian, betas, n_chains, seed, algorithm="checkerboard", dense=None):
        self.n_x, self.n_y, self.S, self.algorithm = n_x, n_y, n_x * n_y, algorithm
        self.lat = lattice(n_x, n_y, hamiltonian, self.S <= DENSE_MAX_SITES if dense is None else bool(dense))
        self.betas = np.asarray(betas, np.float64).reshape(-1)
        self.n_real = len(self.betas) * int(n_chains)
        mesh = Mesh(np.array(jax.devices()), ("chains",))
        self.B = B = _padded_batch(self.n_real, mesh.size)
        if B * ((self.S + 1) // 2) >= 2 ** 32:
            raise ValueError("too many chains for the 32-bit random-number counters; use fewer --n_chains")
        # one row of thresholds for a single beta, broadcast over the chains: a (1, k) operand
        # compiles to scalar compares, ~20 % faster than a row per chain
        rows = self.betas if len(self.betas) == 1 else self.betas[np.arange(B) % len(self.betas)]
        if isinstance(self.lat, POTTS_LATTICES):                   # heat bath: beta alone
            if algorithm != "checkerboard":
                raise ValueError("the Potts model is sampled by heat-bath colour updates (--algorithm checkerboard)")
            thr = rows.reshape(-1, 1).astype(np.float32)
        elif isinstance(self.lat, (TableLattice, WindowLattice)):   # continuous energy changes: beta and c(beta) themselves
            if algorithm != "checkerboard":
                raise ValueError("a table Hamiltonian is sampled by colour updates (--algorithm checkerboard)")
            thr = np.stack([rows, acceptance_scale(rows, algorithm)], axis=1).astype(np.float32)
        else:
            thr = acceptance_table(rows, self.lat.levels, ZERO_ACCEPT[algorithm], acceptance_scale(rows, algorithm))
            thr = np.round(thr * 2.0 ** 31).astype(np.uint32)
        by_chain = NamedSharding(mesh, PartitionSpec("chains"))
        self.chains = Chains(_stream_key(seed, 2),
                             jax.device_put(thr,
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

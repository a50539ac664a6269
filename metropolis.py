"""The exact moves of the sampler, in JAX: random bits, the Metropolis acceptance, the sweep kernels.

A kernel is a function (lat, t, blocks, e, ch) -> (blocks, energies (B,), accepted flips (B,)):
sweep t of every chain at once, on the spins in colour order (one float32 block (chains, sites) per
colour, `lattices.py`). Sites of one colour do not interact, so a whole block is updated at once.
Each lattice class of `lattices.py` names its kernel; nothing here asks what a lattice is.
- `_sweep_checkerboard` (ISING1/ISING2): the local field of a block is the sum over the other
  blocks a of s_a J_ac (dense products or gathers, exact in float32); a flip changes the energy by
  dE = 2 s_i h_i and is accepted when 31 random bits are below round(2^31 a(dE)), precomputed per
  beta: a(dE) = c(beta) min(1, exp(-beta dE)), x 0.9 at dE = 0, exact detailed balance and ergodic
  (`acceptance_scale`). The sweep also returns the energy it leaves, from the fields it computes
  anyway (the tests compare stored energies with `ising.energy`).
- `_sweep_single`: the reference's random-site single-spin-flip Metropolis (a sweep = S steps),
  vectorised over chains: an independent check.
- `_sweep_table`, `_sweep_window`: a table Hamiltonian (a learned energy as window energies), the
  same acceptance with dE from the table: any window by gathers, 3 x 3 windows by three lookups.
- `_sweep_heatbath`, `_sweep_potts_window`: Potts and Potts tables, heat-bath colour updates
  (`_heat_bath`, the one draw).

Random bits: Threefry-2x32-20 keyed by the seed, counter (global chain id, sweep), so a chain's
stream does not depend on how many chains run or how they are padded and sharded over the
devices JAX sees: a seed gives the same file on any machine.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

import jax
import jax.numpy as jnp

ALGORITHMS = ("checkerboard", "single", "cluster")   # cluster: Swendsen-Wang (`cluster.py`), where a lattice names it
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
        ok = lat.accept(blocks[c] * functools.reduce(jnp.add, fields.values()), lat.block(words, c), ch)
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
        ok = lat.accept(sh[:, None], u1[:, None], ch)[:, 0]
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
    for c in range(lat.n_colours):
        p = 0
        for wx in (-1, 0, 1):
            for wy in (-1, 0, 1):
                p = p + lat.digit(lat.grid(blocks, c, wx, wy), (wx + 1) * 3 + wy + 1)
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
        new = _heat_bath([jnp.exp(-beta * (g[k] - low)) for k in range(q)], lat.block(words, c))
        acc = acc + jnp.sum(new != blocks[c], axis=1, dtype=jnp.int32)
        blocks[c] = new
    return tuple(blocks), e, acc


def _heat_bath(weights, bits):
    """The heat-bath draw: new states float32 (B, m), state k with probability weights[k] / sum_l
    weights[l] (weights: q arrays (B, m), positive), from 24 of the random bits uint32 (B, m): the
    number of partial sums w_0 + ... + w_k (k < q - 1) at or below u sum_l w_l.  Unrolled over the
    states (no cumulative sums or one-hot axes; see benchmarks/README.md)."""
    partial = [weights[0]]
    for w in weights[1:]:
        partial.append(partial[-1] + w)
    u = (bits >> jnp.uint32(8)).astype(jnp.float32) * jnp.float32(2.0 ** -24) * partial[-1]
    return functools.reduce(jnp.add, [(u >= w).astype(jnp.float32) for w in partial[:-1]])


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
        new = _heat_bath([jnp.exp(beta * (n[k] - 4.0)) for k in range(lat.q)], lat.block(words, c))
        acc = acc + jnp.sum(new != blocks[c], axis=1, dtype=jnp.int32)
        blocks[c] = new
        lower = [counts[a] for a in counts if a < c]
        if lower:
            same = sum(jnp.where(new == k, functools.reduce(jnp.add, [v[k] for v in lower]), 0.0) for k in range(lat.q))
            e_after = e_after - jnp.sum(same, axis=1)
    return tuple(blocks), e_after, acc




_SWEEPS = {"checkerboard": _sweep_checkerboard, "single": _sweep_single}   # a pair lattice's, by --algorithm

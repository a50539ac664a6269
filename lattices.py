"""The static tables of a lattice, one class per kind of Hamiltonian: what the compiled sweeps of
`metropolis.py` read (the static argument of its jitted kernels, made once per lattice by `lattice`).

Every class orders the sites by colour, so that one colour is one contiguous block of the spins
(chains, sites): positions offsets[c]:offsets[c+1] hold colour c, order maps position -> flat site
(x * n_y + y), inverse flat site -> position. Sites of one colour never interact, so a kernel updates
a whole block at once.
- `Lattice`: ISING1 / ISING2 (`ising.colouring`; fields by dense products or gathers).
- `TableLattice`: a table Hamiltonian (`ising.Table`, any window): colours of sites that share no window.
- `WindowLattice`: its fast path for 3 x 3 windows: strided sub-lattices read by rolls.
- `PottsLattice`: the q-state Potts model (`potts.Potts`): strided sub-lattices on even sides too.
- `PottsWindowLattice`: a Potts table Hamiltonian (`potts.PottsTable`), on `WindowLattice`'s colours.
"""
from __future__ import annotations

import functools

import numpy as np

import jax.numpy as jnp

import potts
from ising import Table, colouring, neighbours, window_offsets


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

    def __init__(self, n_x, n_y, hamiltonian, dense):
        self.n_x, self.n_y, self.hamiltonian, self.dense, self.S = n_x, n_y, hamiltonian, dense, n_x * n_y
        col = colouring(n_x, n_y, hamiltonian)
        self.order = np.argsort(col, kind="stable")
        self.inverse = np.argsort(self.order)
        self.offsets = np.concatenate([[0], np.cumsum(np.bincount(col))])
        self.n_colours = len(self.offsets) - 1
        nb = neighbours(n_x, n_y, hamiltonian)
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


class TableLattice:
    """Static tables of a table Hamiltonian (`ising.Table`: E = sum over tiles of table[window
    pattern]) on one lattice, in colour order, with the interface of `Lattice`.

    Sites of one colour never share a window, so their flips do not interact and a whole colour is
    updated at once: (x mod w, y mod w) when the window side w divides both sizes (focus 1), else a
    greedy colouring of the "shares a window" graph (any size, odd ones included). tile_pos int32
    (n_tiles, w*w): each tile's window as positions (a site twice where a window wraps onto itself).
    Per colour c: site_tiles / site_masks int32 (m_c, K), the tiles holding each site and the bits it
    sets in their patterns (padding: mask 0); tile_site / tile_mask int32 (n_tiles,), the one site of
    colour c in each tile (m_c where there is none) and its bits.
    """

    levels = None

    def __init__(self, n_x, n_y, table):
        f, c, w = table.focus, table.context, table.focus + 2 * table.context
        if n_x % f or n_y % f:
            raise ValueError(f"a {n_x} x {n_y} lattice is not tiled by the table's focus {f}")
        self.n_x, self.n_y, self.S, self.table = n_x, n_y, n_x * n_y, table
        offs = window_offsets(f, c)
        corners = [(f * i, f * j) for i in range(n_x // f) for j in range(n_y // f)]
        sites = np.array([[((x + dx) % n_x) * n_y + (y + dy) % n_y for dx, dy in offs] for x, y in corners])
        member = [dict() for _ in range(self.S)]                   # site -> {tile: mask}
        for t, row in enumerate(sites):
            for k, i in enumerate(row):
                member[i][t] = member[i].get(t, 0) | (1 << k)
        x, y = np.divmod(np.arange(self.S), n_y)
        col = (x % w) * w + y % w if f == 1 and n_x % w == 0 and n_y % w == 0 else -np.ones(self.S, int)
        if col[0] < 0:                                             # greedy: the first colour no tile-mate has
            for i in range(self.S):
                used = {col[j] for t in member[i] for j in sites[t] if col[j] >= 0 and j != i}
                col[i] = min(k for k in range(len(used) + 1) if k not in used)
        if any(len({col[j] for j in set(row)}) != len(set(row)) for row in sites):
            raise AssertionError("table colouring: two sites of one colour share a window")
        self.order = np.argsort(col, kind="stable")
        self.inverse = np.argsort(self.order)
        self.offsets = np.concatenate([[0], np.cumsum(np.bincount(col))])
        self.n_colours = len(self.offsets) - 1
        self.tile_pos = self.inverse[sites].astype(np.int32)
        self.site_tiles, self.site_masks, self.tile_site, self.tile_mask = [], [], [], []
        for colour in range(self.n_colours):
            block = self.order[self.offsets[colour]:self.offsets[colour + 1]]
            k = max(len(member[i]) for i in block)
            self.site_tiles.append(np.array([list(member[i]) + [0] * (k - len(member[i])) for i in block], np.int32))
            self.site_masks.append(np.array([list(member[i].values()) + [0] * (k - len(member[i])) for i in block],
                                            np.int32))
            where, mask = np.full(len(sites), len(block), np.int32), np.zeros(len(sites), np.int32)
            for b, i in enumerate(block):
                for t, m in member[i].items():
                    where[t], mask[t] = b, m
            self.tile_site.append(where)
            self.tile_mask.append(mask)

    block = Lattice.block
    split = Lattice.split


def _smallest_divisor(n, least=3):
    return next(p for p in range(least, n + 1) if n % p == 0)


class WindowLattice:
    """A focus-1, context-1 table Hamiltonian (3 x 3 windows, one per site) on a lattice of sides >= 3:
    the fast path of `TableLattice`, without gathers but for the table lookups.

    Colour (a, b) holds the sites x = a mod p_x, y = b mod p_y, with p the smallest divisor >= 3 of
    each side (4 on 64 x 64: 16 colours); two such sites are >= 3 apart along one axis and never
    share a window, so a colour is updated at once.  Its block (B, m_x * m_y), m = n / p, is the
    strided sub-lattice, row-major: the spin at offset (dx, dy) of every site of the colour is a
    roll of another colour's block, no index arrays.  A flip of site i changes E by dE = s_i G,
    G the sum over the 9 windows holding i of table[p with s_i = -1] - table[p with s_i = +1]
    (a table entry is the window's energy, so flipping s_i from -1 back reverses the sign).  The
    windows centred on row x_i + u (u = -1, 0, 1) cover rows u-1 ... u+1 and columns -2 ... 2 of
    i's neighbourhood: 14 spins besides s_i, so G = sum_u bands[u][14-bit code of the band]:
    three lookups in float32 tables of 2^14 entries (192 kB), computed once from the table.
    """

    levels = None

    def __init__(self, n_x, n_y, table):
        self.n_x, self.n_y, self.S, self.table = n_x, n_y, n_x * n_y, table
        self.p = (_smallest_divisor(n_x), _smallest_divisor(n_y))
        self.m = (n_x // self.p[0], n_y // self.p[1])
        x, y = np.divmod(np.arange(self.S), n_y)
        col = (x % self.p[0]) * self.p[1] + y % self.p[1]
        self.order = np.argsort(col, kind="stable")             # within a colour: row-major (i, j)
        self.inverse = np.argsort(self.order)
        self.offsets = np.arange(self.p[0] * self.p[1] + 1) * (self.m[0] * self.m[1])
        self.n_colours = self.p[0] * self.p[1]
        self.rows = [[(dx, dy) for dy in range(-2, 3) if (dx, dy) != (0, 0)] for dx in range(-2, 3)]
        self.bands = self._bands(table.array)

    def _bands(self, values):
        """float32 (3, 2^14): G per band u = -1, 0, 1 of the 14-bit code (rows u-1 ... u+1, bits in the
        order of self.rows), the change of the band's windows' energies when s_i goes from +1 to -1."""
        code = np.arange(1 << 14)
        out = np.zeros((3, 1 << 14))
        for b, u in enumerate((-1, 0, 1)):
            spin, k = {(0, 0): np.ones_like(code)}, 0
            for dx in (u - 1, u, u + 1):
                for off in self.rows[dx + 2]:
                    spin[off], k = (code >> k) & 1, k + 1
            for v in (-1, 0, 1):                               # the window centred on (u, v)
                p = sum(spin[u + wx, v + wy] << ((wx + 1) * 3 + wy + 1) for wx in (-1, 0, 1) for wy in (-1, 0, 1))
                out[b] += values[p ^ (1 << ((1 - u) * 3 + 1 - v))] - values[p]
        return out.astype(np.float32)

    def grid(self, blocks, colour, dx=0, dy=0):
        """The spins at offset (dx, dy) of colour `colour`'s sites, float32 (B, m_x, m_y)."""
        a, b = divmod(colour, self.p[1])
        (qx, ax), (qy, by) = divmod(a + dx, self.p[0]), divmod(b + dy, self.p[1])
        g = blocks[ax * self.p[1] + by].reshape(-1, *self.m)
        return jnp.roll(g, (-qx, -qy), axis=(1, 2)) if qx or qy else g

    block = Lattice.block
    split = Lattice.split


class PottsLattice(Lattice):
    """The q-state Potts model (`potts.Potts`); blocks hold the states 0..q-1 as float32.  Even sides:
    four colours (x mod 2, y mod 2), each block the strided sub-lattice, row-major, so a neighbour
    block is a roll of another colour's (`WindowLattice.grid` with p = 2; no gathers).  Odd sides:
    `Lattice`'s nearest-neighbour colouring and coupling tables (dense products or gathers)."""

    def __init__(self, n_x, n_y, spec, dense):
        self.strided = n_x % 2 == 0 and n_y % 2 == 0
        if self.strided:                                  # no coupling tables to build
            self.n_x, self.n_y, self.S, self.dense, self.couplings = n_x, n_y, n_x * n_y, dense, None
            self.p, self.m = (2, 2), (n_x // 2, n_y // 2)
            x, y = np.divmod(np.arange(self.S), n_y)
            self.order = np.argsort((x % 2) * 2 + y % 2, kind="stable")
            self.inverse = np.argsort(self.order)
            self.offsets, self.n_colours = np.arange(5) * (self.S // 4), 4
        else:
            super().__init__(n_x, n_y, "ISING1", dense)
        self.hamiltonian, self.q, self.levels = spec, spec.q, None

    grid = WindowLattice.grid


class PottsWindowLattice(WindowLattice):
    """A Potts table Hamiltonian (`potts.PottsTable`: q^9 energies of 3 x 3 windows) on sides >= 3:
    `WindowLattice`'s strided colours (no two sites of a colour share a window); no band tables, a
    site's q candidate energies are looked up in the 9 windows that hold it."""

    def __init__(self, n_x, n_y, table):
        if min(n_x, n_y) < 3:
            raise ValueError(f"a Potts table Hamiltonian needs sides >= 3 (got {n_x} x {n_y})")
        super().__init__(n_x, n_y, table)
        self.q = table.q

    def _bands(self, values):
        return None


POTTS_LATTICES = (PottsLattice, PottsWindowLattice)     # blocks hold states 0..q-1


@functools.lru_cache(maxsize=32)
def lattice(n_x, n_y, hamiltonian, dense):
    """The static tables of a built-in Hamiltonian (a name), an `ising.Table` or a `potts.Potts`."""
    if isinstance(hamiltonian, potts.Potts):
        return PottsLattice(n_x, n_y, hamiltonian, dense)
    if isinstance(hamiltonian, potts.PottsTable):
        return PottsWindowLattice(n_x, n_y, hamiltonian)
    if isinstance(hamiltonian, Table):
        fast = hamiltonian.focus == 1 and hamiltonian.context == 1 and min(n_x, n_y) >= 3
        return (WindowLattice if fast else TableLattice)(n_x, n_y, hamiltonian)
    return Lattice(n_x, n_y, hamiltonian, dense)

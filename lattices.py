"""The sampler's lattices: the static tables of a Hamiltonian on one lattice size, and the moves that run it.

One class per `lattice_kind` of a Hamiltonian (`hamiltonians.py`); `lattice(H, n_x, n_y, dense)`
makes one object per (Hamiltonian, size), the static argument of the jitted programs of `sampler.py`
(they compile once per lattice). Every class orders the sites by colour, so that one colour is one
contiguous block of the spins (chains, sites): positions offsets[c]:offsets[c+1] hold colour c, order
maps position -> flat site (x * n_y + y), inverse flat site -> position. Sites of one colour never
interact, so a kernel updates a whole block at once. Each lattice carries what the sampler needs:
- `sweep(algorithm)`: its kernel (`metropolis.py`; "cluster": `cluster.py`); `check_algorithm`
  refuses the others, `cluster_refusal` saying why a lattice has no cluster update;
- `energies(blocks)`: E of a state; `stored_energy(blocks, e)`: the energy after a sweep;
- `start(bits)`: the random (infinite-temperature) start; `ordered(blocks)`: a ground state;
- `thresholds(betas, algorithm)`: the kernel's per-beta acceptance operand; `algorithm_name`;
- `n_instances`, `laid_out(chains_per_instance)`: how many Hamiltonians one program samples (1 but
  for `BondLattice`'s disorder averages) and the lattice for the sampler's chains per instance.
Classes: `PairLattice` (ISING1/ISING2, any size), `BondLattice` (a coupling per bond: the spin
glass, one instance or many), `TableLattice` / `WindowLattice` (a table
Hamiltonian: any window by gathers / 3 x 3 windows on strided sub-lattices), `PottsLattice` (Potts),
`PottsWindowLattice` (a Potts table). --algorithm cluster: Swendsen-Wang on the ferromagnetic pair
Hamiltonians, self-learning Monte Carlo on the tables (Ising and Potts).
"""
from __future__ import annotations

import copy
import functools

import numpy as np

import jax.numpy as jnp

import cluster
import ising
import potts
import spin_glass
from ising import colouring, neighbours, window_offsets
from metropolis import (ZERO_ACCEPT, _SWEEPS, _accept, _patterns, _sweep_heatbath, _sweep_potts_window, _sweep_table,
                        _sweep_window, _table_accept, _window_energy, acceptance_scale, acceptance_table)


def _padded(rows):
    """rows: per site a list of (index, J) -> (index int32 (n, k), J float32 (n, k)), zero padded."""
    k = max(len(r) for r in rows)
    return (np.array([[q for q, _ in r] + [0] * (k - len(r)) for r in rows], np.int32),
            np.array([[w for _, w in r] + [0.0] * (k - len(r)) for r in rows], np.float32))


class Blocks:
    """What every lattice shares: the spins (B, S) in colour order as one block per colour, the random
    start (spins ±1 from the top random bit), and colour updates with the table kernels' Metropolis
    operand (beta, c(beta)); subclasses override what differs."""
    algorithms = ("checkerboard",)
    cluster_refusal = "its couplings are not all ferromagnetic pairs, which Swendsen-Wang clusters need"

    def block(self, x, c):
        """Colour c's columns of x (B, >= S) in colour order."""
        return x[:, self.offsets[c]:self.offsets[c + 1]]

    n_instances = 1          # Hamiltonians of one program (`BondLattice`: a disorder average)

    def laid_out(self, chains_per_instance):
        """The lattice for a sampler of chains_per_instance chains per instance: one instance, itself."""
        return self

    def split(self, x):
        """(B, S) in colour order -> tuple of blocks (B, m_c)."""
        return tuple(self.block(x, c) for c in range(self.n_colours))

    def check_algorithm(self, algorithm):
        if algorithm == "cluster" and algorithm not in self.algorithms:
            raise ValueError(f"{self.hamiltonian.name} has no cluster update ({self.cluster_refusal}): "
                             f"use --algorithm {self.algorithms[0]}")
        if algorithm not in self.algorithms:
            raise ValueError(f"{self.hamiltonian.name} is sampled by {self.algorithm_name(self.algorithms[0])} "
                             f"colour updates: use --algorithm {self.algorithms[0]}")

    def algorithm_name(self, algorithm) -> str:
        """The file attribute `algorithm`."""
        return algorithm

    def start(self, bits):
        """Random start (infinite temperature) from random words uint32 (B, S): float32 blocks."""
        return self.split(jnp.where((bits >> jnp.uint32(31)) == 1, 1.0, -1.0).astype(jnp.float32))

    def ordered(self, blocks):
        """A ground state of ferromagnetic couplings: every spin +1."""
        return tuple(jnp.abs(b) for b in blocks)

    def stored_energy(self, blocks, e):
        """The energy after a sweep: the kernel's own (e) where it tracks it."""
        return e

    def thresholds(self, betas, algorithm):
        """The kernels' acceptance operand per beta: float32 (n, 2), beta and c(beta) (`metropolis._table_accept`)."""
        return np.stack([betas, acceptance_scale(betas, algorithm)], axis=1).astype(np.float32)


class PairLattice(Blocks):
    """ISING1 / ISING2 (`ising.Ising`): pair couplings in `ising.colouring`'s colours (2 for ISING1,
    4 for ISING2 on even sizes, 3 or more on odd ones), local fields by dense products or gathers.

    nbr int32 (S, k) and nbw float32 (S, k): the neighbour positions of each position and their
    couplings. couplings {(a, c): table} for each pair of coupled colours, how block a enters the local
    field of block c: J_ac float32 (m_a, m_c) if dense, else (indices into block a int32 (m_c, k_ac),
    couplings float32 (m_c, k_ac)). levels: the values of s_i h_i >= 0, 0 first.
    --algorithm cluster: Swendsen-Wang (`cluster.swendsen_wang`) on the bonds of cluster_offsets (dx, dy),
    each of energy gap 2J (ising's bond list: right, down [, the diagonals with J = 1/2]).
    """
    algorithms = ("checkerboard", "single", "cluster")

    def __init__(self, n_x, n_y, hamiltonian, dense):
        self.hamiltonian, self.dense = hamiltonian, dense
        self.cluster_offsets = [(dx, dy) for dx, dy, _ in ising._OFFSETS[hamiltonian.name]]
        self.cluster_gaps = [2.0 * J for _, _, J in ising._OFFSETS[hamiltonian.name]]
        _pair_tables(self, n_x, n_y, colouring(n_x, n_y, hamiltonian.name), neighbours(n_x, n_y, hamiltonian.name), dense)
        # translation invariance: every site sees the couplings of site 0
        sums = {0.0}
        for w in neighbours(n_x, n_y, hamiltonian.name)[0].values():
            sums = {s + d for s in sums for d in (w, -w)}
        self.levels = [0.0] + sorted(v for v in sums if v > 0)

    def sweep(self, algorithm):
        return cluster.swendsen_wang if algorithm == "cluster" else _SWEEPS[algorithm]

    def accept(self, sh, bits, ch):
        """The checkerboard test of s_i h_i: 31 random bits against the threshold of its level."""
        return _accept(self.levels, sh, bits, ch.thr)

    def energies(self, blocks):
        grids = jnp.take(jnp.concatenate(blocks, axis=1), self.inverse, axis=1).reshape(-1, self.n_x, self.n_y)
        return ising.energy(grids, self.hamiltonian.name)

    def thresholds(self, betas, algorithm):
        """uint32 (n, n_levels + 1): round(2^31 `acceptance_table`), compared with 31 random bits;
        cluster: uint32 (n, len(cluster_offsets)), `cluster.bond_thresholds`."""
        if algorithm == "cluster":
            return cluster.bond_thresholds(betas, self.cluster_gaps)
        thr = acceptance_table(betas, self.levels, ZERO_ACCEPT[algorithm], acceptance_scale(betas, algorithm))
        return np.round(thr * 2.0 ** 31).astype(np.uint32)


def _pair_tables(lat, n_x, n_y, col, nb, dense):
    """Set lat's colour order (col int (S,): the colour of each flat site) and coupling tables
    (nb: per flat site {neighbour: J}) for a pair Hamiltonian (`PairLattice`, `BondLattice`)."""
    lat.n_x, lat.n_y, lat.S = n_x, n_y, n_x * n_y
    lat.order = np.argsort(col, kind="stable")
    lat.inverse = np.argsort(lat.order)
    lat.offsets = np.concatenate([[0], np.cumsum(np.bincount(col))])
    lat.n_colours = len(lat.offsets) - 1
    lat.nbr, lat.nbw = _padded([[(lat.inverse[j], w) for j, w in nb[i].items()] for i in lat.order])
    tables = {}
    for p, i in enumerate(lat.order):
        c = col[i]
        for j, w in nb[i].items():
            a, q = col[j], lat.inverse[j]
            if (a, c) not in tables:                 # (setdefault would build the empty rows every time: O(S^2))
                tables[a, c] = [[] for _ in range(lat.offsets[c + 1] - lat.offsets[c])]
            rows = tables[a, c]
            rows[p - lat.offsets[c]].append((q - lat.offsets[a], w))
    lat.couplings = {pair: _padded(rows) for pair, rows in tables.items()}
    if dense:
        for (a, c), (idx, w) in lat.couplings.items():
            J = np.zeros((lat.offsets[a + 1] - lat.offsets[a], len(idx)), np.float32)
            np.add.at(J, (idx, np.arange(len(idx))[:, None]), w)
            lat.couplings[a, c] = J


class BondLattice(Blocks):
    """A coupling per bond (the spin glass, `spin_glass.EdwardsAnderson`): the nearest-neighbour colours
    and coupling tables of `PairLattice`, each bond its own J, and the same checkerboard kernel. Any real
    J, so the Metropolis test takes dE = 2 s_i h_i itself (`metropolis._table_accept`: probability
    c(beta) min(1, exp(-beta dE)), x 0.9 at dE = 0), not a table of levels.

    K instances of one size (`spin_glass.Disorder`; one instance is K = 1) run in one program: the
    tables are those of one geometry, their couplings stacked, dense J (K, m_a, m_c) or gathers (idx
    (m_c, k_ac), J (K, m_c, k_ac)), and each chain reads its own instance's. Which chain is which
    instance is the sampler's layout (instances x chains x betas), fixed by `laid_out(chains_per_instance)`:
    chain g is instance min(g // chains_per_instance, K - 1) (padding chains: the last). The kernel is
    `metropolis._sweep_checkerboard` on a view whose couplings are per group of chains (`per_chain`): a
    batched product per instance (dense), or the couplings broadcast over the instance's chains
    (gathers); dense while the K matrices stay below GROUPED_DENSE_BYTES.
    J_h, J_v float32 (K, n_x, n_y): the couplings, for the energies of whole states.
    """
    cluster_refusal = ("a spin glass's couplings of both signs are frustrated: its Swendsen-Wang clusters "
                       "percolate at every low temperature and decorrelate nothing")
    per_instance = None

    def __init__(self, n_x, n_y, hamiltonian, dense):
        instances = hamiltonian.instances
        K = self.n_instances = len(instances)
        self.hamiltonian = hamiltonian
        # two colour pairs of (S/2)^2 float32 entries per instance
        self.dense = dense = bool(dense) and (K == 1 or 2 * K * n_x * n_y * n_x * n_y <= GROUPED_DENSE_BYTES)
        col, tables = colouring(n_x, n_y, "ISING1"), []
        for h in instances:
            t = self if not tables else _Tables()
            _pair_tables(t, n_x, n_y, col, h.neighbours(n_x, n_y), dense)
            tables.append(t.couplings)
        if K > 1:
            self.couplings = {pair: _stacked([c[pair] for c in tables], dense) for pair in self.couplings}
        self.J_h = np.stack([h.J_h_array for h in instances]).astype(np.float32)
        self.J_v = np.stack([h.J_v_array for h in instances]).astype(np.float32)
        self._layouts = {}

    def laid_out(self, chains_per_instance):
        """This lattice for a sampler of chains_per_instance chains per instance (one object per layout,
        so each compiles once); K = 1: itself."""
        if self.n_instances == 1:
            return self
        per = int(chains_per_instance)
        if per not in self._layouts:
            lat = copy.copy(self)
            lat.per_instance = per
            self._layouts[per] = lat
        return self._layouts[per]

    def chain_instances(self, B):
        """The instance of each of B chains, int32 (B,) (numpy: B is static in a compiled program)."""
        if self.n_instances > 1 and self.per_instance is None:
            raise AssertionError("a bond lattice of several instances needs laid_out(chains_per_instance) first")
        per = self.per_instance or B
        return np.minimum(np.arange(B) // per, self.n_instances - 1).astype(np.int32)

    def sweep(self, algorithm):
        kernel = _SWEEPS[algorithm]
        return kernel if self.n_instances == 1 else functools.partial(_instance_sweep, kernel)

    def _groups(self, x, B):
        """x (K, ...) -> float32 (G, ...), the entry of each group of per_instance chains of B (G =
        ceil(B / per_instance); padding groups: the last instance's)."""
        G = -(-B // self.per_instance)
        return jnp.asarray(np.asarray(x)[np.minimum(np.arange(G), self.n_instances - 1)])

    def _by_chain(self, x, B):
        """x (K, ...) -> float32 (B, ...), chain g's the entry of its instance: the groups broadcast and
        reshaped, not gathered, so that XLA fuses it into its use instead of copying it B times."""
        x, per = self._groups(x, B), self.per_instance
        return jnp.broadcast_to(x[:, None], (x.shape[0], per, *x.shape[1:])).reshape(-1, *x.shape[1:])[:B]

    def per_chain(self, B):
        """A view of this lattice whose couplings are per chain for `metropolis._couple`: dense, a
        `GroupMatrix` (s @ it: each group's spins times its instance's matrix); gathers, (idx (m_c,
        k_ac), J float32 (B, m_c, k_ac)), multiplied elementwise. The kernel itself is unchanged."""
        self.chain_instances(B)                                     # laid out
        view = copy.copy(self)
        view.couplings = {pair: GroupMatrix(self._groups(J, B), self.per_instance) if self.dense
                          else (J[0], self._by_chain(J[1], B)) for pair, J in self.couplings.items()}
        return view

    def accept(self, sh, bits, ch):
        return _table_accept(2.0 * sh, bits, ch)

    def energies(self, blocks):
        grids = jnp.take(jnp.concatenate(blocks, axis=1), self.inverse, axis=1).reshape(-1, self.n_x, self.n_y)
        if self.n_instances == 1:
            return spin_glass.energy(grids, self.J_h[0], self.J_v[0])
        self.chain_instances(grids.shape[0])                       # laid out
        return spin_glass.energy(grids, self._by_chain(self.J_h, grids.shape[0]), self._by_chain(self.J_v, grids.shape[0]))


GROUPED_DENSE_BYTES = 1 << 26   # a disorder average's dense couplings, all instances: 64 MiB (32 x 32: 32 instances)


class GroupMatrix:
    """Couplings J float32 (G, m_a, m_c) of G groups of `per` consecutive chains, as the right operand
    of `@`: s (B, m_a) @ it = each chain's spins times its group's matrix (B <= G per), one batched
    product, as fast as one instance's dense product on the same chains (no per-chain copy of J)."""

    def __init__(self, J, per):
        self.J, self.per = J, per

    def __rmatmul__(self, s):
        B, m = s.shape
        rows = self.J.shape[0] * self.per
        s = jnp.pad(s, ((0, rows - B), (0, 0))) if rows > B else s
        return jnp.matmul(s.reshape(-1, self.per, m), self.J).reshape(rows, -1)[:B]


class _Tables:
    """What `_pair_tables` fills in for one more instance of a `BondLattice`."""


def _stacked(tables, dense):
    """One colour pair's tables of K instances of one geometry: dense (K, m_a, m_c), or (idx, J (K, m_c, k))."""
    if dense:
        return np.stack(tables)
    idx = tables[0][0]
    if any(not np.array_equal(t[0], idx) for t in tables):
        raise AssertionError("bond lattice: instances of one size with different neighbour tables")
    return idx, np.stack([t[1] for t in tables])


def _instance_sweep(kernel, lat, t, blocks, e, ch):
    """`kernel` with each chain's own couplings (`BondLattice.per_chain`)."""
    return kernel(lat.per_chain(blocks[0].shape[0]), t, blocks, e, ch)


class TableLattice(Blocks):
    """A table Hamiltonian (`ising.Table`: E = sum over tiles of table[window pattern], any window) in
    colour order, sampled by Metropolis colour updates (`metropolis._sweep_table`).

    Sites of one colour never share a window, so their flips do not interact and a whole colour is
    updated at once: (x mod w, y mod w) when the window side w divides both sizes (focus 1), else a
    greedy colouring of the "shares a window" graph (any size, odd ones included). tile_pos int32
    (n_tiles, w*w): each tile's window as positions (a site twice where a window wraps onto itself).
    Per colour c: site_tiles / site_masks int32 (m_c, K), the tiles holding each site and the bits it
    sets in their patterns (padding: mask 0); tile_site / tile_mask int32 (n_tiles,), the one site of
    colour c in each tile (m_c where there is none) and its bits.
    --algorithm cluster: self-learning Monte Carlo (`cluster.slmc`, file attribute algorithm: slmc), its
    proposal the table's ferromagnetic pair couplings (`slmc_pairs`).
    """

    def __init__(self, n_x, n_y, table, dense=None):
        f, c, w = table.focus, table.context, table.focus + 2 * table.context
        if n_x % f or n_y % f:
            raise ValueError(f"a {n_x} x {n_y} lattice is not tiled by the tiles of {table.name} (focus {f}): "
                             f"choose --n_x and --n_y multiples of {f}")
        self.n_x, self.n_y, self.S, self.table, self.hamiltonian = n_x, n_y, n_x * n_y, table, table
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
        slmc_pairs(self, *ising_proposal(table))

    def sweep(self, algorithm):
        return cluster.slmc if algorithm == "cluster" else _sweep_table

    def algorithm_name(self, algorithm) -> str:
        return "slmc" if algorithm == "cluster" else algorithm

    def energies(self, blocks):
        table = jnp.asarray(self.table.values, jnp.float32)
        return jnp.sum(table[_patterns(self, jnp.concatenate(blocks, axis=1))], axis=1)


def slmc_pairs(lat, gaps: dict, fields):
    """Set lat's self-learning Monte Carlo proposal (`cluster.slmc`, --algorithm cluster) from a table's
    closed form read as a pair model with a field (`ising_proposal`, `potts_proposal`): gaps {(dx, dy):
    G float64 (n_states,)}, the energy a satisfied bond in state a loses when broken, and fields
    (n_states,), the one-site energies. cluster_offsets (dx, dy) and proposal_gaps (k, n_states) of the
    ferromagnetic pair classes (G > 0 in every state), the largest first; proposal_fields. Where
    neither the gaps depend on the state nor the field differs from 0 (by more than ZERO_COUPLING),
    proposal_weighted is False and the clusters are redrawn uniformly (`cluster.recolour`); else by
    their weights (`cluster.weighted_recolour`). Antiferromagnetic pairs and every other term are left
    to the acceptance. A table without a ferromagnetic pair has no clusters to propose: its lattice
    refuses --algorithm cluster."""
    pairs = sorted(((float(np.mean(g)), o, np.asarray(g, np.float64)) for o, g in gaps.items()
                    if np.min(g) > ZERO_COUPLING), key=lambda p: p[:2], reverse=True)
    fields = np.asarray(fields, np.float64)
    g = np.array([p[2] for p in pairs]).reshape(len(pairs), len(fields))
    lat.proposal_weighted = bool(np.ptp(fields) > ZERO_COUPLING or (len(g) and np.ptp(g, axis=1).max() > ZERO_COUPLING))
    lat.cluster_offsets = [tuple(o) for _, o, _ in pairs]
    lat.proposal_gaps = g if lat.proposal_weighted else np.repeat(g.mean(axis=1, keepdims=True), len(fields), axis=1)
    lat.proposal_fields = fields - fields.mean() if lat.proposal_weighted else np.zeros_like(fields)
    lat.algorithms = ("checkerboard", "cluster") if pairs else ("checkerboard",)
    lat.cluster_refusal = "its table has no ferromagnetic pair coupling to build self-learning cluster proposals from"


def with_proposal(lat, gaps: dict, fields):
    """A copy of lat whose self-learning proposal is (gaps, fields) (`slmc_pairs`), e.g. refitted by
    `cluster.fit_proposal`: a lattice of its own, so its programs compile apart from lat's."""
    new = copy.copy(lat)
    slmc_pairs(new, gaps, fields)
    return new


# A proposal's field makes its ordered states' energies those of the table: near and below T_c the big
# clusters recolour whole ordered domains, so this balance sets most of the acceptance (a field read off
# the one-site terms alone is blind to the odd many-spin terms that also shift the ordered states).
def ising_proposal(table) -> tuple[dict, np.ndarray]:
    """An Ising table's pair classes (`ising.coupling_classes`, as hamiltonian.py expands it) and field,
    as `slmc_pairs` takes them: E = -J s_i s_(i + o) is a gap 2 J in both states; the field (-c, +c) on
    the states (-1, +1), c the sum of the table's odd terms per site (its all-up and all-down states
    differ by 2 c per site)."""
    classes = ising.coupling_classes(table.array, table.focus, table.context)
    c = sum(v for shape, v in classes.items() if len(shape) % 2 == 1)
    return ({shape[1]: np.full(2, -2.0 * v) for shape, v in classes.items() if len(shape) == 2 and -v > ZERO_COUPLING},
            np.array([-c, c]))


def potts_proposal(table) -> tuple[dict, np.ndarray]:
    """A Potts table's state-dependent delta couplings (`potts.delta_couplings`) and field, as
    `slmc_pairs` takes them: the gap of offset o in state a is J_o(a), and the field h(a) = e_a + sum over
    the proposal's pairs of J_o(a), e_a the table's energy per site of the state all a, so the proposal's
    ordered state a has energy e_a per site."""
    couplings = potts.delta_couplings(table.array, table.q)
    ordered = table.array[np.arange(table.q) * sum(table.q ** k for k in range(potts.WINDOW))]
    return couplings, ordered + sum((J for J in couplings.values() if np.min(J) > ZERO_COUPLING), np.zeros(table.q))


ZERO_COUPLING = 1e-6     # a pair class weaker than this (per site) proposes no bonds


def _smallest_divisor(n, least=3):
    return next(p for p in range(least, n + 1) if n % p == 0)


class Strided(Blocks):
    """Colours of strided sub-lattices: colour (a, b) holds the sites x = a mod p_x, y = b mod p_y, its
    block (B, m_x * m_y), m = n / p, the sub-lattice row-major, so the spins at offset (dx, dy) of every
    site of a colour are a roll of another colour's block (`grid`): no index arrays."""

    def _stride(self, n_x, n_y, p):
        self.n_x, self.n_y, self.S = n_x, n_y, n_x * n_y
        self.p, self.m = p, (n_x // p[0], n_y // p[1])
        x, y = np.divmod(np.arange(self.S), n_y)
        self.order = np.argsort((x % p[0]) * p[1] + y % p[1], kind="stable")   # within a colour: row-major
        self.inverse = np.argsort(self.order)
        self.offsets = np.arange(p[0] * p[1] + 1) * (self.m[0] * self.m[1])
        self.n_colours = p[0] * p[1]

    def grid(self, blocks, colour, dx=0, dy=0):
        """The spins at offset (dx, dy) of colour `colour`'s sites, float32 (B, m_x, m_y)."""
        a, b = divmod(colour, self.p[1])
        (qx, ax), (qy, by) = divmod(a + dx, self.p[0]), divmod(b + dy, self.p[1])
        g = blocks[ax * self.p[1] + by].reshape(-1, *self.m)
        return jnp.roll(g, (-qx, -qy), axis=(1, 2)) if qx or qy else g


class States:
    """Potts lattices: blocks hold the states 0..q-1 as float32, redrawn by heat bath (beta alone)."""

    def algorithm_name(self, algorithm) -> str:
        return "swendsen-wang" if algorithm == "cluster" else "heat-bath"

    def start(self, bits):
        return self.split((bits % jnp.uint32(self.q)).astype(jnp.float32))

    def ordered(self, blocks):
        """A ground state: every site in state 0."""
        return tuple(jnp.zeros_like(b) for b in blocks)

    def thresholds(self, betas, algorithm):
        if algorithm == "cluster":
            return cluster.bond_thresholds(betas, self.cluster_gaps)
        return np.asarray(betas).reshape(-1, 1).astype(np.float32)


class WindowLattice(Strided):
    """A focus-1, context-1 table Hamiltonian (3 x 3 windows, one per site) on a lattice of sides >= 3:
    the fast path of `TableLattice`, without gathers but for the table lookups.

    Strided colours with p the smallest divisor >= 3 of each side (4 on 64 x 64: 16 colours); two
    sites of a colour are >= 3 apart along one axis and never share a window, so a colour is updated
    at once.  A flip of site i changes E by dE = s_i G, G the sum over the 9 windows holding i of
    table[p with s_i = -1] - table[p with s_i = +1] (a table entry is the window's energy, so flipping
    s_i from -1 back reverses the sign).  The windows centred on row x_i + u (u = -1, 0, 1) cover rows
    u-1 ... u+1 and columns -2 ... 2 of i's neighbourhood: 14 spins besides s_i, so G = sum_u
    bands[u][14-bit code of the band]: three lookups in float32 tables of 2^14 entries (192 kB),
    computed once from the table.
    --algorithm cluster: self-learning Monte Carlo, as `TableLattice`.
    """

    def __init__(self, n_x, n_y, table, dense=None):
        self.table, self.hamiltonian = table, table
        self._stride(n_x, n_y, (_smallest_divisor(n_x), _smallest_divisor(n_y)))
        self.rows = [[(dx, dy) for dy in range(-2, 3) if (dx, dy) != (0, 0)] for dx in range(-2, 3)]
        self.bands = self._bands(table.array)
        slmc_pairs(self, *ising_proposal(table))

    def sweep(self, algorithm):
        return cluster.slmc if algorithm == "cluster" else _sweep_window

    def algorithm_name(self, algorithm) -> str:
        return "slmc" if algorithm == "cluster" else algorithm

    def energies(self, blocks):
        return _window_energy(self, blocks)

    stored_energy = lambda self, blocks, e: _window_energy(self, blocks)   # noqa: E731 (the kernel does not track E)

    @staticmethod
    def digit(g, k):
        """Window position k's contribution to a pattern: bit k of the spin."""
        return (g > 0).astype(jnp.int32) << k

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

class PottsLattice(States, Strided):
    """The q-state Potts model (`potts.Potts`), heat-bath colour updates (`metropolis._sweep_heatbath`).
    Even sides: four strided colours (x mod 2, y mod 2), neighbour blocks by rolls (no gathers); odd
    sides: `PairLattice`'s nearest-neighbour colouring and coupling tables (dense products or gathers).
    --algorithm cluster: Swendsen-Wang (`cluster.swendsen_wang`), right and down bonds of energy gap J = 1,
    each cluster redrawn uniformly among the q states (file attribute algorithm: swendsen-wang)."""
    algorithms = ("checkerboard", "cluster")
    cluster_offsets, cluster_gaps = [(0, 1), (1, 0)], [1.0, 1.0]

    def __init__(self, n_x, n_y, spec, dense):
        self.strided, self.dense, self.hamiltonian, self.q = n_x % 2 == 0 and n_y % 2 == 0, dense, spec, spec.q
        if self.strided:
            self._stride(n_x, n_y, (2, 2))
            self.couplings = None
        else:
            _pair_tables(self, n_x, n_y, colouring(n_x, n_y, "ISING1"), neighbours(n_x, n_y, "ISING1"), dense)

    def sweep(self, algorithm):
        return cluster.swendsen_wang if algorithm == "cluster" else _sweep_heatbath

    def energies(self, blocks):
        grids = jnp.take(jnp.concatenate(blocks, axis=1), self.inverse, axis=1).reshape(-1, self.n_x, self.n_y)
        return potts.energy(grids)


class PottsWindowLattice(States, WindowLattice):
    """A Potts table Hamiltonian (`potts.PottsTable`: q^9 energies of 3 x 3 windows) on sides >= 3:
    `WindowLattice`'s strided colours (no two sites of a colour share a window), heat bath on the q
    candidate energies of a site, looked up in the 9 windows that hold it (`metropolis._sweep_potts_window`).
    --algorithm cluster: self-learning Monte Carlo (`cluster.slmc`), its proposal Swendsen-Wang clusters of
    the table's ferromagnetic Potts couplings (`potts.delta_couplings`)."""

    def __init__(self, n_x, n_y, table, dense=None):
        if min(n_x, n_y) < 3:
            raise ValueError(f"a learned Potts Hamiltonian's 3 x 3 windows need --n_x and --n_y >= 3 (got {n_x} x {n_y})")
        self.table, self.hamiltonian, self.q = table, table, table.q
        self._stride(n_x, n_y, (_smallest_divisor(n_x), _smallest_divisor(n_y)))
        slmc_pairs(self, *potts_proposal(table))

    def sweep(self, algorithm):
        return cluster.slmc if algorithm == "cluster" else _sweep_potts_window

    def algorithm_name(self, algorithm) -> str:
        return "slmc" if algorithm == "cluster" else "heat-bath"

    def thresholds(self, betas, algorithm):
        """beta float32 (n, 1), the heat bath's operand (and the acceptance's, under --algorithm cluster)."""
        return np.asarray(betas).reshape(-1, 1).astype(np.float32)

    def digit(self, g, k):
        """Window position k's contribution to a pattern: the state times q^k."""
        return g.astype(jnp.int32) * self.q ** k


def _table_lattice(n_x, n_y, table, dense):
    """3 x 3 windows by the fast path where the sides allow it, any other window by gathers."""
    fast = table.focus == 1 and table.context == 1 and min(n_x, n_y) >= 3
    return (WindowLattice if fast else TableLattice)(n_x, n_y, table)


KINDS = {"pairs": PairLattice, "bonds": BondLattice, "table": _table_lattice, "potts": PottsLattice,
         "potts_table": PottsWindowLattice}


@functools.lru_cache(maxsize=32)
def lattice(hamiltonian, n_x, n_y, dense):
    """The lattice of a Hamiltonian (`hamiltonians.Hamiltonian`) on n_x x n_y: the class of its kind."""
    return KINDS[hamiltonian.lattice_kind](n_x, n_y, hamiltonian, dense)

"""Cluster updates of the sampler: Swendsen-Wang for ferromagnetic pair Hamiltonians, and self-learning
Monte Carlo (`slmc`) for table Hamiltonians (Ising and Potts), its proposals Swendsen-Wang updates of the
table's pairs and field (`weighted_recolour` where the field or the couplings favour some states), read off
the table's closed form or refitted to its energies on sampled configurations (`fit_proposal`).

`swendsen_wang` is a kernel like those of `metropolis.py`, (lat, t, blocks, e, ch) -> (blocks, energies
(B,), changed sites (B,)), run by the unchanged `sampler.py` programs for `--algorithm cluster` on the
lattices that name it (`lattices.PairLattice`: ISING1, ISING2; `lattices.PottsLattice`: POTTS<q>).
One sweep is one Swendsen-Wang update of every chain: every site belongs to exactly one cluster, and
every cluster is recoloured, so a sweep touches all N spins, as a Metropolis sweep does.

The update (Swendsen & Wang, PRL 58, 86 (1987)), for E = -sum over bonds <ij> of J_ij d(s_i, s_j) with
every J_ij >= 0 (Ising: d = s_i s_j, Potts: d = delta(s_i, s_j); ISING2's diagonals J = 1/2):
1. every satisfied bond (s_i = s_j) is occupied with probability p_ij = 1 - exp(-beta Delta_ij),
   Delta_ij = the energy the bond loses when broken (Ising 2 J_ij, Potts J_ij); unsatisfied bonds never;
2. the clusters (connected components of the occupied bonds, `components`) get independent uniform
   states: an Ising cluster is flipped with probability 1/2, a Potts cluster takes each of the q states
   with probability 1/q.
Why it is exact: the Fortuin-Kasteleyn joint law of spins and bonds, P(s, b) ∝ prod over bonds of
[(1 - p) delta(b_ij, 0) + p delta(b_ij, 1) delta(s_i, s_j)], has the Boltzmann law as its spin marginal
(summing b_ij out gives (1 - p) + p delta(s_i, s_j) ∝ exp(beta Delta_ij delta(s_i, s_j))). Step 1 draws b
from P(b | s), step 2 draws s from P(s | b) (uniform per cluster, the clusters independent), so the
update T(s -> s') = sum_b P(b | s) P(s' | b) satisfies detailed balance: pi(s) T(s -> s') = sum_b
P(s, b) P(s', b) / P(b) is symmetric in s and s' (the property `slmc` builds on). Ergodic at every
finite beta: with probability prod (1 - p_ij) > 0 no bond is occupied and every site is redrawn
independently, so any state follows any other in one sweep.
Bonds are built by periodic rolls, one per coupling offset, exactly as `ising.energy` and
`potts.energy` count them: on a side of 2 a pair coupled twice gets two independent bonds, as its
coupling 2J requires.

Random numbers: for sweep t, stream j (one per coupling offset, then one for the clusters' new states)
is `metropolis._words` under the sub-key threefry(key, (j, SALT)): a word per chain and site from the
seed, the global chain id and t alone, so files are reproducible on any device count. A bond is
occupied when its 32-bit word is below round(2^32 p) (`bond_thresholds`); a cluster's new state comes
from the word of its root site (the label every one of its sites carries).

Connected components (`components`): union-find in numba on the host, called from the compiled
programs through `jax.pure_callback` (a deterministic function of the bonds, which JAX draws); the
sampler is unchanged. Measured costs, the alternatives (label propagation in JAX, scipy's csgraph)
and the choice of Swendsen-Wang over single-cluster Wolff: benchmarks/README.md.
"""
from __future__ import annotations

import numba
import numpy as np

import jax
import jax.numpy as jnp

from metropolis import _words, threefry2x32

SALT = 0xC1057E5     # the sub-keys' second counter word: the cluster streams differ from the local kernels'


def bond_thresholds(betas, deltas):
    """uint32 (n, k): round(2^32 p) for p = 1 - exp(-beta Delta) (float64), per beta and per coupling
    offset of energy gap Delta (k,), clipped to 2^32 - 1; a 32-bit word below it occupies a bond."""
    b = np.asarray(betas, np.float64).reshape(-1, 1)
    p = -np.expm1(-b * np.asarray(deltas, np.float64).reshape(1, -1))
    return np.minimum(np.round(p * 2.0 ** 32), 2.0 ** 32 - 1).astype(np.uint32)


def site_words(lat, key, cid, t, j):
    """Stream j's random word of every site for sweep t: uint32 (B, n_x, n_y)."""
    k0, k1 = threefry2x32(key[0], key[1], jnp.uint32(j), jnp.uint32(SALT))
    return _words(lat, jnp.stack([k0, k1]), cid, t)[:, :lat.S].reshape(-1, lat.n_x, lat.n_y)


def grid_of(lat, blocks):
    """The blocks in colour order -> grids float32 (B, n_x, n_y)."""
    flat = jnp.take(jnp.concatenate(blocks, axis=1), lat.inverse, axis=1)
    return flat.reshape(-1, lat.n_x, lat.n_y)


def blocks_of(lat, grids):
    """grids (B, n_x, n_y) -> the blocks in colour order."""
    return lat.split(jnp.take(grids.reshape(grids.shape[0], -1), lat.order, axis=1))


def _shift(x, dx, dy):
    """x[:, i + dx, j + dy] at (i, j), periodic."""
    return jnp.roll(x, (-dx, -dy), axis=(1, 2))


@numba.njit(cache=True)
def _root(parent, i):
    """The root of i's tree, halving the path on the way (every node visited points to its grandparent)."""
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@numba.njit(cache=True)
def _union_find(occupied, offsets):
    """Labels int32 (B, n_x, n_y) of occupied bool (B, k, n_x, n_y), offsets int64 (k, 2): per chain,
    union-find over the occupied bonds, the larger root joined under the smaller, so every label is
    the smallest flat index of its cluster."""
    B, k, n_x, n_y = occupied.shape
    out = np.empty((B, n_x, n_y), np.int32)
    parent = np.empty(n_x * n_y, np.int32)
    for b in range(B):
        for i in range(n_x * n_y):
            parent[i] = i
        for d in range(k):
            dx, dy = offsets[d, 0] % n_x, offsets[d, 1] % n_y          # in [0, n): no modulo in the loop
            for x in range(n_x):
                xx = x + dx - n_x if x + dx >= n_x else x + dx
                for y in range(n_y):
                    if occupied[b, d, x, y]:
                        yy = y + dy - n_y if y + dy >= n_y else y + dy
                        ri = _root(parent, x * n_y + y)
                        rj = _root(parent, xx * n_y + yy)
                        parent[max(ri, rj)] = min(ri, rj)
        for x in range(n_x):
            for y in range(n_y):
                out[b, x, y] = _root(parent, x * n_y + y)
    return out


def components(bonds, shape):
    """Cluster labels int32 (B, n_x, n_y) of occupied bonds: bonds a list of (dx, dy, occupied bool
    (B, n_x, n_y)), occupied[:, i, j] the bond from (i, j) to (i + dx, j + dy) (periodic). Two sites carry
    the same label iff they are connected; a label is the smallest flat index of its cluster. Computed on
    the host by `_union_find` (numba) through `jax.pure_callback`: deterministic, so the compiled
    programs stay pure functions of the seed."""
    occupied = jnp.stack([occ for _, _, occ in bonds], axis=1)
    offsets = np.array([(dx, dy) for dx, dy, _ in bonds], np.int64)
    return jax.pure_callback(lambda occ: _union_find(np.asarray(occ), offsets),
                             jax.ShapeDtypeStruct(shape, jnp.int32), occupied, vmap_method="sequential")


def occupied_bonds(lat, s, t, ch, thr):
    """The bonds of step 1: [(dx, dy, occupied bool (B, n_x, n_y))] for each of lat.cluster_offsets
    (dx, dy), occupied where the pair is equal and its word is below thr[k] (uint32, per chain (B or 1,
    1, 1) or per site (B, n_x, n_y): `bond_thresholds`, `state_bonds`)."""
    out = []
    for k, (dx, dy) in enumerate(lat.cluster_offsets):
        u = site_words(lat, ch.key, ch.cid, t, k)
        out.append((dx, dy, (s == _shift(s, dx, dy)) & (u < thr[k])))
    return out


def per_chain(thr):
    """[uint32 (B or 1, 1, 1)] per bond offset k from thr uint32 (B or 1, k)."""
    return [thr[:, k, None, None] for k in range(thr.shape[1])]


def chain_words(key, cid, t, j):
    """Stream j's random word of every chain for sweep t: uint32 (B,)."""
    k0, k1 = threefry2x32(key[0], key[1], jnp.uint32(j), jnp.uint32(SALT))
    return threefry2x32(k0, k1, cid, jnp.broadcast_to(t, cid.shape))[0]


def recolour(lat, s, labels, t, ch):
    """Step 2: every cluster's new state from the word of its root site (stream len(cluster_offsets)):
    Ising spins flipped where its top bit is 1, Potts states drawn as word mod q. float32 like s."""
    flat = site_words(lat, ch.key, ch.cid, t, len(lat.cluster_offsets)).reshape(s.shape[0], -1)
    root = jnp.take_along_axis(flat, labels.reshape(s.shape[0], -1), axis=1).reshape(s.shape)
    if not hasattr(lat, "q"):                                     # spins ±1 (a Potts lattice has q)
        return jnp.where(root >> jnp.uint32(31) == 1, -s, s)
    return (root % jnp.uint32(lat.q)).astype(jnp.float32)


def swendsen_wang(lat, t, blocks, e, ch):
    """Sweep t: one Swendsen-Wang update of every chain (the module's docstring). ch.thr uint32
    (B or 1, len(lat.cluster_offsets)): `bond_thresholds` per chain. Returns (blocks, energies (B,) of
    the new state, sites whose state changed (B,))."""
    s = grid_of(lat, blocks)
    new = recolour(lat, s, components(occupied_bonds(lat, s, t, ch, per_chain(ch.thr)), s.shape), t, ch)
    blocks = blocks_of(lat, new)
    return blocks, lat.energies(blocks), jnp.sum(new != s, axis=(1, 2), dtype=jnp.int32)


def seed_cluster(lat, s, t, ch):
    """The single cluster of Wolff's algorithm (Wolff, PRL 62, 361 (1989)): bool (B, n_x, n_y), the
    sites connected to a random seed site (stream len(cluster_offsets) + 1) by the occupied bonds of
    step 1. Wolff grows it bond by bond, testing each satisfied bond once; drawing every bond first
    and keeping the seed's component gives the same law, and here costs a whole labelling."""
    labels = components(occupied_bonds(lat, s, t, ch, per_chain(ch.thr)), s.shape).reshape(s.shape[0], -1)
    word = chain_words(ch.key, ch.cid, t, len(lat.cluster_offsets) + 1)
    seed = (word % jnp.uint32(lat.S)).astype(jnp.int32)
    mine = jnp.take_along_axis(labels, seed[:, None], axis=1)
    return (labels == mine).reshape(s.shape)


def wolff(lat, t, blocks, e, ch):
    """One single-cluster update of every chain (Ising spins): the seed's cluster flipped. A kernel
    like `swendsen_wang`, for the measurements behind choosing Swendsen-Wang (benchmarks/README.md)."""
    s = grid_of(lat, blocks)
    flip = seed_cluster(lat, s, t, ch)
    new = jnp.where(flip, -s, s)
    blocks = blocks_of(lat, new)
    return blocks, lat.energies(blocks), jnp.sum(flip, axis=(1, 2), dtype=jnp.int32)


# ------------------------------------------------------------------- self-learning Monte Carlo
# The proposal's model (`lattices.slmc_pairs`): E_prop = -sum over lat.cluster_offsets o, sites i of
# G_o(a_i) delta(a_i, a_(i + o)) + sum_i h(a_i), a_i the state index of site i (`state_index`), G_o(a) > 0
# the energy a satisfied bond in state a loses when broken (lat.proposal_gaps float64 (k, n_states);
# Ising: 2 J_o for both states) and h the one-site energies (lat.proposal_fields float64 (n_states,)).
def state_index(lat, s):
    """int32 like s: the state index a of every site, Potts states as they are, Ising spins -1, +1 as 0, 1."""
    return s.astype(jnp.int32) if hasattr(lat, "q") else (s > 0).astype(jnp.int32)


def pair_thresholds(beta, gaps):
    """uint32 (B or 1, k, n_states) in the kernel, from beta float32 (B or 1,): round-down of 2^24 p,
    p = 1 - exp(-beta G) per proposal bond and state of gap G (k, n_states), shifted to 32 bits (24-bit
    resolution, as the table kernels' acceptance)."""
    p = -jnp.expm1(-beta[:, None, None] * jnp.asarray(gaps, jnp.float32)[None])
    return jnp.minimum(p * 2.0 ** 24, 2.0 ** 24 - 1).astype(jnp.uint32) << jnp.uint32(8)


def state_bonds(lat, s, t, ch, beta):
    """`occupied_bonds` of the proposal: a satisfied bond in state a occupied with probability
    1 - exp(-beta G_o(a))."""
    thr = pair_thresholds(beta, lat.proposal_gaps)
    if not lat.proposal_weighted:
        return occupied_bonds(lat, s, t, ch, per_chain(thr[:, :, 0]))
    a, per_site = state_index(lat, s), []
    for k in range(thr.shape[1]):
        x = thr[:, k, 0, None, None]
        for state in range(1, thr.shape[2]):
            x = jnp.where(a == state, thr[:, k, state, None, None], x)
        per_site.append(x)
    return occupied_bonds(lat, s, t, ch, per_site)


def weighted_recolour(lat, s, labels, bonds, beta, t, ch):
    """Step 2 of Swendsen-Wang for E_prop with state-dependent gaps and a field. Given the bonds, the
    Fortuin-Kasteleyn weight of the spins, prod over occupied bonds of (exp(beta G_b(a)) - 1) delta times
    prod over sites of exp(-beta h(a_i)), factorises over clusters: cluster C takes state a with
    probability proportional to w_a(C) = exp(-beta |C| h(a)) prod over o of (exp(beta G_o(a)) - 1)^n_o(C),
    n_o(C) its occupied bonds of offset o. Summed out, the bonds give exp(-beta E_prop); drawn from
    P(b | s) (`state_bonds`) and then s from P(s | b), the update is reversible with respect to exp(-beta
    E_prop), as in the module's docstring. log w_a - log w_0 is summed from integer counts (|C|, n_o(C))
    times per-state coefficients computed without cancellation; the state is the inverse CDF of the
    root site's word (stream len(cluster_offsets)). float32 like s."""
    B, n = s.shape[0], lat.S
    lab = labels.reshape(B, n)
    seg = (lab + jnp.arange(B, dtype=jnp.int32)[:, None] * n).reshape(-1)

    def count(x):                                                           # per cluster root: float32 (B, n, 1)
        return jax.ops.segment_sum(x.reshape(-1).astype(jnp.int32), seg, B * n).reshape(B, n, 1).astype(jnp.float32)

    b = beta[:, None, None]                                                 # (B or 1, 1, 1)
    h = np.asarray(lat.proposal_fields, np.float64)
    log_w = -b * count(jnp.ones_like(lab)) * jnp.asarray(h - h[0], jnp.float32)
    for (_, _, occ), g in zip(bonds, np.asarray(lat.proposal_gaps, np.float64)):
        x0, dx = b * jnp.float32(g[0]), b * jnp.asarray(g - g[0], jnp.float32)
        # log[(e^(x0 + dx) - 1) / (e^x0 - 1)] = dx + log1p(e^-x0 (1 - e^-dx) / (1 - e^-x0))
        log_w = log_w + count(occ) * (dx + jnp.log1p(jnp.exp(-x0) * -jnp.expm1(-dx) / -jnp.expm1(-x0)))
    p = jnp.exp(log_w - jnp.max(log_w, axis=2, keepdims=True))
    cdf = jnp.cumsum(p, axis=2)
    word = site_words(lat, ch.key, ch.cid, t, len(lat.cluster_offsets)).reshape(B, n, 1)
    u = (word >> jnp.uint32(8)).astype(jnp.float32) * jnp.float32(2.0 ** -24) * cdf[:, :, -1:]
    state = jnp.minimum(jnp.sum(u >= cdf[:, :, :-1], axis=2), cdf.shape[2] - 1)     # (B, n): per root
    a = jnp.take_along_axis(state, lab, axis=1).reshape(s.shape)
    return a.astype(jnp.float32) if hasattr(lat, "q") else (2 * a - 1).astype(jnp.float32)


def proposal_energy_change(lat, s, new):
    """E_prop(new) - E_prop(s), float32 (B,): per offset (and state, where the gaps depend on it) an
    integer count of satisfied bonds, exact in float32, times its gap; then the field's counts of sites
    per state. Bonds by periodic rolls, as they are drawn."""
    a, a_new = state_index(lat, s), state_index(lat, new)
    gaps, h = np.asarray(lat.proposal_gaps, np.float64), np.asarray(lat.proposal_fields, np.float64)
    d = 0.0
    for (dx, dy), g in zip(lat.cluster_offsets, gaps):
        sat, sat_new = a == _shift(a, dx, dy), a_new == _shift(a_new, dx, dy)
        if not lat.proposal_weighted:                         # one gap: the count of all satisfied bonds
            d = d - g[0] * jnp.sum(sat_new.astype(jnp.float32) - sat, axis=(1, 2))
            continue
        for k in range(len(g)):
            d = d - g[k] * jnp.sum((sat_new & (a_new == k)).astype(jnp.float32) - (sat & (a == k)), axis=(1, 2))
    if lat.proposal_weighted:
        for k in range(len(h)):
            d = d + h[k] * jnp.sum((a_new == k).astype(jnp.float32) - (a == k), axis=(1, 2))
    return d


def fit_proposal(lat, grids, energies):
    """The self-learning step of Liu et al.: the proposal's model refitted to the table's energies on
    sampled configurations, grids (M, n_x, n_y) (Ising spins or Potts states) with their energies (M,).
    The closed form (lat's proposal, read off the table's expansion) projects the table under uniform
    states; near T_c the chains visit a small, correlated part of the state space, and the least-squares
    fit over the configurations they do visit makes the proposal's energy changes track the table's
    there, which is what the acceptance measures. Unknowns: G_o(a) for lat.cluster_offsets and h(a), a
    constant; fitted as corrections to the closed form (least-norm), so that a state the samples never
    visit keeps its closed-form values. An offset whose fitted gap is not positive in every state is
    dropped and the rest refitted. Returns ({offset: G float64 (n_states,)}, fields float64 (n_states,))
    as `lattices.slmc_pairs` takes them, or lat's own proposal where no offset survives."""
    a = np.asarray(grids)
    n, per = lat.proposal_gaps.shape[1], max(1, (1 << 24) // a[0].size)       # states; configurations per chunk
    sites = np.zeros((len(a), n))                                               # counts per configuration and state
    bonds = {o: np.zeros((len(a), n)) for o in lat.cluster_offsets}
    for i in range(0, len(a), per):                                             # in chunks: bounded memory
        x = state_index(lat, a[i:i + per])
        for k in range(n):
            mask = x == k
            sites[i:i + per, k] = mask.sum(axis=(1, 2))
            for o in lat.cluster_offsets:
                bonds[o][i:i + per, k] = (mask & (x == np.roll(x, (-o[0], -o[1]), axis=(1, 2)))).sum(axis=(1, 2))
    prior = dict(zip(lat.cluster_offsets, np.asarray(lat.proposal_gaps, np.float64)))
    h0 = np.asarray(lat.proposal_fields, np.float64)       # the field as contrasts n_a - n_last: centred h
    offsets = list(lat.cluster_offsets)
    while offsets:
        X = np.concatenate([-bonds[o] for o in offsets] + [sites[:, :-1] - sites[:, -1:], np.ones((len(a), 1))], axis=1)
        c0 = np.concatenate([prior[o] for o in offsets] + [h0[:-1] - h0.mean(), [0.0]])
        c = c0 + np.linalg.lstsq(X, np.asarray(energies, np.float64) - X @ c0, rcond=None)[0]
        gaps = c[:len(offsets) * n].reshape(len(offsets), n)
        keep = [o for o, g in zip(offsets, gaps) if g.min() > 0]
        if keep == offsets:
            h = c[len(offsets) * n:-1]
            return dict(zip(offsets, gaps)), np.append(h, -h.sum())
        offsets = keep
    return prior, h0


def table_terms(lat, blocks):
    """The table's energy window by window, float32 (B, n_windows): `lattices.TableLattice` by its tiles'
    patterns, `lattices.WindowLattice` by the pattern of the window centred on each site."""
    from metropolis import _patterns
    table = jnp.asarray(lat.table.values, jnp.float32)
    if hasattr(lat, "tile_pos"):
        return table[_patterns(lat, jnp.concatenate(blocks, axis=1))]
    terms = []
    for c in range(lat.n_colours):
        p = sum(lat.digit(lat.grid(blocks, c, wx, wy), (wx + 1) * 3 + wy + 1) for wx in (-1, 0, 1) for wy in (-1, 0, 1))
        terms.append(table[p].reshape(p.shape[0], -1))
    return jnp.concatenate(terms, axis=1)


def slmc(lat, t, blocks, e, ch):
    """Sweep t of self-learning Monte Carlo (Liu, Qi, Meng & Fu, PRB 95, 041101 (2017)) on a table
    Hamiltonian E (a learned energy function: pair, many-spin and odd terms): one local sweep of E (the
    lattice's own kernel: Metropolis for Ising tables, heat bath for Potts tables), then one Swendsen-Wang
    update of the proposal's model E_pairs (the table's own ferromagnetic pair couplings, Ising s_i s_j or
    Potts delta(s_i, s_j) with a coupling per state, and a field that gives its ordered states the
    table's energies: `lattices.slmc_pairs`; or these refitted to the table's energies on sampled
    configurations, `fit_proposal`) proposed as a whole and accepted with
    min(1, exp(-beta [(E(s') - E(s)) - (E_pairs(s') - E_pairs(s))])).

    Why it samples exp(-beta E) exactly: SW on E_pairs is reversible with respect to pi_pairs ∝
    exp(-beta E_pairs) (the module's docstring): pi_pairs(s) T(s -> s') = pi_pairs(s') T(s' -> s), so
    T(s' -> s) / T(s -> s') = exp(-beta [E_pairs(s) - E_pairs(s')]). Metropolis-Hastings with proposal T
    and target pi ∝ exp(-beta E) accepts with min(1, pi(s') T(s' -> s) / (pi(s) T(s -> s'))), which is
    the rule above: detailed balance for pi whatever E_pairs is, so E_pairs only sets the acceptance.
    The table's antiferromagnetic pair couplings (J_o < 0 in some state) and every other term stay out of E_pairs
    and are accounted for by the acceptance alone. Ergodic: the local sweep alone is
    (`metropolis.acceptance_scale`; a heat bath at every beta), and an exact move composed with it keeps
    pi stationary.
    Energy differences are summed window by window (`table_terms`) and bond by bond, never as the
    difference of two extensive float32 totals. ch.thr float32 (B or 1, 2): beta, c(beta) of the local
    sweep (a Potts table's (B or 1, 1): beta). Returns (blocks, energies (B,), local flips plus the spins
    of accepted proposals (B,))."""
    blocks, _, acc = lat.sweep("checkerboard")(lat, t, blocks, e, ch)
    proposed, new_terms, old_terms, changed, a = slmc_proposal(lat, blocks, t, ch)
    u = (chain_words(ch.key, ch.cid, t, len(lat.cluster_offsets) + 2) >> jnp.uint32(8)).astype(jnp.float32)
    ok = u * jnp.float32(2.0 ** -24) < a
    blocks = tuple(jnp.where(ok[:, None], b_new, b) for b_new, b in zip(proposed, blocks))
    energy = jnp.sum(jnp.where(ok[:, None], new_terms, old_terms), axis=1)
    return blocks, energy, acc + jnp.where(ok, changed, 0)


def slmc_proposal(lat, blocks, t, ch):
    """`slmc`'s proposal from the blocks: (proposed blocks, its window energies and the current ones
    float32 (B, n_windows) (`table_terms`), changed sites int32 (B,), acceptance probability float32 (B,))."""
    s, beta = grid_of(lat, blocks), ch.thr[:, 0]
    bonds = state_bonds(lat, s, t, ch, beta)
    labels = components(bonds, s.shape)
    new = (weighted_recolour(lat, s, labels, bonds, beta, t, ch) if lat.proposal_weighted
           else recolour(lat, s, labels, t, ch))
    proposed = blocks_of(lat, new)
    old_terms, new_terms = table_terms(lat, blocks), table_terms(lat, proposed)
    d_rest = jnp.sum(new_terms - old_terms, axis=1) - proposal_energy_change(lat, s, new)
    changed = jnp.sum(new != s, axis=(1, 2), dtype=jnp.int32)
    return proposed, new_terms, old_terms, changed, jnp.exp(jnp.minimum(-beta * d_rest, 0.0))

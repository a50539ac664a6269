"""The 2D Edwards-Anderson spin glass, once: energy, instances, overlap and exact results of one instance;
`Disorder`, K instances of one size as one Hamiltonian (a disorder average in one sampler program).

Pure numpy (no JAX, no torch), the disordered counterpart of `ising.py`; `energy` also accepts JAX
arrays (`__array_namespace__`), so a compiled sampler can use this very definition.

Convention (periodic n_x x n_y lattice, spins ±1, every bond once):
    E = - sum_(x, y) [J_h[x, y] s[x, y] s[x, y+1] + J_v[x, y] s[x, y] s[x+1, y]]
J_h (n_x, n_y): the bond from (x, y) to (x, (y + 1) mod n_y); J_v (n_x, n_y): the bond from (x, y) to
((x + 1) mod n_x, y). All couplings +1 is ISING1. The standard instance is ±J with equal probability
(`standard_instance`). A side of 2 bonds a pair twice (two entries, as `ising.energy` counts ISING1).
There is no finite-temperature transition in 2D (beta_c = None); the order parameter of the glass is
the overlap q = (1/N) sum_i a_i b_i of two replicas, its Binder ratio the finite-size crossing.

Exact results of one instance, by the row-to-row transfer matrix along the longer side (rows of the
shorter, R = 2^n_y row states, up to 14 sites): Z = Tr prod_x D_x V_x, D_x = diag exp(beta sum_y
J_h[x, y] r_y r_(y+1)) the bonds inside row x, V_x = kron_y [[e^(beta J), e^(-beta J)], [e^(-beta J),
e^(beta J)]], J = J_v[x, y], the bonds to row x + 1, applied a few columns (axes of the row index) at a
time to a batch of start rows; the global flip commutes with every factor, so only the start rows with
first spin -1 are carried (times 2).
- `log_z`: any couplings, any beta; `moments` from it (or exactly from the density of states).
- `ground_state`: the same product over the (min, +) semiring, with counts: E_0 and its degeneracy.
- `density_of_states`: integer couplings (±J), the energy as a polynomial; `exact_energy_distribution`.
- `all_states` / `enumerated_distribution`: brute force over 2^(n_x n_y) states (tests).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

import ising
from estimators import binder_cumulant

MAX_ROW = 14                 # R = 16384 row states: the exact references stop here
MAX_DOS_WORK = 1e10          # `_dos_work`, ~3-8 s per 1e9: 8 x 8 ±J 5e8 (2 s), 9 x 9 3.5e9 (30 s), 10 x 10 2e10 beyond
# entries (start rows x row states x levels) per batch: dense products gain from large batches, the
# elementwise (min, +) and polynomial steps from batches that stay in cache
CHUNK_LOG_Z, CHUNK_GROUND, CHUNK_DOS = 2 ** 19, 2 ** 16, 2 ** 17
MAX_REACH = 600.0             # log_z: the largest reweighting of one row's state, 2 |beta| sum |J| (e^708 overflows)
TIE = 1e-9                   # ground-state energies closer than this are one level


# ----------------------------------------------------------------------------- energy, instances
def _namespace(grids):
    """numpy (float64) for numpy input and lists; the array's own namespace (float32) otherwise (JAX)."""
    if isinstance(grids, np.ndarray) or not hasattr(grids, "__array_namespace__"):
        return np, np.asarray(grids).astype(np.float64), np.float64
    xp = grids.__array_namespace__()
    return xp, xp.astype(grids, xp.float32), xp.float32


def energy(grids, J_h, J_v):
    """grids (..., n_x, n_y) ±1, couplings J_h, J_v (n_x, n_y), or one instance per lattice (..., n_x, n_y)
    broadcasting against the grids' leading axes -> total energies (...), float64 for numpy input,
    float32 for JAX input (then the couplings may be JAX arrays too: the sampler's per-chain couplings)."""
    xp, s, dtype = _namespace(grids)
    if tuple(s.shape[-2:]) != tuple(np.shape(J_h)[-2:]) or np.shape(J_h) != np.shape(J_v):
        raise ValueError(f"lattices of shape {tuple(s.shape[-2:])} but couplings J_h {np.shape(J_h)}, "
                         f"J_v {np.shape(J_v)}")
    jh, jv = (xp.asarray(J if hasattr(J, "shape") else np.asarray(J), dtype=dtype) for J in (J_h, J_v))
    right, down = xp.roll(s, -1, axis=-1), xp.roll(s, -1, axis=-2)
    return 0.0 - xp.sum(jh * s * right + jv * s * down, axis=(-2, -1))


def standard_instance(n_x: int, n_y: int, seed: int):
    """(J_h, J_v) float32 (n_x, n_y): ±1 with equal probability, J_h drawn first."""
    rng = np.random.default_rng(seed)
    J_h = rng.choice([-1.0, 1.0], size=(n_x, n_y)).astype(np.float32)
    J_v = rng.choice([-1.0, 1.0], size=(n_x, n_y)).astype(np.float32)
    return J_h, J_v


def check_couplings(J_h, J_v):
    """(J_h, J_v) as float64 arrays, or ValueError naming the problem."""
    J_h, J_v = np.asarray(J_h, np.float64), np.asarray(J_v, np.float64)
    if J_h.ndim != 2:
        raise ValueError(f"J_h must be 2-D (n_x, n_y), got shape {J_h.shape}")
    if J_v.shape != J_h.shape:
        raise ValueError(f"J_v has shape {J_v.shape} but J_h {J_h.shape}: both are (n_x, n_y)")
    if min(J_h.shape) < 2:
        raise ValueError(f"lattice sides must be >= 2, J_h has shape {J_h.shape}")
    for name, J in (("J_h", J_h), ("J_v", J_v)):
        bad = np.argwhere(~np.isfinite(J))
        if len(bad):
            x, y = bad[0]
            value = "NaN" if np.isnan(J[x, y]) else J[x, y]
            raise ValueError(f"couplings must be finite ({value} at {name}[{x}, {y}])")
    return J_h, J_v


def overlap(a, b):
    """q = (1/N) sum_i a_i b_i per pair of lattices: a, b (..., n_x, n_y) ±1 -> float64 (...)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).reshape(*np.broadcast_shapes(a.shape, b.shape)[:-2], -1).mean(axis=-1)


def binder_ratio(q_samples):
    """1 - <q^4> / (3 <q^2>^2) over the last axis of q_samples (..., M) -> float64 (...): the form of
    `estimators.binder_cumulant`, so one crossing code reads magnets and glasses alike (0 Gaussian, 2/3 frozen)."""
    q = np.asarray(q_samples, np.float64)
    return binder_cumulant((q ** 2).mean(axis=-1), (q ** 4).mean(axis=-1))


# ----------------------------------------------------------------------------- the transfer matrix
def _rows(n_y: int) -> np.ndarray:
    """int64 (2^n_y, n_y) ±1: row state r has spin 2 b - 1 at column y, b bit n_y - 1 - y of r, so that
    a (..., R) array reshaped to (..., 2, ..., 2) has column y on axis y of the row."""
    return 2 * ((np.arange(2 ** n_y)[:, None] >> np.arange(n_y - 1, -1, -1)) & 1) - 1


def _oriented(J_h, J_v):
    """The couplings with rows along the shorter side (transposed when n_y > n_x: J_h' = J_v^T,
    J_v' = J_h^T), or ValueError beyond rows of MAX_ROW sites."""
    J_h, J_v = check_couplings(J_h, J_v)
    if J_h.shape[1] > J_h.shape[0]:
        J_h, J_v = J_v.T.copy(), J_h.T.copy()
    if J_h.shape[1] > MAX_ROW:
        raise ValueError(f"the exact references stop at rows of {MAX_ROW} sites (the shorter side); "
                         f"this lattice is {J_h.shape[0]} x {J_h.shape[1]}")
    return J_h, J_v


def _intra(J_h_row, rows):
    """float64 (R,): the energy -sum_y J_h[x, y] r_y r_(y+1) of the bonds inside each row state."""
    return -(rows * np.roll(rows, -1, axis=1)) @ J_h_row


def _batches(n_y: int, entries: int):
    """Start rows with first spin -1 (the flip gives the others), in batches of ~entries / 2^n_y."""
    R = 2 ** n_y
    step = max(1, entries // R)
    return [np.arange(i, min(i + step, R // 2)) for i in range(0, R // 2, step)]


def _kron_factor(K) -> np.ndarray:
    """float64 (2^k, 2^k): kron over the columns of [[1, w], [w, 1]] (K >= 0) or [[w, 1], [1, w]] (K < 0),
    w = e^(-2 |K|), K = beta J per column: the bonds to the next row with their e^|K| taken out."""
    F = np.ones((1, 1))
    for k in np.atleast_1d(K):
        w = math.exp(-2 * abs(k))
        F = np.kron(F, np.array([[1.0, w], [w, 1.0]] if k >= 0 else [[w, 1.0], [1.0, w]]))
    return F


def log_z(J_h, J_v, beta: float) -> float:
    """log Z of one instance at inverse temperature beta, any real couplings.

    Each start row's vector M (R,) of the batch runs through T_0 ... T_(n_x - 1): D_x multiplies the
    row states, V_x acts on each half of the row (the leading and the trailing axes of the row index)
    as a dense Kronecker factor (64 x 64 for rows of 12), each bond's e^|beta J| kept out of them
    (entries 1 and e^(-2 |beta J|)); M is rescaled by its max per start row and the log of the scale
    kept, so nothing overflows at beta = 5. 12 x 12 (R = 4096) in ~2-4 s, 14 x 14 in ~3 min.
    """
    J_h, J_v = _oriented(J_h, J_v)
    n_x, n_y = J_h.shape
    rows, beta = _rows(n_y), float(beta)
    # changing one row's state reweights what follows by at most e^(2 |beta| sum of its bonds' |J|):
    # within float64's e^708 that reweighting never meets an entry lost to underflow
    reach = 2 * abs(beta) * (np.abs(J_h) + np.abs(J_v)).sum(axis=1).max()
    if reach > MAX_REACH:
        raise ValueError(f"beta = {beta:g} with these couplings reweights one row by e^{reach:.0f}, beyond "
                         f"float64's range (e^{MAX_REACH:.0f}; ±J rows of 14: beta <= 10)")
    log_const = 0.0
    d = []
    for x in range(n_x):
        a = -beta * _intra(J_h[x], rows)                   # log of D_x's diagonal
        d.append(np.exp(a - a.max()))
        log_const += a.max() + np.abs(beta * J_v[x]).sum()
    h = n_y // 2                                           # two halves: large products through BLAS
    factors = [(_kron_factor(beta * J_v[x, :h]), _kron_factor(beta * J_v[x, h:])) for x in range(n_x)]
    A, C = 2 ** h, 2 ** (n_y - h)
    logs = []
    for r0 in _batches(n_y, CHUNK_LOG_Z):
        B, hi, lo = len(r0), r0 // C, r0 % C
        M = np.zeros((A, B, C))                            # (first half, start row, second half): both
        M[hi, np.arange(B), lo] = 1.0                      # halves' products are single GEMMs
        log_s = np.zeros(B)
        for x in range(n_x):
            M *= d[x].reshape(A, 1, C)
            F0, F1 = factors[x]                            # V_x = F0 (first half) kron F1 (second)
            M = (F0 @ M.reshape(A, -1)).reshape(A, B * C)
            M = (M.reshape(-1, C) @ F1).reshape(A, B, C)
            s = M.max(axis=(0, 2))
            with np.errstate(divide="ignore"):         # a start row whose weight underflowed adds nothing
                log_s += np.log(s)
            M /= np.where(s > 0, s, 1.0)[:, None]
        with np.errstate(divide="ignore"):
            logs.append(log_s + np.log(M[hi, np.arange(B), lo]))
    logs = np.concatenate(logs)
    top = logs.max()
    return float(math.log(2.0) + log_const + top + math.log(np.exp(logs - top).sum()))


def ground_state(J_h, J_v):
    """(E_0, degeneracy): the lowest energy and how many states reach it (ties within TIE = 1e-9),
    exact for any couplings; the degeneracy is a float64 count (exact below 2^53).

    The transfer matrix over the (min, +) semiring: per start row and row state, the lowest energy so
    far and how many configurations reach it; an axis operation takes the lower of its two entries
    (adding the bond's -J s s'), from their difference d alone, and adds the counts of those that tie.
    12 x 12 in ~7-10 s, 14 x 14 in ~2-3 min.
    """
    J_h, J_v = _oriented(J_h, J_v)
    n_x, n_y = J_h.shape
    rows, R = _rows(n_y), 2 ** n_y
    intra = [_intra(J_h[x], rows) for x in range(n_x)]
    best, count = math.inf, 0.0
    for r0 in _batches(n_y, CHUNK_GROUND):
        B = len(r0)
        # after the first row's T_0 every row state is reached once: E finite from the start
        E = intra[0][r0, None] - (rows[r0] * J_v[0]) @ rows.T            # (B, R)
        C = np.ones((B, R))
        for x in range(1, n_x):
            E += intra[x]
            for y in range(n_y):
                J = J_v[x, y]
                e, c = E.reshape(B, 2 ** y, 2, -1), C.reshape(B, 2 ** y, 2, -1)
                e0, e1, c0, c1 = e[:, :, 0], e[:, :, 1], c[:, :, 0], c[:, :, 1]
                d = e1 - e0
                # to spin -1: min(e0 - J, e1 + J) = e0 + min(-J, d + J); to +1: e1 + min(-J, J - d)
                k0 = c0 * (d >= -2 * J - TIE) + c1 * (d <= -2 * J + TIE)
                c1[...] = c1 * (d <= 2 * J + TIE) + c0 * (d >= 2 * J - TIE)
                c0[...] = k0
                e0 += np.minimum(d + J, -J)
                e1 += np.minimum(J - d, -J)
        e, c = E[np.arange(B), r0], C[np.arange(B), r0]
        low = e.min()
        if low < best - TIE:
            best, count = low, 0.0
        if low <= best + TIE:
            best = min(best, low)
            count += c[e <= best + TIE].sum()
    return float(best), 2.0 * count


# ----------------------------------------------------------------------------- density of states
def _integer_couplings(J_h, J_v):
    """(J_h, J_v) as int64 (oriented, rows along the shorter side), or ValueError unless integers."""
    J_h, J_v = _oriented(J_h, J_v)
    if not (np.all(J_h == np.rint(J_h)) and np.all(J_v == np.rint(J_v))):
        raise ValueError("the exact density of states needs integer couplings (±J); use log_z and moments "
                         "for real ones")
    return np.rint(J_h).astype(np.int64), np.rint(J_v).astype(np.int64)


def _dos_work(J_h, J_v) -> float:
    """Entries updated by `density_of_states` (oriented couplings): start rows x levels x R x bonds."""
    R, L = 2 ** J_h.shape[1], 2 * np.abs(J_h).sum() + 2 * np.abs(J_v).sum() + 1
    return 0.5 * R * R * L * J_h.size


def density_of_states(J_h, J_v):
    """(energies float64 (K,) ascending, g float64 (K,)): the number of states at each energy that
    occurs, integer couplings only; sum g = 2^N. Exact integers below 2^53, ~1e-16 relative above.

    The transfer matrix with the energy as a polynomial: M (B, L, R) per start row, energy level (index
    k for E = k - S, S = sum |J|) and row state; a bond shifts the energy axis by -J s s'. Only the
    window of levels reached so far is touched. 8 x 8 ±J in ~2 s; ValueError beyond MAX_DOS_WORK.
    """
    J_h, J_v = _integer_couplings(J_h, J_v)
    work = _dos_work(J_h, J_v)
    if work > MAX_DOS_WORK:
        raise ValueError(f"exact density of states of this {J_h.shape[0]} x {J_h.shape[1]} instance: ~{work:.1e} "
                         f"operations (limit {MAX_DOS_WORK:.0e}; 8 x 8 ±J is 5e8): use a smaller lattice, or "
                         f"log_z and moments (any couplings)")
    return _dos(tuple(map(tuple, J_h.tolist())), tuple(map(tuple, J_v.tolist())))


@lru_cache(maxsize=32)
def _dos(J_h: tuple, J_v: tuple):
    J_h, J_v = np.array(J_h, np.int64), np.array(J_v, np.int64)
    n_x, n_y = J_h.shape
    rows, R = _rows(n_y), 2 ** n_y
    S = int(np.abs(J_h).sum() + np.abs(J_v).sum())
    L = 2 * S + 1
    intra = [np.rint(_intra(J_h[x], rows)).astype(np.int64) for x in range(n_x)]
    total = np.zeros(L)
    for r0 in _batches(n_y, CHUNK_DOS // L):
        B = len(r0)
        M = np.zeros((B, L, R))
        M[np.arange(B), S, r0] = 1.0
        lo, hi = S, S + 1                                   # levels reached so far: [lo, hi)
        for x in range(n_x):
            width = int(np.abs(J_h[x]).sum())
            lo, hi = lo - width, hi + width
            shifted = np.zeros((B, hi - lo, R))
            for u in np.unique(intra[x]):                    # shift each row state by its own energy
                cols = np.nonzero(intra[x] == u)[0]
                shifted[:, max(u, 0):hi - lo + min(u, 0), cols] = M[:, lo - min(u, 0):hi - max(u, 0)][:, :, cols]
            M[:, lo:hi] = shifted
            for y in range(n_y):
                J = int(J_v[x, y])
                lo, hi = lo - abs(J), hi + abs(J)
                v = M[:, lo:hi].reshape(B, hi - lo, 2 ** y, 2, -1)
                a0, a1 = v[:, :, :, 0].copy(), v[:, :, :, 1].copy()
                v[...] = 0
                for dst, src, dE in ((0, a0, -J), (0, a1, J), (1, a0, J), (1, a1, -J)):
                    n = hi - lo - abs(dE)                   # dst[k] += src[k - dE]
                    v[:, max(dE, 0):max(dE, 0) + n, :, dst] += src[:, max(-dE, 0):max(-dE, 0) + n]
        total += M[np.arange(B), :, r0].sum(axis=0)
    k = np.nonzero(total > 0.5)[0]
    energies, g = (k - S).astype(np.float64), 2.0 * np.rint(total[k])   # 2: the flipped start rows
    energies.setflags(write=False)
    g.setflags(write=False)
    return energies, g


def exact_energy_distribution(J_h, J_v, beta: float):
    """(levels float64 (K,) ascending, P(E) float64 (K,)) of the Boltzmann law, integer couplings."""
    levels, g = density_of_states(J_h, J_v)
    log_w = np.log(g) - float(beta) * levels
    p = np.exp(log_w - log_w.max())
    return levels, p / p.sum()


def moments(J_h, J_v, beta: float) -> tuple[float, float]:
    """(<E>, Var E): exact from the density of states for integer couplings where it is within reach
    (rows of <= 10 sites and MAX_DOS_WORK: ±J up to 9 x 9, 10 x 6), else -d log Z / d beta and
    d^2 log Z / d beta^2 by 5-point finite differences of `log_z` (~1e-8 relative, as
    `ising.kaufman_moments`)."""
    J_h, J_v = _oriented(J_h, J_v)
    integer = np.all(J_h == np.rint(J_h)) and np.all(J_v == np.rint(J_v))
    if integer and J_h.shape[1] <= 10 and _dos_work(J_h, J_v) <= MAX_DOS_WORK:
        levels, p = exact_energy_distribution(J_h, J_v, beta)
        mean = float((levels * p).sum())
        return mean, float((p * (levels - mean) ** 2).sum())
    h = 1e-3 * max(abs(float(beta)), 0.01)
    f = [log_z(J_h, J_v, beta + k * h) for k in (-2, -1, 0, 1, 2)]
    mean = -(-f[4] + 8 * f[3] - 8 * f[1] + f[0]) / (12 * h)
    var = (-f[4] + 16 * f[3] - 30 * f[2] + 16 * f[1] - f[0]) / (12 * h * h)
    return float(mean), float(var)


# ----------------------------------------------------------------------------- the Hamiltonian object
def _nested(J) -> tuple:
    """float (n_x, n_y) -> tuple of tuples of floats, rounded to float32 (what files and the sampler hold,
    so that `attrs` -> `from_attrs` gives back the very same object)."""
    return tuple(tuple(float(v) for v in row) for row in np.asarray(J, np.float32))


@dataclass(frozen=True)
class EdwardsAnderson:
    """One instance of the 2D Edwards-Anderson spin glass as a Hamiltonian (the interface of
    `hamiltonians.Hamiltonian`): couplings per bond J_h, J_v as tuples of tuples (hashable, so the
    sampler compiles once per instance), the disorder seed that drew them (None for given couplings).
    Spins ±1, q = 2; only lattices of the instance's own shape. Build it with `of` or `standard`."""
    J_h: tuple
    J_v: tuple
    seed: int | None = None
    name = "EA"
    trained_on = "EA"
    q = 2
    beta_c = None                    # 2D: no finite-temperature spin-glass transition
    lattice_kind = "bonds"

    @classmethod
    def of(cls, J_h, J_v, seed=None) -> "EdwardsAnderson":
        """From arrays (n_x, n_y), n_x, n_y >= 2; ValueError naming the array for bad shapes or values."""
        J_h, J_v = check_couplings(J_h, J_v)
        return cls(_nested(J_h), _nested(J_v), None if seed is None else int(seed))

    @classmethod
    def standard(cls, n_x: int, n_y: int, seed: int) -> "EdwardsAnderson":
        """The ±J instance of `standard_instance`."""
        return cls.of(*standard_instance(n_x, n_y, seed), seed=seed)

    @classmethod
    def from_attrs(cls, attrs) -> "EdwardsAnderson":
        """The instance a data file's attributes record (`attrs`); disorder_seed -1 is None."""
        seed = int(attrs.get("disorder_seed", -1))
        return cls.of(attrs["J_h"], attrs["J_v"], None if seed == -1 else seed)

    J_h_array = property(lambda self: np.array(self.J_h, np.float64))
    J_v_array = property(lambda self: np.array(self.J_v, np.float64))
    instances = property(lambda self: (self,))     # what `Disorder` batches: the lattice reads both alike
    n_x = property(lambda self: len(self.J_h))
    n_y = property(lambda self: len(self.J_h[0]))

    @property
    def label(self) -> str:
        size = f"EA_{self.n_x}x{self.n_y}"
        return size if self.seed is None else f"{size}_seed{self.seed}"

    def _check_size(self, *size) -> None:
        if tuple(int(n) for n in size) != (self.n_x, self.n_y):
            raise ValueError(f"{self.label} is an instance of the {self.n_x} x {self.n_y} lattice, "
                             f"not of {' x '.join(map(str, size)) or 'a scalar'}")

    def energy(self, grids):
        self._check_size(*np.shape(grids)[-2:])
        return energy(grids, self.J_h_array, self.J_v_array)

    def attrs(self) -> dict:
        return {"hamiltonian": self.name, "q": 2, "J_h": np.asarray(self.J_h, np.float32),
                "J_v": np.asarray(self.J_v, np.float32), "disorder_seed": -1 if self.seed is None else self.seed}

    order_components = 1
    crossing_exponent = None     # no transition at T > 0 in 2D

    def order_parameter(self, grids):
        """The spin mean per lattice, float64 (...): the glass's order parameter is the overlap of two
        replicas (`overlap`), which one lattice cannot give."""
        return ising.spin_mean(grids)

    def table(self):
        return None                  # no translation-invariant window table holds per-bond couplings

    def neighbours(self, n_x: int, n_y: int) -> list[dict[int, float]]:
        """Per flat site i = x n_y + y, {neighbour: J_ij} (a pair bonded twice, a side of 2, sums both)."""
        self._check_size(n_x, n_y)
        nb = [dict() for _ in range(n_x * n_y)]
        for x in range(n_x):
            for y in range(n_y):
                i = x * n_y + y
                right, down = x * n_y + (y + 1) % n_y, ((x + 1) % n_x) * n_y + y
                for j, w in ((right, self.J_h[x][y]), (down, self.J_v[x][y])):
                    nb[i][j] = nb[i].get(j, 0.0) + w
                    nb[j][i] = nb[j].get(i, 0.0) + w
        return nb

    def exact_distribution(self, n_x: int, n_y: int, beta: float):
        self._check_size(n_x, n_y)
        return exact_energy_distribution(self.J_h_array, self.J_v_array, beta)

    def exact_moments(self, n_x: int, n_y: int, beta: float):
        self._check_size(n_x, n_y)
        return moments(self.J_h_array, self.J_v_array, beta)

    def exact_log_z(self, n_x: int, n_y: int, beta: float) -> float:
        self._check_size(n_x, n_y)
        return log_z(self.J_h_array, self.J_v_array, beta)

    def ground_state(self):
        """(E_0, degeneracy) of the instance (`ground_state`)."""
        return ground_state(self.J_h_array, self.J_v_array)

    def density_of_states(self):
        return density_of_states(self.J_h_array, self.J_v_array)

    def check_grids(self, grids) -> None:
        ising.check_spins(grids)


@dataclass(frozen=True)
class Disorder:
    """K instances of one lattice size as one Hamiltonian for the sampler: a disorder average in one
    compiled program instead of K. `sampler.Sampler` lays the chains out as instances x chains x betas
    (chain g of a sampler of n_chains per instance and n_betas belongs to instance g // (n_chains
    n_betas)), so replica exchange, which pairs neighbouring betas of one chain number, never mixes
    instances; `lattices.BondLattice` stacks the couplings J_h, J_v float32 (K, n_x, n_y) and gives each
    chain its own instance's. Hashable like an instance (the sampler compiles once per ensemble).
    Build it with `standard` (disorder seeds) or `of` (instances)."""
    instances: tuple
    name = "EA"
    trained_on = "EA"
    q = 2
    beta_c = None
    lattice_kind = "bonds"
    order_components = 1
    crossing_exponent = None     # no transition at T > 0 in 2D

    def __post_init__(self):
        if not self.instances:
            raise ValueError("a disorder average needs at least one instance")
        shapes = {(h.n_x, h.n_y) for h in self.instances}
        if len(shapes) > 1:
            raise ValueError(f"the instances of one program share a lattice size, got {sorted(shapes)}")

    @classmethod
    def of(cls, instances) -> "Disorder":
        return cls(tuple(instances))

    @classmethod
    def standard(cls, n_x: int, n_y: int, seeds) -> "Disorder":
        """The ±J instances (`EdwardsAnderson.standard`) of the disorder seeds, in their order."""
        return cls(tuple(EdwardsAnderson.standard(n_x, n_y, int(s)) for s in seeds))

    n_instances = property(lambda self: len(self.instances))
    n_x = property(lambda self: self.instances[0].n_x)
    n_y = property(lambda self: self.instances[0].n_y)
    seeds = property(lambda self: [h.seed for h in self.instances])
    J_h_array = property(lambda self: np.stack([h.J_h_array for h in self.instances]))   # float64 (K, n_x, n_y)
    J_v_array = property(lambda self: np.stack([h.J_v_array for h in self.instances]))

    @property
    def label(self) -> str:
        seeds = self.seeds
        if None not in seeds and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
            return f"EA_{self.n_x}x{self.n_y}_seeds{seeds[0]}-{seeds[-1]}"
        return f"EA_{self.n_x}x{self.n_y}_{len(seeds)}_instances"

    def energy(self, grids):
        """grids (..., K, n_x, n_y), lattice k of instance k -> energies (..., K)."""
        self.instances[0]._check_size(*np.shape(grids)[-2:])
        if np.ndim(grids) < 3 or np.shape(grids)[-3] != self.n_instances:
            raise ValueError(f"lattices of shape {np.shape(grids)}: a disorder average of {self.n_instances} "
                             f"instances takes (..., {self.n_instances}, n_x, n_y), one lattice per instance")
        return energy(grids, self.J_h_array, self.J_v_array)

    def attrs(self) -> dict:
        return {"hamiltonian": self.name, "q": 2, "J_h": self.J_h_array.astype(np.float32),
                "J_v": self.J_v_array.astype(np.float32),
                "disorder_seeds": np.array([-1 if s is None else s for s in self.seeds], np.int64)}

    def order_parameter(self, grids):
        return ising.spin_mean(grids)

    def table(self):
        return None

    def check_grids(self, grids) -> None:
        ising.check_spins(grids)


# ----------------------------------------------------------------------------- brute force (tests)
def all_states(n_x: int, n_y: int) -> np.ndarray:
    """Every lattice: int8 (2^(n_x n_y), n_x, n_y) ±1 (`ising.all_states`)."""
    return ising.all_states(n_x, n_y)


def enumerated_distribution(J_h, J_v, beta: float):
    """(energy levels, probabilities) of the Boltzmann law by enumerating every state."""
    J_h, J_v = check_couplings(J_h, J_v)
    levels, counts = np.unique(energy(all_states(*J_h.shape), J_h, J_v), return_counts=True)
    log_w = np.log(counts) - beta * levels
    p = np.exp(log_w - log_w.max())
    return levels, p / p.sum()

"""The physics of the q-state Potts model, once: energy, neighbour counts, order parameter, exact results.

Pure numpy (no JAX, no torch), the Potts counterpart of `ising.py` and imported the same way by the
sampler, the models, the evaluation and the tests; `energy` and `neighbour_counts` also accept JAX
arrays, so the compiled sampler uses these very definitions.

Convention (J = 1, periodic boundaries, nearest neighbours, every bond once):
    E = - sum_<ij> delta(s_i, s_j),   s_i in {0, ..., q-1}           (8 x 8: -128 ... 0)
stored as int8 in `ising_grids` (the file's attribute `q` says it is a Potts file). With the
neighbour counts n_k(i) = #{j ~ i : s_j = k}, the conditional law of one site is
    p(s_i = k | all others) = exp(beta n_k(i)) / sum_l exp(beta n_l(i)),
which is what the heat-bath sampler draws from and what a conditional model's logits should be
(beta n_k(i), up to a constant). q = 2 is the Ising model: delta(s, t) = (1 + s' t') / 2 with
s' = 2 s - 1, so E_Potts = (E_Ising - 2N) / 2 and beta_Potts = 2 beta_Ising.
Exact critical point of the infinite lattice (Baxter 1973; continuous for q <= 4):
beta_c = ln(1 + sqrt q).  Order parameter: m = (q max_k rho_k - 1) / (q - 1), rho_k the fraction of
sites in state k (0 in the disordered phase of an infinite lattice, 1 in a ground state).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ising import CROSSING_EXPONENT, LearnedTable

Q_MAX = 127                       # int8 states


def crossing_exponent(q: int) -> float | None:
    """1/nu + omega of the 2D q-state Potts class (see ising.CROSSING_EXPONENT): q = 2 is Ising; q = 3 has
    nu = 5/6 and a leading irrelevant exponent omega = 4/5 (den Nijs 1979, Nienhuis 1982), so 6/5 + 4/5 = 2;
    q = 4 has logarithmic corrections and q > 4 a first-order transition: None, no power law to fit."""
    return {2: CROSSING_EXPONENT, 3: 2.0}.get(int(q))


def beta_c(q: int) -> float:
    """Critical inverse temperature ln(1 + sqrt q) of the infinite square lattice."""
    return math.log(1.0 + math.sqrt(q))


def check_q(q) -> int:
    """q as an int, or ValueError saying what is allowed."""
    if int(q) != q or not 2 <= int(q) <= Q_MAX:
        raise ValueError(f"q must be an integer in 2 ... {Q_MAX} (got {q}); q = 2 is the Ising model")
    return int(q)


def check_states(grids, q: int) -> None:
    """ValueError unless every entry of grids is one of the states 0 ... q-1."""
    g = np.asarray(grids)
    if g.size and (g.min() < 0 or g.max() >= q):
        raise ValueError(f"Potts states must lie in 0 ... {q - 1} (found {g.min()} ... {g.max()})")


def _namespace(grids):
    if isinstance(grids, np.ndarray) or not hasattr(grids, "__array_namespace__"):
        return np, np.asarray(grids)
    return grids.__array_namespace__(), grids


def energy(grids):
    """grids (..., n_x, n_y) states 0..q-1, any integer or float dtype -> total energies (...),
    float64 for numpy input, float32 for JAX input (exact: counts of bonds)."""
    xp, s = _namespace(grids)
    same = ((s == xp.roll(s, -1, axis=-1)).astype(xp.float32 if xp is not np else np.float64)
            + (s == xp.roll(s, -1, axis=-2)))
    return 0.0 - xp.sum(same, axis=(-2, -1))       # 0.0 - x: never -0.0


def neighbour_counts(grids, q: int):
    """grids (..., n_x, n_y) -> n (..., n_x, n_y, q): n[..., x, y, k] = number of the four nearest
    neighbours of (x, y) in state k (float64 for numpy, float32 for JAX)."""
    xp, s = _namespace(grids)
    k = xp.arange(q)
    n = 0.0
    for shift, axis in ((1, -1), (-1, -1), (1, -2), (-1, -2)):
        n = n + (xp.roll(s, shift, axis=axis)[..., None] == k)
    return n * 1.0


def magnetisation(grids, q: int):
    """grids (..., n_x, n_y) -> m (...) = (q max_k rho_k - 1) / (q - 1), float64."""
    s = np.asarray(grids).reshape(*np.shape(grids)[:-2], -1)
    rho = (s[..., None] == np.arange(q)).mean(axis=-2)
    return (q * rho.max(axis=-1) - 1.0) / (q - 1.0)


def zq_magnetisation(grids, q: int):
    """grids (..., n_x, n_y) -> |m| (...), float64, of the Z_q order parameter m = (1/N) sum_i exp(2 pi i s_i / q).

    The order parameter of finite-size scaling for the Potts model: a complex number (two real
    components, `estimators.binder_cumulant(..., components=2)`), 0 on average in the disordered
    phase, so its Binder cumulant tends to 0 there, and |m| = 1 in a ground state. q = 2 gives the
    Ising |m|. (`magnetisation`'s (q max_k rho_k - 1)/(q - 1) is >= 0 at every temperature: its
    cumulant does not tend to 0.)"""
    s = np.asarray(grids).reshape(*np.shape(grids)[:-2], -1)
    phase = np.exp(2j * np.pi * np.arange(q) / q)[s.astype(np.int64)]
    return np.abs(phase.mean(axis=-1))


def ising_spins(grids):
    """q = 2 Potts states 0/1 -> Ising spins -1/+1 (int8); E_Potts = (E_Ising - 2N) / 2."""
    return (2 * np.asarray(grids, np.int8) - 1).astype(np.int8)


# ----------------------------------------------------------------------------- brute force (tests)
def all_states(n_x: int, n_y: int, q: int) -> np.ndarray:
    """Every lattice: int8 (q^(n_x n_y), n_x, n_y); state k has digit (k // q^site) % q at each flat site."""
    n = n_x * n_y
    if q ** n > 2 ** 22:
        raise ValueError(f"{q}^{n} states is too many to enumerate")
    k = np.arange(q ** n)[:, None] // (q ** np.arange(n))[None, :]
    return (k % q).astype(np.int8).reshape(-1, n_x, n_y)


def enumerated_distribution(n_x: int, n_y: int, q: int, beta: float):
    """(energy levels, probabilities) of the Boltzmann law by enumerating every state."""
    levels, counts = np.unique(energy(all_states(n_x, n_y, q)), return_counts=True)
    log_w = np.log(counts) - beta * levels
    p = np.exp(log_w - log_w.max())
    return levels, p / p.sum()


@dataclass(frozen=True)
class Potts:
    """The q-state Potts Hamiltonian (the interface of `hamiltonians.Hamiltonian`; hashable, so the
    sampler compiles once per q); `name` ("POTTS3") is the file attribute `hamiltonian`."""
    q: int
    lattice_kind = "potts"

    def __post_init__(self):
        check_q(self.q)

    @property
    def name(self) -> str:
        return f"POTTS{self.q}"

    label = trained_on = name
    beta_c = property(lambda self: beta_c(self.q))

    def energy(self, grids):
        return energy(grids)

    def attrs(self) -> dict:
        return {"hamiltonian": self.name, "q": self.q}

    order_components = 2
    crossing_exponent = property(lambda self: crossing_exponent(self.q))

    def order_parameter(self, grids):
        return zq_magnetisation(grids, self.q)

    def table(self):
        return PottsTable.of(builtin_table(self.q), self.q, f"{self.name}_table", trained_on=self.name)

    def exact_distribution(self, n_x: int, n_y: int, beta: float):
        return exact_energy_distribution(n_x, n_y, self.q, beta)

    def exact_moments(self, n_x: int, n_y: int, beta: float):
        return exact_moments(n_x, n_y, self.q, beta)

    def exact_log_z(self, n_x: int, n_y: int, beta: float):
        return exact_log_z(n_x, n_y, self.q, beta)

    def check_grids(self, grids) -> None:
        check_states(grids, self.q)

    @staticmethod
    def from_name(name: str):
        """Potts(q) for "POTTS<q>", else None."""
        digits = name[5:] if isinstance(name, str) and name.startswith("POTTS") else ""
        return Potts(int(digits)) if digits.isdigit() else None


# ----------------------------------------------------------------------------- table Hamiltonians
# A focus-1, context-1 Potts energy function (the one-hot EDNN) is a table of q^9 window energies:
# E(s) = sum over sites i of values[pattern of the 3 x 3 window centred on i], pattern = sum_k s_k q^k
# over the window's sites k in row-major order (`ising.window_offsets(1, 1)`, the Ising tables' order).
WINDOW = 9


@dataclass(frozen=True)
class PottsTable(LearnedTable):
    """A q-state table Hamiltonian (the interface of `hamiltonians.Hamiltonian`): `values` (q^9 window
    energies, a tuple so the sampler compiles once per table), q, a name (a run directory, or
    POTTS<q>_table) and the Hamiltonian it was trained on; focus 1, context 1."""
    values: tuple
    q: int
    name: str = "table"
    trained_on: str | None = None
    focus = 1
    context = 1
    lattice_kind = "potts_table"
    beta_c = None

    @property
    def array(self) -> np.ndarray:
        return np.asarray(self.values, np.float64)

    @classmethod
    def of(cls, values, q: int, name: str = "table", trained_on=None) -> "PottsTable":
        values = tuple(float(v) for v in np.asarray(values, np.float64).reshape(-1))
        if len(values) != check_q(q) ** WINDOW:
            raise ValueError(f"a q = {q} table of 3 x 3 windows has {q}^9 entries, got {len(values)}")
        return cls(values, int(q), str(name), None if trained_on is None else str(trained_on))

    def energy(self, grids):
        return table_energy(grids, self)

    order_components = 2
    crossing_exponent = property(lambda self: crossing_exponent(self.q))

    def order_parameter(self, grids):
        return zq_magnetisation(grids, self.q)

    def check_grids(self, grids) -> None:
        check_states(grids, self.q)


def window_patterns(grids, q: int) -> np.ndarray:
    """grids (..., n_x, n_y) states -> int64 (..., n_x, n_y): the pattern of the 3 x 3 window centred on each site."""
    g = np.asarray(grids).astype(np.int64)
    pattern = np.zeros(g.shape, np.int64)
    for k, (dx, dy) in enumerate((dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)):
        pattern += np.roll(g, (-dx, -dy), axis=(-2, -1)) * q ** k
    return pattern


def table_energy(grids, table: PottsTable) -> np.ndarray:
    """Energies float64 (...) of grids (..., n_x, n_y) under a Potts table Hamiltonian."""
    return table.array[window_patterns(grids, table.q)].sum(axis=(-2, -1))


def delta_couplings(values, q: int) -> dict:
    """{(dx, dy): J_o float64 (q,) per site}: a Potts table's pair part read as Potts couplings that may
    depend on the state, E ~ -sum_i sum_o J_o(s_i) delta(s_i, s_(i + o)) + everything else. The table is
    expanded over its window sites (the functional ANOVA under uniform states, the q-state analogue of
    `ising.walsh_coefficients`): the pair term of sites k, l is f(a, b) = m(a, b) - m(a, .) - m(., b) +
    m(., .), m the table averaged over the other seven sites, summed over the window's pairs that are
    translates (offset (dx, dy) from k to l > k, row-major: dx > 0, or dx = 0 and dy > 0); J_o is its
    least-squares fit by the same ANOVA term of -J(a) delta(a, b). A table symmetric under permuting the
    states has J_o(a) = -trace(f) / (q - 1) for every a. POTTS<q>'s own table gives J = 1 on (0, 1) and
    (1, 0), 0 elsewhere. Self-learning Monte Carlo proposes clusters of the ferromagnetic ones
    (`lattices.potts_proposal`)."""
    t = np.asarray(values, np.float64).reshape((q,) * WINDOW).transpose(range(WINDOW - 1, -1, -1))  # axis k: site k
    sites = [(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]
    pair: dict = {}
    for k in range(WINDOW):
        for l in range(k + 1, WINDOW):
            m = t.mean(axis=tuple(a for a in range(WINDOW) if a not in (k, l)))
            o = (sites[l][0] - sites[k][0], sites[l][1] - sites[k][1])
            pair[o] = pair.get(o, 0.0) + m - m.mean(axis=0, keepdims=True) - m.mean(axis=1, keepdims=True) + m.mean()
    eye = np.eye(q)       # design[(a, b), c]: the ANOVA pair term of -delta(a, c) delta(a, b)
    design = -eye[:, None, :] * eye[:, :, None] + (eye[:, None, :] + eye[None, :, :]) / q - 1.0 / q ** 2
    return {o: np.linalg.lstsq(design.reshape(q * q, q), f.reshape(-1), rcond=None)[0] for o, f in pair.items()}


def builtin_table(q: int) -> np.ndarray:
    """float64 (q^9,): the Potts energy as window energies, -(delta(centre, right) + delta(centre, down))."""
    digits = np.arange(q ** WINDOW)[:, None] // q ** np.arange(WINDOW) % q     # (q^9, 9), position 4 the centre
    return -((digits[:, 4] == digits[:, 5]).astype(np.float64) + (digits[:, 4] == digits[:, 7]))


# ----------------------------------------------------------------------------- exact results of a finite periodic lattice
# Row-to-row transfer matrix over the q^n_y states r of a row of n_y sites (digit j = (r // q^j) % q is
# column j), T = D V, with the energy kept exactly as a polynomial in x (x^k: k satisfied bonds, E = -k;
# its coefficients are counts, an extra axis of every vector; x = e^beta gives Z):
#   V[r, r'] = prod_j x^[r_j == r'_j]: the vertical bonds to the next row, a Kronecker product over the
#              columns of the q x q factor J + (x - 1) 1, so V v is n_y axis operations
#              ((V v)_a = sum_(a' != a) v_a' + x v_a along each column's axis), not a dense product;
#   D = diag x^h(r), h(r) = sum_j [r_j == r_(j+1) mod n_y]: the bonds inside the row, shifts of powers.
# Tr T^n_x = sum_E g(E) x^-E counts the bonds exactly as `energy` does (a side of 2: two bonds per pair).
MAX_DOS_WORK = 6e10   # `_dos_cost`; ~3 s per 1e9 on one core: 8 x 8 q = 3 1.9e9 (6 s), q = 4 4.7e10 (2 min)
MAX_DOS_BYTES = 1e9   # three vectors of one start row


def _row_orbits(n_y: int, q: int):
    """(one row per orbit int64 (O,), orbit sizes int64 (O,)) of the q^n_y rows under the cyclic
    shifts and the reflection of the row and the permutations of the q states; sizes sum to q^n_y."""
    digits = np.arange(q ** n_y)[:, None] // q ** np.arange(n_y) % q
    key = None
    for c in range(2 * n_y):                      # rolls of the row and of the reflected row
        s = np.roll(digits[:, ::-1] if c >= n_y else digits, c, axis=1)
        first = np.where(s[:, :, None] == np.arange(q), np.arange(n_y)[:, None], n_y).min(axis=1)
        rank = (first[:, None, :] < first[:, :, None]).sum(axis=2)      # relabel by first appearance
        k = np.take_along_axis(rank, s, axis=1) @ q ** np.arange(n_y)
        key = k if key is None else np.minimum(key, k)
    _, reps, sizes = np.unique(key, return_index=True, return_counts=True)
    assert sizes.sum() == q ** n_y
    return reps, sizes


def _count_states(n_x: int, n_y: int, q: int, dtype=np.float64, chunk: int = 2 ** 16) -> np.ndarray:
    """c (2N + 1,) in dtype: c[k] = number of states with k satisfied bonds (E = -k), rows of n_y sites.

    The trace: sum over start rows r0 of <r0|T^n_x|r0>. A permutation P of the row states that
    maps T to itself (P T P^-1 = T: cyclic shifts and reflection of the row, permutations of the q
    states) gives <P r0|T^n|P r0> = <r0|T^n|r0>, so each orbit of start rows is one representative
    times the orbit size (`_row_orbits`). Half the steps: V is symmetric, so T^T = V D = D^-1 T D and
    (T^b)[r0, r] = x^(h(r0) - h(r)) (T^b)[r, r0]; with u_t = T^t e_r0, b = n_x // 2, c = n_x - b and
    y = x^-h u_c (u_c before its last D), <r0|T^(b+c)|r0> = x^h(r0) sum_r u_b[r] y[r], a Gram matrix
    of polynomials over r. Vectors (degree, start row, row) with batches of `chunk` // q^n_y start
    rows, so one degree's slab stays in cache. Only sums and products of counts: dtype=np.uint64
    gives the counts exactly modulo 2^64 (tests); float64 is exact up to 2^53."""
    R, b, c = q ** n_y, n_x // 2, n_x - n_x // 2
    L = 2 * n_y * c + 1                                           # degrees 0 ... 2 n_y c
    digits = np.arange(R)[:, None] // q ** np.arange(n_y) % q
    h = (digits == np.roll(digits, -1, axis=1)).sum(axis=1)      # bonds inside each row
    reps, sizes = _row_orbits(n_y, q)
    total = np.zeros(2 * n_x * n_y + 1 + 2 * L, dtype)
    batch = max(1, chunk // R)
    for i0 in range(0, len(reps), batch):
        r0 = reps[i0:i0 + batch]
        B = len(r0)
        v = np.zeros((L, B, R), dtype)
        v[0, np.arange(B), r0] = 1
        w, u_b, top = v.reshape((L, B) + (q,) * n_y), v.copy(), 0
        for t in range(1, c + 1):
            for j in range(n_y):              # column j: new_a = sum_(a' != a) v_a' + x v_a
                top += 1
                for k in range(top, -1, -1):
                    np.subtract(w[k].sum(axis=1 + j, keepdims=True), w[k], out=w[k])
                    if k:
                        w[k] += w[k - 1]
            if t == c:
                y = v.copy()
            for j in range(n_y):              # x^[s_j == s_(j+1)]: shift the states with s_j = s_(j+1)
                top += 1
                for a in range(q):
                    ix = [slice(None)] * (2 + n_y)
                    ix[2 + j] = ix[2 + (j + 1) % n_y] = a
                    va = w[tuple(ix)]
                    va[1:top + 1] = va[:top]
                    va[0] = 0
            if t == b:
                u_b = v.copy()
        gram = np.einsum("ibr,jbr->bij", u_b, y)               # (B, L, L): products of polynomials
        poly = np.zeros((B, 2 * L - 1), dtype)
        for m in range(L):
            poly[:, m:m + L] += gram[:, m]
        for i in range(B):
            total[h[r0[i]]:h[r0[i]] + 2 * L - 1] += poly[i] * dtype(sizes[i0 + i])
    assert not total[2 * n_x * n_y + 1:].any()
    return total[:2 * n_x * n_y + 1]


@lru_cache(maxsize=32)
def _density_of_states(n_x: int, n_y: int, q: int):
    c = _count_states(n_x, n_y, q)
    k = np.nonzero(c)[0][::-1]
    energies, g = (0.0 - k).astype(np.float64), np.rint(c[k])     # counts are integers
    energies.setflags(write=False)
    g.setflags(write=False)
    return energies, g


def _dos_cost(n_x: int, n_y: int, q: int) -> tuple[float, float]:
    """(work, bytes) of `_count_states` (n_y the row): orbits x steps x columns x vector size, the
    orbits estimated as the partitions of the row into <= q labelled blocks over 2 n_y."""
    stirling = [1] + [0] * n_y                                    # S(n, k), k = 0 ... n_y
    for n in range(1, n_y + 1):
        stirling = [0] + [k * stirling[k] + stirling[k - 1] for k in range(1, n_y + 1)]
    orbits = sum(stirling[1:q + 1]) / (2 * n_y) + 1
    size = float(q) ** n_y * (2 * n_y * ((n_x + 1) // 2) + 1)
    return orbits * n_x * n_y * size, 24 * size


def density_of_states(n_x: int, n_y: int, q: int):
    """(energies float64 (K,) ascending, g float64 (K,)): the g(E) > 0 states of the periodic
    n_x x n_y lattice at each energy that occurs (E = -k, k satisfied bonds); sum g = q^N. Exact
    integers below 2^53, ~1e-14 relative above. Transfer matrix along the longer side (rows of the
    shorter, method: `_count_states`); cached, the arrays are read-only. Times on one core: 8 x 8
    q = 3 6 s, 7 x 7 q = 4 6 s, 9 x 9 q = 3 80 s, 8 x 8 q = 4 2 min; ValueError beyond."""
    q = check_q(q)
    n_x, n_y = max(int(n_x), int(n_y)), min(int(n_x), int(n_y))     # transposing keeps g
    if n_y < 1:
        raise ValueError(f"lattice sides must be >= 1 (got {n_x} x {n_y})")
    work, size = _dos_cost(n_x, n_y, q)
    if work > MAX_DOS_WORK or size > MAX_DOS_BYTES:
        raise ValueError(f"exact density of states of the {n_x} x {n_y} q = {q} lattice: ~{work:.1e} operations "
                         f"and {size / 1e6:.0f} MB (limits {MAX_DOS_WORK:.0e}, {MAX_DOS_BYTES / 1e6:.0f} MB; 8 x 8 "
                         f"q = 3 is 1.9e9, 6 s): use a smaller lattice, or estimate P(E) by Monte Carlo "
                         f"(reweighted sampler histograms, Wang-Landau)")
    return _density_of_states(n_x, n_y, q)


def _log_weights(n_x: int, n_y: int, q: int, beta: float):
    e, g = density_of_states(n_x, n_y, q)
    return e, np.log(g) - float(beta) * e


def exact_energy_distribution(n_x: int, n_y: int, q: int, beta: float):
    """(energies float64 (K,), probabilities float64 (K,)) of the Boltzmann law P(E) = g(E) e^{-beta E} / Z,
    on every level that occurs (some may underflow to 0 at large beta); normalised in log space."""
    e, log_w = _log_weights(n_x, n_y, q, beta)
    p = np.exp(log_w - log_w.max())
    return e, p / p.sum()


def exact_log_z(n_x: int, n_y: int, q: int, beta: float) -> float:
    """log Z = log sum_E g(E) e^{-beta E} (log-sum-exp: no overflow at large beta)."""
    _, log_w = _log_weights(n_x, n_y, q, beta)
    top = log_w.max()
    return float(top + np.log(np.exp(log_w - top).sum()))


@lru_cache(maxsize=256)
def exact_moments(n_x: int, n_y: int, q: int, beta: float) -> tuple[float, float]:
    """(<E>, Var E) of the finite periodic lattice from the exact distribution."""
    e, p = exact_energy_distribution(n_x, n_y, q, beta)
    mean = float((e * p).sum())
    return mean, float((p * (e - mean) ** 2).sum())


def exact_mean_energy(n_x: int, n_y: int, q: int, beta: float) -> float:
    """<E> of the finite periodic lattice."""
    return exact_moments(n_x, n_y, q, beta)[0]


def exact_heat_capacity(n_x: int, n_y: int, q: int, beta: float) -> float:
    """C = beta^2 Var E (k_B = 1), the whole lattice."""
    return float(beta) ** 2 * exact_moments(n_x, n_y, q, beta)[1]

"""The physics, once: Ising Hamiltonians, lattice geometry and exact finite-lattice results.

Pure numpy (no JAX, no torch), imported by the sampler, the models, the evaluation and the
tests. `energy` and `local_field` also accept JAX arrays (anything with the array API's
`__array_namespace__`), so the compiled sampler uses these very definitions.

Hamiltonians (J = 1, periodic boundaries, total energy with every bond counted once):
    ISING1  E = -sum_i s_i (s_right(i) + s_down(i))                        (8 x 8: -128 ... 128)
    ISING2  E = ISING1 - 1/2 sum_i s_i (s_downright(i) + s_upright(i))
Lattice index: grid[x, y], x the row ("down" = x + 1), y the column ("right" = y + 1);
site index x * n_y + y (row-major). The sequence models read a lattice in a snake order
(`snake_permutation`): its positions are "snake positions", not site indices.

With the local field h_i = sum_j J_ij s_j the energy is E = -1/2 sum_i s_i h_i, flipping s_i
changes it by 2 s_i h_i, and p(s_i = +1 | all other spins) = sigmoid(2 beta h_i).

Exact results of a finite periodic lattice:
- `exact_log_z`: ISING1 at any size (Kaufman 1949); either Hamiltonian for n_y <= 10 by the
  row-to-row transfer matrix.
- `exact_energy_distribution`: P(E) = g(E) e^{-beta E} / Z by the transfer matrix; from it
  `exact_mean_energy` and `exact_heat_capacity` (ISING1 on larger lattices: Kaufman's log Z).
- `all_states` / `enumerated_distribution`: brute force over 2^(n_x n_y) states (tests).
Statistics of samples live in `estimators.py` (re-exported here: `ising.centred_rmse` keeps working).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from estimators import (binder_cumulant, centred_rmse, chi_square_test, crossing,  # noqa: F401 (re-exported)
                        integrated_autocorr_time, jackknife, level_counts, linear_root, rmse)

HAMILTONIANS = ("ISING1", "ISING2")
BETA_C_ISING1 = 0.5 * math.log(1.0 + math.sqrt(2.0))  # Onsager, infinite lattice
# The U4 crossing of L and 2L approaches T_c like L^-(1/nu + omega) (Binder 1981). 2D Ising: nu = 1; the
# leading correction to U4 comes from the analytic background of chi, relative L^-gamma/nu = L^-7/4 (Salas &
# Sokal 2000; the irrelevant-field corrections are L^-2 and beyond), so 1 + 7/4.
CROSSING_EXPONENT = 2.75
# (dx, dy, J) of each bond from a site, each bond once: right, down [, down-right, up-right]
_OFFSETS = {"ISING1": ((0, 1, 1.0), (1, 0, 1.0)),
            "ISING2": ((0, 1, 1.0), (1, 0, 1.0), (1, 1, 0.5), (-1, 1, 0.5))}


def check_hamiltonian(hamiltonian: str) -> None:
    if hamiltonian not in HAMILTONIANS:
        raise ValueError(f"unknown Hamiltonian {hamiltonian!r}; use one of {', '.join(HAMILTONIANS)}")


@dataclass(frozen=True)
class Ising:
    """ISING1 or ISING2 as a Hamiltonian (the interface of `hamiltonians.Hamiltonian`): spins ±1, q = 2."""
    name: str = "ISING1"
    q = 2
    lattice_kind = "pairs"

    def __post_init__(self):
        check_hamiltonian(self.name)

    label = property(lambda self: self.name)
    trained_on = property(lambda self: self.name)
    beta_c = property(lambda self: BETA_C_ISING1 if self.name == "ISING1" else None)

    def energy(self, grids):
        return energy(grids, self.name)

    def attrs(self) -> dict:
        return {"hamiltonian": self.name, "q": 2}

    order_components = 1
    crossing_exponent = CROSSING_EXPONENT

    def order_parameter(self, grids):
        """m = (1/N) sum_i s_i per lattice, float64 (...) of grids (..., n_x, n_y)."""
        return spin_mean(grids)

    def table(self):
        return Table.of(builtin_table(self.name), 1, 1, f"{self.name}_table", trained_on=self.name)

    def exact_distribution(self, n_x: int, n_y: int, beta: float):
        return exact_energy_distribution(n_x, n_y, beta, self.name)

    def exact_moments(self, n_x: int, n_y: int, beta: float):
        return exact_moments(n_x, n_y, beta, self.name)

    def exact_log_z(self, n_x: int, n_y: int, beta: float):
        return exact_log_z(n_x, n_y, beta, self.name)

    def check_grids(self, grids) -> None:
        check_spins(grids)


def check_spins(grids) -> None:
    """ValueError unless every entry of grids is a spin ±1."""
    g = np.asarray(grids)
    if g.size and not (np.abs(g) == 1).all():
        raise ValueError(f"Ising lattices hold spins ±1 (found {g.min():g} ... {g.max():g})")


def spin_mean(grids):
    """m = (1/N) sum_i s_i, float64 (...) of grids (..., n_x, n_y) (or (..., N) flat)."""
    g = np.asarray(grids)
    g = g.reshape(*g.shape[:-2], -1) if g.ndim >= 2 else g
    return g.sum(axis=-1, dtype=np.int64) / g.shape[-1]


def _namespace(grids):
    """numpy for numpy input and lists; the array's own namespace otherwise (JAX)."""
    if isinstance(grids, np.ndarray) or not hasattr(grids, "__array_namespace__"):
        return np, np.asarray(grids).astype(np.float64)
    xp = grids.__array_namespace__()
    return xp, xp.astype(grids, xp.float32)


def _shift(xp, s, dx, dy):
    """s[x + dx, y + dy] at (x, y), periodic."""
    return xp.roll(xp.roll(s, -dx, axis=-2), -dy, axis=-1)


def energy(grids, hamiltonian: str = "ISING1"):
    """grids (..., n_x, n_y) ±1, any numeric dtype -> total energies (...).

    float64 for numpy input; float32 for JAX input (exact: sums of ±1 and ±1/2).
    """
    check_hamiltonian(hamiltonian)
    xp, s = _namespace(grids)
    e = 0.0
    for dx, dy, w in _OFFSETS[hamiltonian]:
        e = e - w * xp.sum(s * _shift(xp, s, dx, dy), axis=(-2, -1))
    return e


def local_field(grids, hamiltonian: str = "ISING1"):
    """grids (..., n_x, n_y) ±1 -> h (..., n_x, n_y), h_i = sum_j J_ij s_j (E = -1/2 sum s_i h_i)."""
    check_hamiltonian(hamiltonian)
    xp, s = _namespace(grids)
    h = 0.0
    for dx, dy, w in _OFFSETS[hamiltonian]:
        h = h + w * (_shift(xp, s, dx, dy) + _shift(xp, s, -dx, -dy))
    return h


# ----------------------------------------------------------------------------- snake orders
def snake_permutation(n_x: int, n_y: int, order: str = "rows") -> np.ndarray:
    """Site indices in the snake (boustrophedon) walk over an (n_x, n_y) lattice: int64 (L,),
    L = n_x * n_y, such that ``grid.reshape(-1)[perm]`` is the snake sequence. "rows": row 0
    left -> right, row 1 right -> left, ...; "cols": column 0 top -> bottom, column 1 bottom -> top, ..."""
    if order not in ("rows", "cols"):
        raise ValueError(f"order must be 'rows' or 'cols', got {order!r}")
    if n_x < 1 or n_y < 1:
        raise ValueError(f"lattice size must be positive, got {n_x} x {n_y}")
    idx = np.arange(n_x * n_y, dtype=np.int64).reshape(n_x, n_y)
    lines = idx if order == "rows" else idx.T.copy()  # one line per row / per column
    lines[1::2] = lines[1::2, ::-1]
    return lines.reshape(-1)


def snake_to_site(k, n_x: int, n_y: int, order: str = "rows"):
    """(row, col) of snake position ``k`` (an int or an integer array)."""
    perm, k_arr = snake_permutation(n_x, n_y, order), np.asarray(k)
    if np.any((k_arr < 0) | (k_arr >= n_x * n_y)):
        raise ValueError(f"snake position {k} outside 0..{n_x * n_y - 1}")
    row, col = np.divmod(perm[k_arr], n_y)
    return (int(row), int(col)) if k_arr.ndim == 0 else (row, col)


def site_to_snake(row, col, n_x: int, n_y: int, order: str = "rows"):
    """Snake position of lattice site (row, col) (ints or integer arrays)."""
    position = np.argsort(snake_permutation(n_x, n_y, order))  # the inverse permutation
    r, c = np.asarray(row), np.asarray(col)
    if np.any((r < 0) | (r >= n_x) | (c < 0) | (c >= n_y)):
        raise ValueError(f"site ({row}, {col}) outside the {n_x} x {n_y} lattice")
    k = position[r * n_y + c]
    return int(k) if k.ndim == 0 else k


# ----------------------------------------------------------------------------- the coupling graph
def bonds(n_x: int, n_y: int, hamiltonian: str = "ISING1") -> list[tuple[int, int, float]]:
    """(i, j, J_ij) for every bond, flat site indices; bonds that wrap onto one pair repeat."""
    check_hamiltonian(hamiltonian)
    return [(x * n_y + y, ((x + dx) % n_x) * n_y + (y + dy) % n_y, w)
            for x in range(n_x) for y in range(n_y) for dx, dy, w in _OFFSETS[hamiltonian]]


def coupling_matrix(n_x: int, n_y: int, hamiltonian: str = "ISING1") -> np.ndarray:
    """Symmetric J float64 (S, S), S = n_x n_y, with E = -1/2 s^T J s (repeated bonds add up)."""
    J = np.zeros((n_x * n_y, n_x * n_y))
    for i, j, w in bonds(n_x, n_y, hamiltonian):
        J[i, j] += w
        J[j, i] += w
    return J


def neighbours(n_x: int, n_y: int, hamiltonian: str = "ISING1") -> list[dict[int, float]]:
    """Per flat site, {neighbour: J_ij} (the nonzero entries of `coupling_matrix`'s row)."""
    nb = [dict() for _ in range(n_x * n_y)]
    for i, j, w in bonds(n_x, n_y, hamiltonian):
        nb[i][j] = nb[i].get(j, 0.0) + w
        nb[j][i] = nb[j].get(i, 0.0) + w
    return nb


def colouring(n_x: int, n_y: int, hamiltonian: str = "ISING1") -> np.ndarray:
    """int (S,) colours 0..k-1 such that no two coupled sites share one.

    Even sizes: (x + y) mod 2 for ISING1, 2 (x mod 2) + (y mod 2) for ISING2; otherwise a
    greedy colouring of the coupling graph (3 or more colours).
    """
    nb = neighbours(n_x, n_y, hamiltonian)
    x, y = np.divmod(np.arange(n_x * n_y), n_y)
    if n_x % 2 == 0 and n_y % 2 == 0:
        col = (x + y) % 2 if hamiltonian == "ISING1" else 2 * (x % 2) + (y % 2)
    else:
        col = -np.ones(n_x * n_y, int)
        for i in range(n_x * n_y):
            used = {col[j] for j in nb[i] if col[j] >= 0}
            col[i] = min(c for c in range(len(used) + 1) if c not in used)
    if any(col[i] == col[j] for i in range(len(nb)) for j in nb[i]):
        raise AssertionError("colouring: two coupled sites share a colour")
    return col.astype(int)


# ----------------------------------------------------------------------------- table Hamiltonians
# E(s) = sum over tiles T of table[pattern of window_T]. The tiles are the f x f blocks whose
# top-left site is (f i, f j); window_T is the w x w periodic block, w = f + 2c, whose top-left site
# is (f i - c, f j - c); pattern = sum_k b_k 2^k over the window's sites k in row-major order, with
# b = (1 + s) / 2. An extensive model with focus f and context c is exactly such a function (its
# tile network on all 2^(w^2) windows), and so is every built-in Hamiltonian (`builtin_table`).
class LearnedTable:
    """What every table Hamiltonian (`Table`, `potts.PottsTable`) shares: a short label for outputs,
    the file attributes of a table, itself as its table, and no exact results."""

    @property
    def label(self) -> str:
        """A run directory's last folder, a fit's file stem."""
        name = str(self.name).rstrip("/")
        base = name.rsplit("/", 1)[-1]
        return base[:-5] if base.endswith(".json") else base

    def attrs(self) -> dict:
        return {"hamiltonian": self.name, "q": self.q, "energy_function": "table", "trained_on": str(self.trained_on),
                "table_focus": self.focus, "table_context": self.context}

    def table(self):
        return self

    def exact_distribution(self, n_x: int, n_y: int, beta: float):
        raise ValueError(f"{self.name}: a table Hamiltonian has no exact results here (its true one may)")

    exact_moments = exact_log_z = exact_distribution


@dataclass(frozen=True)
class Table(LearnedTable):
    """A table Hamiltonian (the interface of `hamiltonians.Hamiltonian`): `values` (2^(w*w) window
    energies, a tuple so that the sampler can compile once per table), focus f, context c, a name (a
    run directory, a coupling fit's JSON, or ISING1_table) and the Hamiltonian it was trained on."""
    values: tuple
    focus: int = 1
    context: int = 1
    name: str = "table"
    trained_on: str | None = None
    q = 2
    lattice_kind = "table"
    beta_c = None

    @property
    def array(self) -> np.ndarray:
        return np.asarray(self.values, np.float64)

    @classmethod
    def of(cls, values, focus: int = 1, context: int = 1, name: str = "table", trained_on=None) -> "Table":
        values = tuple(float(v) for v in np.asarray(values, np.float64).reshape(-1))
        if len(values) != 2 ** ((focus + 2 * context) ** 2):
            raise ValueError(f"a focus-{focus}, context-{context} table has 2^{(focus + 2 * context) ** 2} entries, "
                             f"got {len(values)}")
        return cls(values, int(focus), int(context), str(name), None if trained_on is None else str(trained_on))

    def energy(self, grids):
        return table_energy(grids, self.array, self.focus, self.context)

    order_components = 1
    crossing_exponent = CROSSING_EXPONENT

    def order_parameter(self, grids):
        return spin_mean(grids)

    def check_grids(self, grids) -> None:
        check_spins(grids)


def window_offsets(focus: int, context: int) -> np.ndarray:
    """int (w*w, 2): the window's sites (dx, dy) relative to its tile's top-left site, row-major."""
    r = np.arange(-context, focus + context)
    return np.stack(np.meshgrid(r, r, indexing="ij"), axis=-1).reshape(-1, 2)


def window_patterns(grids, focus: int, context: int) -> np.ndarray:
    """grids (N, n_x, n_y) ±1, n_x and n_y multiples of focus -> int64 (N, n_x/f, n_y/f) patterns."""
    g = np.asarray(grids)
    n_x, n_y = g.shape[-2:]
    if n_x % focus or n_y % focus:
        raise ValueError(f"a {n_x} x {n_y} lattice is not tiled by focus {focus}")
    bits = (g > 0).astype(np.int64)
    pattern = np.zeros((*g.shape[:-2], n_x // focus, n_y // focus), np.int64)
    for k, (dx, dy) in enumerate(window_offsets(focus, context)):
        shifted = np.roll(bits, (-dx, -dy), axis=(-2, -1))      # site (x + dx, y + dy) at (x, y)
        pattern |= shifted[..., ::focus, ::focus] << k
    return pattern


def table_energy(grids, table, focus: int = 1, context: int = 1) -> np.ndarray:
    """Energies float64 (N,) of grids (N, n_x, n_y) under the table Hamiltonian."""
    return np.asarray(table, np.float64)[window_patterns(grids, focus, context)].sum(axis=(-2, -1))


def pair_table(couplings, field: float = 0.0) -> np.ndarray:
    """float64 (512,): E = -sum_i [sum_(dx, dy, J) J s_i s_(i + (dx, dy)) + field s_i] as a focus-1,
    context-1 table, the 3 x 3 window centred on each site holding its bonds to (dx, dy), |dx|, |dy| <= 1."""
    offsets = [tuple(o) for o in window_offsets(1, 1)]
    s = 2 * ((np.arange(512)[:, None] >> np.arange(9)[None, :]) & 1) - 1      # (512, 9) spins
    centre = s[:, offsets.index((0, 0))]
    return -(field * centre + sum(w * centre * s[:, offsets.index((dx, dy))] for dx, dy, w in couplings)
             ).astype(np.float64)


PAIR_NAMES = {"J_horizontal": (0, 1), "J_vertical": (1, 0), "J_diagonal": (1, 1), "J_antidiagonal": (-1, 1)}


def true_couplings(hamiltonian: str) -> dict:
    """{pair name (PAIR_NAMES): J} of a built-in Hamiltonian (E = -J s_i s_j), 0 for pairs it lacks."""
    check_hamiltonian(hamiltonian)
    j = {(dx, dy): w for dx, dy, w in _OFFSETS[hamiltonian]}
    return {name: j.get(offset, 0.0) for name, offset in PAIR_NAMES.items()}


def builtin_table(hamiltonian: str) -> np.ndarray:
    """float64 (512,): a built-in Hamiltonian as a table, the bonds to each site's right and down
    (and its two right diagonals)."""
    check_hamiltonian(hamiltonian)
    return pair_table(_OFFSETS[hamiltonian])


def walsh_coefficients(table) -> np.ndarray:
    """a float64 (2^n,) with table[pattern] = sum_mask a[mask] prod_{k in mask} s_k exactly (the
    Walsh-Hadamard transform; s_k = 2 b_k - 1); a[0] is the constant."""
    a = np.asarray(table, np.float64).copy()
    n = int(round(math.log2(len(a))))
    if len(a) != 2**n:
        raise ValueError(f"a table has 2^n entries, got {len(a)}")
    for k in range(n):
        v = a.reshape(-1, 2, 2**k)                                # axis 1: bit k
        v[:, 0], v[:, 1] = v[:, 0] + v[:, 1], v[:, 1] - v[:, 0]
    return a / 2**n


def coupling_classes(table, focus: int = 1, context: int = 1) -> dict:
    """{shape: coupling per site}: the table expanded into products of spins, terms that are
    translates of one another added up. shape: tuple of (dx, dy) offsets, the lexicographically
    first at (0, 0); the empty shape is the constant. Coefficients are of E (a pair's Ising
    coupling J is minus its value) and per site (summed over a tile's translates, / f^2)."""
    a = walsh_coefficients(table)
    offsets = window_offsets(focus, context)
    classes: dict = {}
    for mask in np.nonzero(a)[0].tolist():
        shape = canonical_shape(tuple(offsets[k].tolist()) for k in range(len(offsets)) if mask >> k & 1)
        classes[shape] = classes.get(shape, 0.0) + float(a[mask]) / focus**2
    return classes


def canonical_shape(sites) -> tuple:
    """The translation class of a set of (dx, dy) sites: sorted, shifted so the first is (0, 0)."""
    sites = sorted(sites)
    return tuple((dx - sites[0][0], dy - sites[0][1]) for dx, dy in sites)


# ----------------------------------------------------------------------------- exact results
def _log_2cosh(x):
    x = np.abs(x)
    return x + np.log1p(np.exp(-2 * x))


def _log_abs_2sinh(x):
    ax = np.abs(x)
    with np.errstate(divide="ignore"):
        return ax + np.log(-np.expm1(-2 * ax)), np.sign(x)


def kaufman_log_z(n_x: int, n_y: int, beta: float) -> float:
    """log Z of the periodic n_x x n_y ISING1 lattice (Kaufman 1949; Ferdinand & Fisher 1969).

    Z = 1/2 (2 sinh 2K)^(mn/2) (Z1 + Z2 + Z3 + Z4), K = beta, m = n_x, n = n_y, with products
    over r = 0..n-1 of 2cosh / 2sinh of (m/2) gamma_l for l = 2r+1 (Z1, Z2) and l = 2r (Z3, Z4);
    cosh gamma_l = cosh 2K coth 2K - cos(pi l / n), gamma_0 = 2K + log tanh K (negative below
    the critical temperature). A signed log-sum in float64. beta > 0.
    """
    m, n, K = n_x, n_y, float(beta)
    if K <= 0:
        raise ValueError("kaufman_log_z needs beta > 0")
    l = np.arange(2 * n)
    gam = np.arccosh(np.cosh(2 * K) / np.tanh(2 * K) - np.cos(np.pi * l / n))
    gam[0] = 2 * K + np.log(np.tanh(K))
    terms, signs = [], []
    for g in (gam[1::2], gam[0::2]):
        terms.append(_log_2cosh(0.5 * m * g).sum())
        signs.append(1.0)
        ls, sg = _log_abs_2sinh(0.5 * m * g)
        terms.append(ls.sum())
        signs.append(np.prod(sg))
    terms, signs = np.array(terms), np.array(signs)
    top = terms.max()
    return float(np.log(0.5) + 0.5 * m * n * np.log(2 * np.sinh(2 * K)) + top
                 + np.log(np.sum(signs * np.exp(terms - top))))


def _row_states(n_y: int) -> np.ndarray:
    """All 2^n_y rows: int64 (2^n_y, n_y) ±1."""
    return (2 * ((np.arange(2**n_y)[:, None] >> np.arange(n_y)[None, :]) & 1) - 1).astype(np.int64)


def _boltzmann_weights(n_x: int, n_y: int, beta: float, hamiltonian: str):
    """(energies float64 (K,), weights float64 (K,), log_scale) with
    g(E) e^{-beta E} = weights * exp(log_scale), exact to ~1e-15 of the largest weight.

    Row-to-row transfer matrix T(beta + i theta) on M equally spaced theta: Tr T^n_x is the
    characteristic function of 2E, and an inverse DFT turns it into g(E) e^{-beta E}.
    Cost O(M 4^n_y n_x); n_y <= 10.
    """
    check_hamiltonian(hamiltonian)
    if n_y > 10:
        raise ValueError("transfer matrix of 2**n_y rows: keep n_y <= 10 (transpose the lattice?)")
    rows = _row_states(n_y)
    right = np.roll(rows, -1, axis=1)
    intra = -(rows * right).sum(1)                           # bonds inside a row
    pair = -(rows @ rows.T).astype(np.float64)               # bonds from row r to the row below
    if hamiltonian == "ISING2":
        pair = pair - 0.5 * (rows @ right.T + right @ rows.T)
    # intra-row energy split evenly between the two rows of a pair; in units of E/2
    e2 = np.rint(2 * (pair + 0.5 * intra[:, None] + 0.5 * intra[None, :])).astype(np.int64)
    # entries e2 = shift + g d with integers d >= 0, so the total over n_x row pairs is
    # 2E = n_x shift + g D, 0 <= D <= n_x max(d): M = n_x max(d) + 1 frequencies resolve D.
    shift = int(e2.min())
    g = int(np.gcd.reduce((e2 - shift).ravel())) or 1
    d = (e2 - shift) // g
    m = n_x * int(d.max()) + 1
    theta = 2 * np.pi * np.arange(m) / m
    real_w = np.exp(-0.5 * beta * g * d)                     # e^{-beta shift/2} per pair factored out
    char = np.empty(m, dtype=np.complex128)
    for k0 in range(0, m, 32):                               # 32 thetas at a time bounds memory
        t = real_w[None] * np.exp(-1j * theta[k0:k0 + 32, None, None] * d[None])
        char[k0:k0 + 32] = np.trace(np.linalg.matrix_power(t, n_x), axis1=1, axis2=2)
    weights = np.fft.ifft(char).real                         # weights[D], D = (2E - n_x shift) / g
    keep = np.nonzero(weights > 1e-13 * weights.max())[0]
    return (n_x * shift + g * keep) / 2.0, weights[keep], -0.5 * beta * n_x * shift


def exact_energy_distribution(n_x: int, n_y: int, beta: float, hamiltonian: str = "ISING1"):
    """(energies float64 (K,), probabilities float64 (K,)) of the Boltzmann law, exact up to
    ~1e-15 of the largest probability (smaller ones are dropped)."""
    e, w, _ = _boltzmann_weights(n_x, n_y, beta, hamiltonian)
    return e, w / w.sum()


def exact_log_z(n_x: int, n_y: int, beta: float, hamiltonian: str = "ISING1") -> float:
    """log Z: Kaufman for ISING1 (any size, beta > 0), the transfer matrix otherwise (n_y <= 10)."""
    if hamiltonian == "ISING1" and beta > 0:
        return kaufman_log_z(n_x, n_y, beta)
    _, w, log_scale = _boltzmann_weights(n_x, n_y, beta, hamiltonian)
    return float(log_scale + np.log(w.sum()))


def kaufman_moments(n_x: int, n_y: int, beta: float) -> tuple[float, float]:
    """(<E>, Var E) of ISING1 as -d log Z / d beta and d^2 log Z / d beta^2 of Kaufman's log Z
    (5-point finite differences, ~1e-8 relative), for lattices too wide for the transfer matrix."""
    h = 1e-3 * max(float(beta), 0.01)
    f = [kaufman_log_z(n_x, n_y, beta + k * h) for k in (-2, -1, 0, 1, 2)]
    mean = -(-f[4] + 8 * f[3] - 8 * f[1] + f[0]) / (12 * h)
    var = (-f[4] + 16 * f[3] - 30 * f[2] + 16 * f[1] - f[0]) / (12 * h * h)
    return float(mean), float(var)


@lru_cache(maxsize=256)
def exact_moments(n_x: int, n_y: int, beta: float, hamiltonian: str = "ISING1") -> tuple[float, float]:
    """(<E>, Var E) of the finite lattice: from the exact distribution when a side has at
    most 8 sites, else (ISING1) from Kaufman's log Z."""
    if min(n_x, n_y) <= 8 or hamiltonian != "ISING1" or beta <= 0:
        if n_y > min(n_x, 8):
            n_x, n_y = n_y, n_x                              # the transfer matrix runs along n_x
        e, p = exact_energy_distribution(n_x, n_y, beta, hamiltonian)
        mean = float((e * p).sum())
        return mean, float((p * (e - mean) ** 2).sum())
    return kaufman_moments(n_x, n_y, beta)


def exact_mean_energy(n_x: int, n_y: int, beta: float, hamiltonian: str = "ISING1") -> float:
    """<E> of the finite periodic lattice."""
    return exact_moments(n_x, n_y, beta, hamiltonian)[0]


def exact_heat_capacity(n_x: int, n_y: int, beta: float, hamiltonian: str = "ISING1") -> float:
    """C = beta^2 Var E (k_B = 1), the whole lattice."""
    return float(beta) ** 2 * exact_moments(n_x, n_y, beta, hamiltonian)[1]


# ----------------------------------------------------------------------------- brute force (tests)
def all_states(n_x: int, n_y: int) -> np.ndarray:
    """Every lattice: int8 (2^(n_x n_y), n_x, n_y) ±1; state k has spin (k >> site) & 1 at each
    flat site. 2^16 states (4 x 4) take 1 MiB."""
    n = n_x * n_y
    if n > 24:
        raise ValueError(f"{n} sites is too many to enumerate")
    bits = (np.arange(2**n)[:, None] >> np.arange(n)[None, :]) & 1
    return (2 * bits - 1).astype(np.int8).reshape(-1, n_x, n_y)


def enumerated_distribution(n_x: int, n_y: int, beta: float, hamiltonian: str = "ISING1"):
    """(energy levels, probabilities) of the Boltzmann law by enumerating every state."""
    levels, counts = np.unique(energy(all_states(n_x, n_y), hamiltonian), return_counts=True)
    log_w = np.log(counts) - beta * levels
    p = np.exp(log_w - log_w.max())
    return levels, p / p.sum()

"""Every physical system is one object: the Hamiltonian interface, and the one resolver of `--hamiltonian`.

Every consumer (the sampler, the data files, the models, thermodynamics, consistency, the phase
diagram) asks the object, never its type. The systems:

| `--hamiltonian`          | class              | q | lattice_kind  |
|--------------------------|--------------------|---|---------------|
| ISING1, ISING2           | `ising.Ising`      | 2 | "pairs"       |
| POTTS<q> (`--q Q`)       | `potts.Potts`      | q | "potts"       |
| a run of the EDNN, a fit | `ising.Table`      | 2 | "table"       |
| a Potts run of the EDNN  | `potts.PottsTable` | q | "potts_table" |
| a spin-glass instance    | `spin_glass.EdwardsAnderson` | 2 | "bonds" |

A built-in Hamiltonian "through its table" (`--as_table`) is `H.table()`: the same energy as a table,
sampled as a learned one is. The physics stays numpy-only and the imports point down: a Hamiltonian
names the kind of lattice that samples it (`lattice_kind`), and the sampler layer (`lattices.py`)
holds one lattice class per kind, each carrying its own sweep, energy, start state and acceptance
thresholds. A run directory is tabulated by the run layer, which the scripts hand to `resolve`
(`learned=runs.learned_hamiltonian`), so this module never imports a model.

A new system is a new class: the spin glass (`spin_glass.EdwardsAnderson`, a coupling per bond)
implements the members below, its couplings in `attrs()` so that files rebuild it through
`from_attrs`, and names the lattice kind "bonds", whose lattice reads per-bond couplings.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

import numpy as np

import ising
import potts
import spin_glass

BUILT_IN = (*ising.HAMILTONIANS, "POTTS<q>", "EA")


class Hamiltonian(Protocol):
    """The interface every system implements.

    name: the file attribute `hamiltonian` (ISING1, POTTS3, a run directory, a fit's JSON).
    label: a short name for outputs (ISING1, ISING1_table, a run directory's last folder).
    q: states per site: 2 for Ising spins ±1, q for Potts states 0..q-1 (files always carry it).
    trained_on: the true Hamiltonian's name (itself for a built-in one; a learned one's training data).
    beta_c: the infinite lattice's critical inverse temperature where it is known exactly, else None.
    lattice_kind: which lattice class of `lattices.py` samples it.
    """
    name: str
    label: str
    q: int
    trained_on: str | None
    beta_c: float | None
    lattice_kind: str

    def energy(self, grids) -> np.ndarray:
        """Total energies (N,) of grids (N, n_x, n_y), every bond once (float64 for numpy input)."""

    def attrs(self) -> dict:
        """What a data file records so that everything downstream can rebuild it (`from_attrs`)."""

    def order_parameter(self, grids) -> np.ndarray:
        """m per lattice, float64 (...) of grids (..., n_x, n_y): the magnetisation (Ising), |m| of the Z_q
        order parameter (Potts)."""

    order_components: int   # real components of the order parameter (Binder cumulant): 1, Potts 2
    crossing_exponent: float | None   # 1/nu + omega of its universality class: how the U4 crossing of L and 2L
                                      # approaches T_c (phase_diagram's extrapolation); None where unknown

    def table(self):
        """The energy as window energies (`ising.Table`, `potts.PottsTable`), itself for a table."""

    def exact_distribution(self, n_x: int, n_y: int, beta: float):
        """(levels, P(E)) of the finite periodic lattice; ValueError where no exact method reaches."""

    def exact_moments(self, n_x: int, n_y: int, beta: float):
        """(<E>, Var E) of the finite lattice; ValueError where no exact method reaches."""

    def exact_log_z(self, n_x: int, n_y: int, beta: float) -> float:
        """log Z of the finite lattice; ValueError where no exact method reaches."""

    def check_grids(self, grids) -> None:
        """ValueError unless grids hold this system's values (spins ±1, or states 0..q-1)."""


def builtin(name: str):
    """ISING1, ISING2 or POTTS<q> as its object, else None."""
    if name in ising.HAMILTONIANS:
        return ising.Ising(name)
    return potts.Potts.from_name(name)


def resolve(source, as_table: bool = False, learned=None, instance=None) -> Hamiltonian:
    """What a command line's `--hamiltonian` names: ISING1, ISING2, POTTS<q> (as_table: through its
    table, the sampler's path for a learned one), EA (a spin-glass instance, `instance` the keywords
    of `spin_glass_instance`), a coupling fit's JSON (inverse_ising.py) or a run directory of the
    extensive model, tabulated by `learned(path)`, or a spin glass's couplings (.npz, arrays J_h and J_v:
    `inverse_ising.py`'s per-bond fit) (the scripts pass `runs.learned_hamiltonian`).
    A Hamiltonian object passes through. ValueError that says what to give."""
    if not isinstance(source, str):
        return source.table() if as_table else source
    if source == "EA":
        if as_table:
            raise ValueError("--hamiltonian EA: a spin glass has a coupling per bond, no table of one window")
        return spin_glass_instance(**(instance or {}))
    h = builtin(source)
    if h is not None:
        return h.table() if as_table else h
    path = Path(source)
    if path.suffix == ".json":
        return fitted_table(path)
    if path.suffix == ".npz":                     # a spin-glass instance's couplings, its size theirs
        return spin_glass_instance(None, None, couplings=path, flag="--hamiltonian")
    if path.is_dir() and learned is not None:
        return learned(source)
    raise ValueError(f"--hamiltonian {source}: not one of {', '.join(BUILT_IN)}, a run directory or a "
                     "fit's JSON or couplings (.npz); give e.g. ISING1, POTTS3, weights/energy/EDNN_F1_C1_hid16x2 or "
                     "results/inverse_ising/pseudo_likelihood_ISING1.json")


def spin_glass_instance(n_x: int = 8, n_y: int = 8, disorder_seed: int = 0, couplings=None, flag="--couplings"):
    """The instance `--hamiltonian EA` names: the couplings of a .npz file (arrays J_h, J_v: its size
    is theirs; n_x, n_y None: any size), else the standard ±J instance of n_x x n_y from disorder_seed;
    ValueError naming the file."""
    if couplings is None:
        return spin_glass.EdwardsAnderson.standard(int(n_x), int(n_y), int(disorder_seed))
    try:
        with np.load(couplings) as f:
            J_h, J_v = f["J_h"], f["J_v"]
    except FileNotFoundError:
        raise ValueError(f"{flag} {couplings}: no such file") from None
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"{flag} {couplings}: not an .npz file with arrays J_h and J_v ({err})") from None
    try:
        h = spin_glass.EdwardsAnderson.of(J_h, J_v)
    except ValueError as err:
        raise ValueError(f"{flag} {couplings}: {err}") from None
    if n_x is not None and (h.n_x, h.n_y) != (int(n_x), int(n_y)):
        raise ValueError(f"{flag} {couplings} holds a {h.n_x} x {h.n_y} instance: give --n_x {h.n_x} --n_y {h.n_y}")
    return h


def from_attrs(attrs) -> Hamiltonian | None:
    """The Hamiltonian a data file's attributes record (`hamiltonian`, `q`; a spin glass's couplings),
    or None for a learned table's file (its energy lives in its run). A file without `q` is Ising (q = 2)."""
    name = attrs.get("hamiltonian")
    name = name.decode() if isinstance(name, bytes) else name
    q = int(attrs.get("q", 2) or 2)
    if attrs.get("energy_function") == "table":
        return None
    if name == "EA":
        return spin_glass.EdwardsAnderson.from_attrs(attrs)
    if name is None or name == "":
        return ising.Ising("ISING1") if q == 2 else potts.Potts(q)
    return builtin(str(name))


# ----------------------------------------------------------------------------- a system as a model records it
# A model trained on a system records it in its hyper-parameters as plain values: its name and q (as
# every run did) and, for a system bound to one lattice (a spin-glass instance: a coupling per bond),
# the rest of its attributes as `instance`. These helpers are the one place that knows how.
def _plain(value):
    """An attribute as a plain value a checkpoint and JSON hold (arrays -> nested lists)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value.item() if isinstance(value, np.generic) else value


def instance_attrs(system) -> dict | None:
    """What a model must record besides `hamiltonian` and `q` to rebuild `system` (plain values:
    the couplings as nested lists, the disorder seed), or None for a system of any lattice size."""
    if lattice_of(system) is None:
        return None
    return {k: _plain(v) for k, v in system.attrs().items() if k not in ("hamiltonian", "q")}


def from_record(hamiltonian: str, q: int = 2, instance: dict | None = None):
    """The system a model's hyper-parameters record (`instance_attrs`); ValueError that says what is wrong."""
    try:
        system = from_attrs({"hamiltonian": hamiltonian, "q": q, **(instance or {})})
    except KeyError as err:                      # EA without its couplings
        raise ValueError(f"{hamiltonian}: a spin-glass instance needs its couplings (instance {{J_h, J_v}}, "
                         f"{err} missing)") from None
    if system is None or system.name != hamiltonian or system.q != q:
        raise ValueError(f"hamiltonian must be one of {', '.join(BUILT_IN)} (q its number of states); "
                         f"got {hamiltonian!r} with q = {q}")
    if (instance is None) != (lattice_of(system) is None):
        raise ValueError(f"{hamiltonian}: " + ("a spin-glass instance needs its couplings (instance J_h, J_v)"
                                                 if instance is None else "has no instance: drop instance"))
    return system


def lattice_of(system) -> tuple[int, int] | None:
    """(n_x, n_y) of a system bound to one lattice (a spin-glass instance), None for one of any size."""
    n_x, n_y = getattr(system, "n_x", None), getattr(system, "n_y", None)
    return None if n_x is None else (int(n_x), int(n_y))


def same_system(a, b) -> bool:
    """The same physics: name, q and (for an instance) the same couplings; the disorder seed that drew
    them does not count (an instance read from a .npz is the instance its seed draws)."""
    ka, kb = a.attrs(), b.attrs()
    ka.pop("disorder_seed", None), kb.pop("disorder_seed", None)
    return ka.keys() == kb.keys() and all(np.array_equal(np.asarray(ka[k]), np.asarray(kb[k])) for k in ka)


def caption(system) -> str | None:
    """A caption naming the system for outputs that name none for the Ising model: a Potts model's
    "q = 3 Potts model (POTTS3)", an instance's "spin-glass instance EA_8x8_seed0"."""
    if lattice_of(system) is not None:
        return f"spin-glass instance {system.label}"
    return None if system.q == 2 else f"q = {system.q} Potts model ({system.name})"


# The largest |coupling| a fit's JSON may hold. A pseudo-likelihood fit of sampled lattices gives
# couplings of order 1 (beta J ~ 0.44 at the Ising transition); beyond 1e3 the Boltzmann factors of a
# single bond, exp(-2 beta J), underflow float32 at every sampled beta >= 0.05 (the lattices freeze), and a
# fit that large is a diverged one (lattices with every spin aligned).
MAX_COUPLING = 1e3


def fitted_table(path) -> ising.Table:
    """A pseudo-likelihood fit's JSON (inverse_ising.py) as a table Hamiltonian: its pair couplings and
    field as window energies; ValueError naming the file for anything else, and naming the coupling for
    one that is not finite or larger than MAX_COUPLING in magnitude."""
    try:
        fit = json.loads(Path(path).read_text())
        c = fit["couplings"]
        values = {n: float(c[n]) for n in (*ising.PAIR_NAMES, "field")}
    except FileNotFoundError:
        raise ValueError(f"{path} not found: write it with python inverse_ising.py --out {path}") from None
    except IsADirectoryError:
        raise ValueError(f"{path} is a folder, not a coupling fit written by inverse_ising.py") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a coupling fit written by inverse_ising.py ({type(err).__name__}: {err})") from None
    except OSError as err:
        raise ValueError(f"{path} cannot be read ({err.strerror})") from None
    for name, value in values.items():
        if not abs(value) <= MAX_COUPLING:
            raise ValueError(f"{path}: coupling {name} = {value!r} is not a finite number of magnitude at most "
                             f"{MAX_COUPLING:g} (a fit's couplings are of order 1); refit it with inverse_ising.py")
    pairs = [(*ising.PAIR_NAMES[n], values[n]) for n in ising.PAIR_NAMES]
    table = ising.pair_table(pairs, values["field"])
    return ising.Table.of(table, 1, 1, str(path), trained_on=fit.get("trained_on"))

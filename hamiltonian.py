"""The learned Hamiltonian in closed form: a run's energy function as a table, expanded exactly.

    python hamiltonian.py weights/energy/EDNN_F1_C1_hid16x2      # a trained extensive model
    python hamiltonian.py ISING2                                 # a built-in Hamiltonian, for comparison
    python hamiltonian.py RUN --json couplings.json              # every class, machine-readable

An extensive model with focus f and context c is a function of w x w windows, w = f + 2c, so with
w*w <= 16 it is exactly a table of 2^(w*w) window energies (`EDNNEnergyModel.window_table`). The
Walsh-Hadamard transform writes the table as a sum of products of spins, and adding up the terms
that are translates of one another gives one coupling per translation class (`ising.coupling_classes`):
for ISING1 the truth is J = 1 on the horizontal and vertical pairs and nothing else; ISING2 adds
J = 1/2 on both diagonals. Couplings are printed with Ising's sign (E = -J s_i s_j), per site.
Terms of E that cancel in every sum over tiles (a function of a window minus its translate) are
invisible here, as they are to the energy: the classes are the energy function's own.
"""
from __future__ import annotations

import argparse
import sys

import hamiltonians
import ising
from checks import HelpFormatter, UserError, check_output_file, main_guard, write_json
from runs import learned_hamiltonian

PAIRS = {name: ising.canonical_shape([(0, 0), offset]) for name, offset in ising.PAIR_NAMES.items()}
TRUTH = {name: ising.true_couplings(name) for name in ising.HAMILTONIANS}


def summary(classes: dict) -> dict:
    """The figures a physicist asks for: the four pair couplings (Ising sign), the largest other
    pair, the total weight of the terms of three or more spins and of the odd terms (both would be
    0 for a pair Hamiltonian without a field), the constant."""
    out = {name: -classes.get(shape, 0.0) for name, shape in PAIRS.items()}
    further = {s: -v for s, v in classes.items() if len(s) == 2 and s not in PAIRS.values()}
    top = max(further, key=lambda s: abs(further[s]), default=None)
    out["largest_further_pair"] = {"shape": top, "J": further[top]} if top else None
    out["further_pairs_total_abs"] = sum(abs(v) for v in further.values())
    out["many_spin_total_abs"] = sum(abs(v) for s, v in classes.items() if len(s) >= 3)
    out["odd_total_abs"] = sum(abs(v) for s, v in classes.items() if len(s) % 2 == 1)
    out["constant_per_site"] = classes.get((), 0.0)
    return out


def report(source: str) -> dict:
    try:
        table = hamiltonians.resolve(source, as_table=True, learned=learned_hamiltonian)
    except ValueError as err:
        raise UserError(str(err)) from None
    if table.q != 2:
        raise UserError(f"{source}: a q = {table.q} Potts energy function; the closed form here is the Ising "
                        "expansion in products of spins (a Potts one needs a basis of q-state characters)")
    focus, context, hamiltonian = table.focus, table.context, table.trained_on
    classes = ising.coupling_classes(table.array, focus, context)
    return {"source": source, "focus": focus, "context": context, "trained_on": hamiltonian,
            "summary": summary(classes), "truth": TRUTH.get(hamiltonian),
            "classes": [{"shape": s, "coefficient": v} for s, v in sorted(classes.items(), key=lambda kv: -abs(kv[1]))]}


def markdown(rep: dict, top: int = 12) -> str:
    s, truth = rep["summary"], rep["truth"] or {}
    lines = [f"{rep['source']} (focus {rep['focus']}, context {rep['context']}, trained on {rep['trained_on']})", "",
             "| coupling (per site, E = -J s_i s_j) | learned | truth |", "|---|---|---|"]
    lines += [f"| {name} | {s[name]:.6f} | {truth.get(name, float('nan')):g} |" for name in PAIRS]
    far = s["largest_further_pair"]
    lines += [f"| largest further pair {far['shape'] if far else '—'} | {far['J'] if far else 0.0:.2e} | 0 |",
              f"| all further pairs, total abs | {s['further_pairs_total_abs']:.2e} | 0 |",
              f"| terms of 3 or more spins, total abs | {s['many_spin_total_abs']:.2e} | 0 |",
              f"| odd terms, total abs | {s['odd_total_abs']:.2e} | 0 |", "",
              f"largest {top} classes (coefficient of E per site):"]
    lines += [f"  {c['coefficient']:+.6f}  {c['shape']}" for c in rep["classes"][:top]]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Expand a run's energy function (an extensive model, or a built-in "
                                "Hamiltonian) exactly into couplings per translation class.",
                                formatter_class=HelpFormatter)
    p.add_argument("source", help=f"a run directory of the extensive model, or one of {', '.join(ising.HAMILTONIANS)}")
    p.add_argument("--json", default=None, help="also write every class to this JSON file (not inside the run "
                   "directory it reads)")
    p.add_argument("--top", type=int, default=12, help="classes listed")
    args = p.parse_args(argv)
    if args.json is not None:
        check_output_file("--json", args.json, inputs=(args.source,))
    rep = report(args.source)
    print(markdown(rep, args.top))
    if args.json:
        write_json(args.json, rep)
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(main))

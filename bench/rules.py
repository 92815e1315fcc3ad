"""Gate evaluation for synthetic patients across all gates of the three pathways.

Three paths get the same prepared facts (one flat message per patient per pathway) and must
give the same decisions: durable-rules (the production path), the reference evaluator, and
the floor: the same trees compiled to plain Python closures over dicts. Ratios are measured
in this one run. Usage: python bench/rules.py [--patients 10000] [--soak 100000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from pathways.definition import expr as E  # noqa: E402
from pathways.definition.loader import load_pathway  # noqa: E402
from pathways.facts.derive import Atom, Reader, Reading  # noqa: E402
from pathways.facts.model import Condition, Demographics, Event, Observation, PatientFacts  # noqa: E402
from pathways.rules.evaluate import PathwayEvaluator, message_for  # noqa: E402
from pathways.rules.plan import ARITH, COMPARE as CMP, atom_of  # noqa: E402
from pathways.rules.reference import ReferenceEvaluator  # noqa: E402

AT = dt.date(2026, 11, 1)
TODAY = dt.date(2026, 11, 23)


# -- the floor: closures over a dict, three-valued like the reference --------------------
def floor_compile(node):
    if isinstance(node, (E.Num, E.Str, E.Bool)):
        value = node.value
        return lambda m: value
    if isinstance(node, E.Dur):
        days = node.value.approx_days
        return lambda m: days
    if isinstance(node, E.Call) and node.func in ("exists", "missing"):
        key, want = atom_of(node.args[0]).key, node.func == "exists"
        return lambda m: (m.get(key) is not None) == want
    atom = atom_of(node)
    if atom is not None:
        key = atom.key
        return lambda m: m.get(key)
    if isinstance(node, E.Not):
        inner = floor_compile(node.operand)
        return lambda m: None if (v := inner(m)) is None else not v
    if isinstance(node, E.Neg):
        inner = floor_compile(node.operand)
        return lambda m: None if (v := inner(m)) is None else -v
    if isinstance(node, E.BoolOp):
        parts = [floor_compile(o) for o in node.operands]
        if node.op == "and":
            def conj(m):
                values = [p(m) for p in parts]
                return False if False in values else (None if None in values else True)
            return conj

        def disj(m):
            values = [p(m) for p in parts]
            return True if True in values else (None if None in values else False)
        return disj
    if isinstance(node, E.Compare):
        left, right, op = floor_compile(node.left), floor_compile(node.right), CMP[node.op]
        return lambda m: None if (a := left(m)) is None or (b := right(m)) is None else op(a, b)
    if isinstance(node, E.InList):
        item, values, negated = floor_compile(node.item), [v.value for v in node.values], node.negated
        return lambda m: None if (v := item(m)) is None else ((v in values) != negated)
    if isinstance(node, E.Arith):
        left, right, op = floor_compile(node.left), floor_compile(node.right), ARITH[node.op]

        def arith(m):
            a, b = left(m), right(m)
            if a is None or b is None or (node.op == "/" and b == 0):
                return None
            return op(a, b)
        return arith
    raise TypeError(node)


# -- synthetic patients ------------------------------------------------------------------
def synthetic(name: str, i: int, rnd: random.Random) -> PatientFacts:
    age = rnd.randint(35, 95)
    condition = {"diabetes": "dm2_diagnosis", "copd": "copd_diagnosis", "heartfailure": "hf_diagnosis"}[name]
    obs = []

    def o(fact, low, high, unit=None, p=0.85, when=AT):
        if rnd.random() < p:
            obs.append(Observation(fact=fact, value=round(rnd.uniform(low, high), 2), unit=unit, at=when))

    o("egfr_ml_min_1_73m2", 15, 110, "mL/min/{1.73_m2}")
    o("potassium_mmol_l", 3.2, 6.2, "mmol/L")
    o("body_weight_kg", 50, 120, "kg", when=AT - dt.timedelta(days=3))
    o("body_weight_kg", 50, 120, "kg")
    if name == "diabetes":
        o("hba1c_mmol_mol", 40, 90, "mmol/mol")
        o("acr_mg_mmol", 0, 60, "mg/mmol")
        o("glucose_mmol_l", 2.5, 30, "mmol/L", p=0.5)
        obs.append(Observation(fact="treatment_step", value=rnd.choice(["leefstijl", "metformine", "su", "insuline"]), at=AT))
    elif name == "copd":
        o("fev1_pct_predicted", 25, 100, "%")
        o("fev1_l", 0.8, 3.5, "L")
        o("bmi_kg_m2", 16, 35, "kg/m2")
        o("spo2_percent", 85, 99, "%")
        o("ccq_score", 0, 5, "{score}")
        obs.append(Observation(fact="disease_burden", value=rnd.choice(["licht", "verhoogd"]), at=AT))
    else:
        o("lvef_percent", 15, 70, "%")
        o("nt_probnp_pg_ml", 20, 3000, "pg/mL")
        obs.append(Observation(fact="nyha_class", value=rnd.randint(1, 4), at=AT))
    events = tuple(Event(fact="exacerbation_with_ocs", at=AT - dt.timedelta(days=rnd.randint(1, 300))) for _ in range(rnd.randint(0, 3))) if name == "copd" else ()
    return PatientFacts(
        patient=f"bench-{name}-{i}",
        demographics=Demographics(birth_date=dt.date(AT.year - age, 6, 1), sex=rnd.choice(["male", "female"])),
        conditions=(Condition(fact=condition, onset=dt.date(2015, 1, 1)),),
        observations=tuple(obs),
        events=events,
    )


class DictReader:
    """Reads atoms from a prepared message, for the reference evaluator."""

    def __init__(self, message):
        self.message = message

    def __call__(self, atom: Atom) -> Reading:
        return Reading(self.message.get(atom.key))


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--soak", type=int, default=100_000, help="patients for the memory check (0 to skip)")
    args = parser.parse_args()
    rnd = random.Random(20261123)
    names = ["diabetes", "copd", "heartfailure"]
    evaluators = {n: PathwayEvaluator(load_pathway(n)) for n in names}
    per_pathway = args.patients // len(names)

    prepared = {}
    start = time.perf_counter()
    for name, ev in evaluators.items():
        messages = []
        for i in range(per_pathway):
            reader = Reader(ev.timeline(synthetic(name, i, rnd), TODAY), ev.plan.facts, ev.plan.derived, AT)
            messages.append(message_for(ev.plan, reader, ev.ruleset.fields))
        prepared[name] = messages
    prepare_s = time.perf_counter() - start
    total = per_pathway * len(names)
    conditions = sum(len(ev.plan.conditions) for ev in evaluators.values())
    print(f"{total} patients ({per_pathway} per pathway), {conditions} conditions in all; facts prepared in {prepare_s:.2f} s ({total / prepare_s:,.0f}/s)")

    results = {}
    timings = {}
    for label in ("durable-rules", "reference", "floor"):
        gc.collect()
        decided = {}
        start = time.perf_counter()
        for name, ev in evaluators.items():
            ids = [c.id for c in ev.plan.conditions]
            if label == "durable-rules":
                ruleset = ev.ruleset
                decided[name] = [ruleset.evaluate(m) for m in prepared[name]]
            elif label == "reference":
                trees = [(c.id, ev.plan.inlined[c.id]) for c in ev.plan.conditions]
                out = []
                for m in prepared[name]:
                    ref = ReferenceEvaluator(DictReader(m), {}, {}, {}, {})
                    out.append({cid: v for cid, tree in trees if (v := ref.evaluate(tree).value) is not None})
                decided[name] = out
            else:
                compiled = [(cid, floor_compile(ev.plan.inlined[cid])) for cid in ids]
                decided[name] = [{cid: v for cid, f in compiled if (v := f(m)) is not None} for m in prepared[name]]
        timings[label] = time.perf_counter() - start
        results[label] = decided
    for label in ("reference", "floor"):
        assert results[label] == results["durable-rules"], f"{label} disagrees with durable-rules"
    decisions = sum(len(d) for per in results["floor"].values() for d in per)
    print(f"all three paths agree on {decisions:,} decisions")
    floor = timings["floor"]
    for label, seconds in timings.items():
        print(f"{label:14s} {seconds:7.3f} s  {total / seconds:10,.0f} patients/s  ratio to floor {seconds / floor:6.2f}")

    if args.soak:
        ev = evaluators["diabetes"]
        ruleset = ev.ruleset
        messages = prepared["diabetes"]
        marks = []
        start = time.perf_counter()
        for i in range(args.soak):
            ruleset.evaluate(messages[i % len(messages)])
            if i + 1 in (args.soak // 10, args.soak):
                gc.collect()
                marks.append(rss_mb())
        soak_s = time.perf_counter() - start
        print(f"memory over {args.soak:,} durable-rules evaluations: {marks[0]:.1f} MB after {args.soak // 10:,}, "
              f"{marks[1]:.1f} MB after {args.soak:,} (growth {marks[1] - marks[0]:+.1f} MB), live sessions {ruleset.live_sessions}, {args.soak / soak_s:,.0f}/s")
    print(f"ratio {timings['durable-rules'] / floor:.2f}")


if __name__ == "__main__":
    main()

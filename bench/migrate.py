"""Migration preview of a whole cohort to new pathway versions (issue 25, item 6).

Set-up, not timed: synthetic enrollments over the three pathways (bench/rules.py's patients),
each advanced once at enrollment and stored with its facts, as `pathways run` leaves them; then a
new version of each pathway with changed thresholds and a changed review interval (EDITS below),
published into the same store, as a coordinator does with `pathways publish`.

Timed, in ``--rounds`` rounds (default 3), each for its own preview date: ``migrate.preview``
of every pathway (orchestration/migrate.py: states and facts read from the store batch by batch,
each enrollment carried over and advanced under both versions, compared, the preview stored with
its hash), and, in the same round, the floor: the bare evaluation of the same enrollments' rules
under both versions (``PathwayEvaluator.evaluate_many``, the facts already in memory), measured
once before and once after the preview (their mean counts: this machine's speed drifts).
Prints per round the preview's figures and its ratio, the peak memory before and after the
previews (flat: no whole-cohort object graphs), and as its last line ``ratio R``, the median of
the rounds' ratios (preview time / floor). Target: R <= 1.5.
Usage: python bench/migrate.py [--enrollments 10000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import random
import re
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

WORK = Path(tempfile.mkdtemp(prefix="pathways-bench-migrate-"))
os.environ["PATHWAYS_DATABASE_URL"] = f"sqlite:///{WORK / 'store.db'}"
os.environ["PATHWAYS_PATH"] = str(WORK / "v1")
os.environ.pop("PATHWAYS_ROLE", None)
os.environ["DO_NOT_TRACK"] = "1"

from pathways.clock import FixedClock  # noqa: E402
from pathways.orchestration import migrate  # noqa: E402
from pathways.orchestration.service import Runtimes, enrollment_id, ensure_published, open_store, publish  # noqa: E402
from pathways.runtime.core import enroll  # noqa: E402
from pathways.store.rows import state_json  # noqa: E402
from pathways.store.models import Enrollment, Patient  # noqa: E402
from rules import AT, synthetic  # noqa: E402

NAMES = ["diabetes", "copd", "heartfailure"]
BATCH = 500  # migrate.preview's default batch

# per pathway: thresholds (parameter -> new value) and a review interval (old timing -> new timing)
EDITS = {
    "diabetes": ({"hba1c_target_standard": "52", "macro_acr_men": "30"},
                 ("timing: {after: doelen_afspreken, at: [13w], every: 13w}", "timing: {after: doelen_afspreken, at: [12w], every: 12w}")),
    "copd": ({"spo2_refer": "93", "fev1_pct_severe": "45"},
             ("timing: {after: doelen_afspreken, at: [26w], every: 26w}", "timing: {after: doelen_afspreken, at: [24w], every: 24w}")),
    "heartfailure": ({"potassium_max": "5.4", "weight_gain_kg": "1.5"},
                     ("timing: {after: doelen_afspreken, at: [4w, 12w], every: 13w}",
                      "timing: {after: doelen_afspreken, at: [4w, 12w], every: 12w}")),
}


def bump(version: str) -> str:
    major, minor, _ = version.split(".")
    return f"{major}.{int(minor) + 1}.0"


def new_version(folder: Path, name: str) -> str:
    """Edit the copy of ``name`` in ``folder``: its thresholds, one review interval, its version."""
    file = folder / name / "pathway.yaml"
    text = file.read_text(encoding="utf-8")
    parameters, (old, new) = EDITS[name]
    for parameter, value in parameters.items():
        text, n = re.subn(rf"(\n  {parameter}:\n(?:    .*\n)*?    value: )[^\n]+", rf"\g<1>{value}", text, count=1)
        assert n == 1, (name, parameter)
    assert text.count(old) == 1, (name, old)
    text = text.replace(old, new)
    version = re.search(r"^version: (\S+)$", text, re.M).group(1)
    text = text.replace(f"\nversion: {version}\n", f"\nversion: {bump(version)}\n", 1)
    file.write_text(text, encoding="utf-8")
    return bump(version)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--enrollments", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    shutil.copytree(ROOT / "pathways", WORK / "v1")
    shutil.copytree(ROOT / "pathways", WORK / "v2")
    clock = FixedClock(dt.datetime(AT.year, AT.month, AT.day, 12, tzinfo=dt.timezone.utc))
    store = open_store(clock)
    old_runtimes = Runtimes(templates=False)
    rnd = random.Random(7)
    per = args.enrollments // len(NAMES)
    patients: dict[str, list] = {name: [] for name in NAMES}
    start = time.perf_counter()
    for name in NAMES:
        ensure_published(store, old_runtimes.get(name))
    with store.transaction() as session:  # as `pathways run` leaves them: enrolled and advanced once, with their facts
        for name in NAMES:
            runtime = old_runtimes.get(name)
            for i in range(per):
                facts = synthetic(name, i, rnd)
                patients[name].append(facts)
                eid = enrollment_id(runtime.loaded, facts.patient)
                state = enroll(runtime.loaded, eid, facts.patient, AT, runtime.evaluator)
                state, _, _ = runtime.advance(state, facts, clock)
                session.add(Patient(id=facts.patient, created_at=clock.now()))
                session.flush()
                store._append(session, facts.patient, facts, "bench")
                session.add(Enrollment(id=eid, patient_id=facts.patient, pathway=name, version=state.version, version_key=state.version_key,
                                       enrolled_on=AT, as_of=AT, state=state_json(state), state_version=0, updated_at=clock.now()))
    targets = {name: new_version(WORK / "v2", name) for name in NAMES}
    os.environ["PATHWAYS_PATH"] = str(WORK / "v2")
    new_runtimes = Runtimes(templates=False)
    for name in NAMES:
        runtime = new_runtimes.get(name)
        publish(store, runtime.loaded, runtime.evaluator.plan.version_key)
    total = per * len(NAMES)
    print(f"set-up: {total:,} enrollments stored and advanced once, new versions {targets} published, "
          f"in {time.perf_counter() - start:.1f} s ({WORK})")
    olds = {name: old_runtimes.get(name).evaluator for name in NAMES}
    news = {name: new_runtimes.get(name).evaluator for name in NAMES}
    for name in NAMES:  # each version's rules compiled and loaded, as a preview made twice finds them
        olds[name].evaluate_many(patients[name][:1], AT, AT)
        news[name].evaluate_many(patients[name][:1], AT, AT)

    def floor(at: dt.date) -> float:
        """The bare evaluation of every enrollment's rules under both versions (facts in memory)."""
        gc.collect()
        began = time.perf_counter()
        for name in NAMES:
            for i in range(0, len(patients[name]), BATCH):  # in the preview's batches
                olds[name].evaluate_many(patients[name][i:i + BATCH], at, at)
                news[name].evaluate_many(patients[name][i:i + BATCH], at, at)
        return time.perf_counter() - began

    runtimes = Runtimes(templates=False)
    for name in NAMES:  # the versions loaded from the trail and their rules compiled once, as in a long-running process
        for key in {key for _, key in store.published_versions(name)}:
            runtimes.get_version(key, store).evaluator.evaluate_many(patients[name][:1], AT, AT)
    floor(AT)  # the floor's own peak memory is reached before the previews' is measured
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ratios = []
    for k in range(1, args.rounds + 1):
        at = AT + dt.timedelta(days=27 + k)  # a date of its own per round: each preview is a new one, stored
        before = floor(at)
        gc.collect()
        began = time.perf_counter()
        summary = {}
        for name in NAMES:
            made = migrate.preview(store, runtimes, name, targets[name], at)
            summary[name] = (made.enrollments, made.unchanged, len(made.changed), len(made.blocked))
        previewing = time.perf_counter() - began
        after = floor(at)
        bare = (before + after) / 2
        ratios.append(previewing / bare)
        counted = sum(s[0] for s in summary.values())
        assert counted == total, (counted, total)
        print(f"round {k} (at {at}): preview of {counted:,} enrollments {previewing:.1f} s ({counted / previewing:,.0f}/s); "
              + "; ".join(f"{n}: {c} unchanged {u}, changed {ch}, blocked {b}" for n, (c, u, ch, b) in summary.items())
              + f"; floor (both versions' rules, facts in memory) {bare:.1f} s ({before:.1f} before, {after:.1f} after); "
              f"ratio {previewing / bare:.2f}", flush=True)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory: {rss_before:.0f} MB after set-up and warm-up, {rss_after:.0f} MB after {args.rounds} rounds of previews")
    if len(ratios) > 1:
        print(f"the {len(ratios)} rounds' ratios: {', '.join(f'{r:.2f}' for r in ratios)}; their median:")
    print(f"ratio {statistics.median(ratios):.2f}")
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()

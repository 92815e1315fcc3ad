"""Replay: a store written by earlier code (tests/fixtures/stores/replay.db, see the README there)
advanced further with today's code reaches exactly the decisions it reached when it was written
(replay.expected.json), on the pathway versions it published, and its trail stays intact
(issue 25, item 5). A change of the expectation needs a documented reason."""

from __future__ import annotations

import json
import shutil
import sqlite3
from contextlib import closing

import pytest

from conftest import FIXTURES, PATHWAYS_DIR, run_cli

STORES = FIXTURES / "stores"


def decisions_after(db, last: int) -> tuple[list[dict], int]:
    """As scripts/replay-store.py reads them: the decisions with a row id above ``last``, sorted."""
    with closing(sqlite3.connect(db)) as c:
        rows = c.execute("select id, enrollment_id, step, kind, due_on, decided_on, version_key, reasons "
                         "from decision where id > ?", (last,)).fetchall()
    found = [{"enrollment": e, "step": s, "kind": k, "due_on": due, "decided_on": on, "version_key": v, "reasons": json.loads(r)}
             for _, e, s, k, due, on, v, r in rows]
    found.sort(key=lambda d: (d["enrollment"], d["step"] or "", d["due_on"], d["kind"]))
    return found, max([last] + [row[0] for row in rows])


@pytest.mark.slow
def test_the_replay_store_advances_to_the_same_decisions_with_this_code(tmp_path):
    expected = json.loads((STORES / "replay.expected.json").read_text(encoding="utf-8"))
    db = tmp_path / "store.db"
    shutil.copy(STORES / expected["store"], db)
    with closing(sqlite3.connect(db)) as c:
        pinned = dict(c.execute("select id, version_key from enrollment").fetchall())
        formats = {t.startswith('{"format":') for (t,) in c.execute("select state from enrollment")}
    assert {k.split("@")[0] for k in pinned.values()} == {"diabetes", "copd", "heartfailure"}
    assert formats == {True}
    # the files on disk are not what runs: found first, they say another HbA1c target than the
    # version the store published (the expected reasons name 53 mmol/mol)
    shutil.copytree(PATHWAYS_DIR, tmp_path / "edited")
    diabetes = tmp_path / "edited" / "diabetes" / "pathway.yaml"
    text = diabetes.read_text(encoding="utf-8")
    old = "  hba1c_target_standard:\n    title: HbA1c-streefwaarde (< 70 jaar; >= 70 jaar met leefstijl en/of metformine)\n    value: 53\n"
    assert text.count(old) == 1
    diabetes.write_text(text.replace(old, old.replace("value: 53", "value: 52")), encoding="utf-8")
    env = {"PATHWAYS_DATABASE_URL": f"sqlite:///{db}", "PREFECT_HOME": str(tmp_path / "prefect"),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PATHWAYS_PATH": str(tmp_path / "edited")}
    _, last = decisions_after(db, 0)
    assert sum(len(a["decisions"]) for a in expected["advances"]) >= 5
    for advance in expected["advances"]:
        done = run_cli("advance", "--due", "--at", advance["at"], cwd=tmp_path, env={**env, "PATHWAYS_TODAY": advance["at"]})
        assert done.returncode == 0, done.stderr[-3000:]
        found, last = decisions_after(db, last)
        assert found == advance["decisions"], f"advance on {advance['at']}"
    with closing(sqlite3.connect(db)) as c:
        assert dict(c.execute("select id, version_key from enrollment").fetchall()) == pinned
    verified = run_cli("audit", "verify", cwd=tmp_path, env={**env, "PATHWAYS_TODAY": expected["advances"][-1]["at"]})
    assert verified.returncode == 0, verified.stdout + verified.stderr

"""A state written by a newer pathways, met by the real command: one clear line and nothing changes
(the formats and their upgrades are in tests/unit/test_stateformat.py)."""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing

import pytest

from conftest import FIXTURES, run_cli
from pathways.runtime.stateformat import FORMAT


@pytest.mark.slow
def test_a_state_written_by_a_newer_pathways_is_one_clear_line_and_nothing_changes(tmp_path):
    shutil.copy(FIXTURES / "stores" / "c6acbe4.db", tmp_path / "store.db")
    with closing(sqlite3.connect(tmp_path / "store.db")) as c, c:
        eid, text = c.execute("select id, state from enrollment where pathway = 'copd'").fetchone()
        c.execute("update enrollment set state = ? where id = ?", ('{"format":99,' + text[1:], eid))
    env = {"PATHWAYS_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}", "PATHWAYS_TODAY": "2026-12-20",
           "PREFECT_HOME": str(tmp_path / "prefect")}
    message = (f"error: enrollment '{eid}': the stored state has format 99, written by a newer pathways "
               f"(this one reads formats 1 to {FORMAT}): upgrade pathways")
    done = run_cli("status", eid, env=env)
    assert done.returncode == 1, done.stdout
    assert done.stderr.strip().splitlines() == [message]
    with closing(sqlite3.connect(tmp_path / "store.db")) as c:
        decisions = c.execute("select count(*) from decision").fetchone()
    done = run_cli("advance", "--due", "--at", "2027-01-14", env=env)  # refused before any flow run starts
    assert done.returncode == 1, done.stdout
    assert done.stderr.strip().splitlines() == [message + " (nothing advanced)"]
    with closing(sqlite3.connect(tmp_path / "store.db")) as c:
        assert c.execute("select count(*) from decision").fetchone() == decisions
        assert c.execute("select distinct as_of from enrollment").fetchall() == [("2026-12-10",)]
    with closing(sqlite3.connect(tmp_path / "store.db")) as c:
        assert c.execute("select state from enrollment where id = ?", (eid,)).fetchone() == ('{"format":99,' + text[1:],)

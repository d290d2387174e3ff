"""Every scenario runs under the real local runtime (`wrangler dev`, pinned in package.json)
and in cdpkit's `local` profile; every delivery is compared: the same batches, with the
same messages in the same order and the same attempts, at the same time within TOLERANCE.

The real run happens once per test session (all scenarios at once, concurrently, in one
`wrangler dev`); it is required, never skipped: a missing wrangler is a failure.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cdpkit_runner import run_scenario  # noqa: E402
from scenarios import SCENARIOS  # noqa: E402
from wrangler_runner import run_scenarios  # noqa: E402

pytestmark = pytest.mark.conformance

# Real deliveries lag virtual ones by request round trips and timer granularity (ms), and
# wrangler dev's broker awaits log writes between steps; 0.35 s is below every batch
# timeout used in the scenarios (>= 1 s), so a wrong flush decision cannot hide in it.
# Measured lag of the real runtime: 0.00-0.20 s.
TOLERANCE = 0.35


def real_run(tmp_path_factory, name: str) -> dict:
    results = run_scenarios(SCENARIOS, workdir=tmp_path_factory.mktemp("wrangler"))
    # keep what the real runtime did, for whoever debugs a failure
    (tmp_path_factory.getbasetemp() / f"{name}.json").write_text(json.dumps(results, indent=1, sort_keys=True))
    return results


@pytest.fixture(scope="session")
def real_deliveries(tmp_path_factory):
    return real_run(tmp_path_factory, "wrangler_deliveries")


SECOND_RUN: list[dict] = []      # a second real run, made at most once per session


@pytest.fixture
def second_real_run(tmp_path_factory):
    """A second, fresh `wrangler dev` run of every scenario, for timing only: a freshly
    started wrangler dev once delivered one scenario's batches ~0.37 s late, all of them by
    the same amount, with the same batches (clean-clone CI, 2026-12-02). A scenario whose
    batches are right and whose times are not must then match this second run within the
    same tolerance: a flush decision made at the wrong time still fails."""
    def run() -> dict:
        if not SECOND_RUN:
            SECOND_RUN.append(real_run(tmp_path_factory, "wrangler_deliveries_second_run"))
        return SECOND_RUN[0]
    return run


def shape(deliveries: list[dict]) -> list[tuple]:
    return [(d["queue"], d["batch"], [(m["k"], m["attempts"]) for m in d["messages"]])
            for d in deliveries]


def test_there_are_enough_scenarios():
    assert len(SCENARIOS) >= 15
    assert len({s["name"] for s in SCENARIOS}) == len(SCENARIOS)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s["name"] for s in SCENARIOS])
def test_scenario_matches_wrangler_dev(scenario, real_deliveries, second_real_run):
    runs = [real_deliveries]
    while True:
        real = runs[-1][scenario["name"]]["deliveries"]
        ours, rt = run_scenario(scenario, semantics="local", sent=runs[-1][scenario["name"]]["sent"])
        assert shape(ours) == shape(real), (
            f"deliveries differ\n real:   {shape(real)}\n cdpkit: {shape(ours)}")
        late = [(o["queue"], o["batch"], round(r["t"], 3), o["t"])
                for o, r in zip(ours, real) if abs(o["t"] - r["t"]) > TOLERANCE]
        if not late or len(runs) == 2:
            break
        runs.append(second_real_run())        # right batches, late times: once more, fresh
    assert not late, f"(queue, batch, real t, cdpkit t) beyond {TOLERANCE}s in {len(runs)} real runs: {late}"
    rt.check_conservation()

"""Scenario expectations computed from a drill's recorded history (pure)."""

from __future__ import annotations

from hastack.drills.backup_failover import backup_failover_expectations
from hastack.drills.checker import Verdict
from hastack.drills.cluster_loss import loss_allowed_after
from hastack.drills.events import Ack, Failure, History
from hastack.drills.http_workload import NO_DB_CLIENT
from hastack.drills.region_loss import loss_allowed_after as region_loss_allowed_after
from hastack.drills.scenarios import scenario
from hastack.drills.timeline import PhaseTimes, ReportInput, build_report
from hastack.spec import StackSpec, derive_plan

PLAN = derive_plan(StackSpec())


def report_of(history: History) -> dict[str, bool]:
    r = ReportInput(
        plan=PLAN,
        scenario=scenario("db-failover-under-http-load"),
        history=history,
        verdict=Verdict(),
        times=PhaseTimes(start=0.0, t0=10.0, end=30.0),
        started_at="2026-11-27T00:00:00+00:00",
        old_primary="pg1",
        new_primary="pg2",
        fencing=True,
        fencer_marks=[],
        timelines={},
    )
    return {e["what"].split(" (")[0]: e["ok"] for e in build_report(r).expectations}


def test_requests_that_need_no_database_must_keep_succeeding_through_a_failover() -> None:
    history = History()
    for t in (11.0, 12.0, 13.0):
        history.ack(Ack(NO_DB_CLIENT, int(t), t - 0.01, t, None))
    history.fail(Failure("http-post1", None, 12.0, "503", "HTTP 503 Retry-After 1: database"))
    found = report_of(history)
    assert found["requests that need no database kept succeeding"] is True

    history.fail(Failure(NO_DB_CLIENT, None, 12.5, "503", "HTTP 503: no server available"))
    assert report_of(history)["requests that need no database kept succeeding"] is False


def test_a_client_that_sent_nothing_proves_nothing() -> None:
    assert report_of(History())["requests that need no database kept succeeding"] is False


def cluster_loss_expectations_of(
    history: History, lost: list[int], name: str = "cluster-loss"
) -> dict[str, bool]:
    """The expectations of a drill that loses the newest writes by design, by their text up
    to the first colon or parenthesis."""
    verdict = Verdict()
    verdict.lost_acked_writes = lost
    r = ReportInput(
        plan=PLAN,
        scenario=scenario(name),
        history=history,
        verdict=verdict,
        times=PhaseTimes(start=0.0, t0=10.0, end=60.0),
        started_at="2026-11-27T00:00:00+00:00",
        old_primary="pg1",
        new_primary="pg1",
        fencing=True,
        fencer_marks=[],
        timelines={},
    )
    return {e["what"].split(":")[0].split(" (")[0]: e["ok"] for e in build_report(r).expectations}


def test_cluster_loss_rpo_is_held_against_archive_timeout() -> None:
    history = History()
    for i in range(1, 201):  # one write every 0.1 s, from t=0 to the fault at t=20
        history.ack(Ack("url", i, i * 0.1 - 0.01, i * 0.1, "pg1"))
    history.facts["cluster_loss"] = {"t_fault": 20.0, "restore_streaming_s": 25.0}
    bound = PLAN.spec.backup.archive_timeout_s + 2.0
    within = [i for i in range(1, 201) if i * 0.1 > 20.0 - bound + 0.5]
    found = cluster_loss_expectations_of(history, within)
    assert found == {
        "the cluster restored from the repository, every node streaming": True,
        "RPO": True,
    }
    found = cluster_loss_expectations_of(history, list(range(1, 201)))
    assert found["RPO"] is False  # writes 20 s old were lost: more than the archive lag
    history.facts["cluster_loss"] = {"t_fault": 20.0, "error": "the restore failed"}
    assert (
        cluster_loss_expectations_of(history, [])["the cluster restored from the repository"]
        is False
    )


def test_cluster_loss_allows_loss_only_after_the_last_archived_segment() -> None:
    history = History()
    assert loss_allowed_after(PLAN, history) is None  # no fault, nothing may be lost
    history.facts["cluster_loss"] = {"t_fault": 100.0}
    # The leader could not say: the archive_timeout bound.
    assert loss_allowed_after(PLAN, history) == 100.0 - PLAN.spec.backup.archive_timeout_s - 2.0
    history.facts["cluster_loss"] = {"t_fault": 100.0, "last_archived_mono": 97.0}
    assert loss_allowed_after(PLAN, history) == 96.0


def test_a_backup_interrupted_by_a_failover_must_end_cleanly() -> None:
    def verdicts(mine: dict[str, object], gap: float = 2.0) -> list[bool]:
        return [e["ok"] for e in backup_failover_expectations({"backup_failover": mine}, gap)]

    after = {"next_backup": {"ok": True, "label": "L2"}, "check": {"ok": True}}
    failed = {"backup": {"ok": False, "error": "exit 56"}, "new_good_sets": [], **after}
    assert verdicts(failed) == [True, True, True, True]
    # failed, yet a new set is listed as restorable: not clean
    assert verdicts({**failed, "new_good_sets": ["L1"]})[0] is False
    # hastack itself crashed: not clean
    assert (
        verdicts({**failed, "backup": {"ok": False, "error": "KeyError", "bug": True}})[0] is False
    )
    done = {"backup": {"ok": True, "label": "L1"}, "new_good_sets": ["L1", "L2"], **after}
    assert verdicts(done) == [True, True, True, True]
    assert verdicts({})[0] is False  # no outcome at all
    assert verdicts({**failed, "check": {"ok": False, "output": "x"}})[2] is False
    assert verdicts({**failed, "next_backup": {"ok": False, "error": "y"}})[1] is False
    assert verdicts(failed, gap=7.5)[3] is False


def region_loss_expectations_of(history: History, lost: list[int]) -> dict[str, bool]:
    return cluster_loss_expectations_of(history, lost, "region-loss")


def test_region_loss_rpo_is_held_against_the_reported_lag() -> None:
    history = History()
    for i in range(1, 201):  # one write every 0.1 s until the fault at t=20
        history.ack(Ack("url", i, i * 0.1 - 0.01, i * 0.1, "pg1"))
    history.facts["region_loss"] = {"t_fault": 20.0, "replay_lag_s": 0.5, "promote_writable_s": 1.0}
    # Bound: lag 0.5 s + margin 1 s (no latency in the default spec): writes of the last
    # 1.5 s may be missing, anything older may not.
    found = region_loss_expectations_of(history, [i for i in range(1, 201) if i * 0.1 > 18.6])
    assert found == {"the standby promoted and writable 1.0 s after the request": True, "RPO": True}
    assert region_loss_expectations_of(history, [150])["RPO"] is False  # 5 s old: lost
    history.facts["region_loss"] = {"t_fault": 20.0, "promote_writable_s": 30.0}
    assert (
        region_loss_expectations_of(history, [])[
            "the standby promoted and writable 30.0 s after the request"
        ]
        is False
    )  # the target is 15 s
    # A write the promoted standby acknowledged after the fault is never allowed to be lost.
    history.ack(Ack("url", 500, 25.0, 25.1, "dr2"))
    history.facts["region_loss"] = {"t_fault": 20.0, "replay_lag_s": 0.5, "promote_writable_s": 1.0}
    found = region_loss_expectations_of(history, [500])
    assert found["RPO"] is False
    assert region_loss_allowed_after(PLAN, History()) is None
    history.facts["region_loss"] = {"t_fault": 20.0}
    assert region_loss_allowed_after(PLAN, history) == 19.0  # no lag reported: margin only

"""The checker must catch every kind of broken promise it is fed."""

from __future__ import annotations

from collections import Counter

from hastack.drills.checker import CheckInput, NodeData, check, dual_primary_samples
from hastack.drills.events import Ack, RoleSample

TOTAL = 100_000


def acks(node_by_id: dict[int, str], writer: str = "url", start: float = 0.0) -> list[Ack]:
    """One ack per id, 10 ms apart, in id order."""
    return [
        Ack(writer, op_id, start + i * 0.01, start + i * 0.01 + 0.005, node)
        for i, (op_id, node) in enumerate(sorted(node_by_id.items()))
    ]


def node(
    name: str,
    ids: list[int],
    transfers: list[int] | None = None,
    total: int = TOTAL,
    digest: str = "d",
    timeline: int = 2,
) -> NodeData:
    return NodeData(name, Counter(ids), Counter(transfers or []), total, digest, timeline)


def failover_history() -> list[Ack]:
    """pg1 acknowledged 1..50, then pg2 (after a failover) 51..100."""
    return acks({i: ("pg1" if i <= 50 else "pg2") for i in range(1, 101)})


def healthy_input(**changes: object) -> CheckInput:
    ids = list(range(1, 101))
    base = CheckInput(
        primary="pg2",
        acked_writes=failover_history(),
        acked_transfers=[
            Ack("transfer", 1001, 0.20, 0.21, "pg1"),
            Ack("transfer", 1002, 0.80, 0.81, "pg2"),
        ],
        nodes=[node(n, ids, [1001, 1002]) for n in ("pg1", "pg2", "pg3")],
        expected_total=TOTAL,
    )
    return CheckInput(**{**base.__dict__, **changes})  # type: ignore[arg-type]


def test_a_clean_failover_passes() -> None:
    verdict = check(healthy_input())
    assert verdict.passed, verdict.problems
    assert verdict.rpo_lost_acked_writes == 0 and not verdict.split_brain


def test_a_lost_acknowledged_write_is_caught() -> None:
    ids = [i for i in range(1, 101) if i != 42]
    nodes = [node(n, ids, [1001, 1002]) for n in ("pg1", "pg2", "pg3")]
    verdict = check(healthy_input(nodes=nodes))
    assert verdict.lost_acked_writes == [42]
    assert verdict.rpo_lost_acked_writes == 1
    assert not verdict.passed


def test_a_lost_transfer_is_caught() -> None:
    nodes = [node(n, list(range(1, 101)), [1001]) for n in ("pg1", "pg2", "pg3")]
    verdict = check(healthy_input(nodes=nodes))
    assert verdict.lost_acked_transfers == [1002]


def test_an_unacknowledged_row_is_fine() -> None:
    """A commit cut mid-acknowledgement may be present: present but not acked is no loss."""
    ids = [*range(1, 101), 101]
    nodes = [node(n, ids, [1001, 1002]) for n in ("pg1", "pg2", "pg3")]
    assert check(healthy_input(nodes=nodes)).passed


def test_a_duplicate_is_caught() -> None:
    ids = [*range(1, 101), 7]
    nodes = [node(n, ids, [1001, 1002]) for n in ("pg1", "pg2", "pg3")]
    verdict = check(healthy_input(nodes=nodes))
    assert verdict.duplicates == [7]
    assert not verdict.passed


def test_a_broken_invariant_is_caught_on_the_node_that_has_it() -> None:
    nodes = [
        node("pg1", list(range(1, 101)), [1001, 1002]),
        node("pg2", list(range(1, 101)), [1001, 1002]),
        node("pg3", list(range(1, 101)), [1001, 1002], total=TOTAL - 5),
    ]
    verdict = check(healthy_input(nodes=nodes))
    assert not verdict.invariant_ok
    assert any("pg3" in p and "99995" in p for p in verdict.problems)


def test_a_node_that_did_not_converge_is_caught() -> None:
    nodes = [
        node("pg1", list(range(1, 60)), [1001, 1002], digest="x", timeline=1),
        node("pg2", list(range(1, 101)), [1001, 1002]),
        node("pg3", list(range(1, 101)), [1001, 1002]),
    ]
    verdict = check(healthy_input(nodes=nodes))
    assert not verdict.converged
    (problem,) = verdict.problems
    assert "pg1 has not converged with pg2" in problem
    assert "41 missing" in problem and "timeline 1 vs 2" in problem


def test_two_primaries_acknowledging_in_turn_is_split_brain() -> None:
    # pg1 acks 1..50, pg2 takes over at 51, but pg1 acknowledges 80 and 81 afterwards.
    history = acks({i: ("pg2" if i > 50 and i not in (80, 81) else "pg1") for i in range(1, 101)})
    verdict = check(healthy_input(acked_writes=history))
    assert verdict.split_brain
    assert any(
        "pg1 acknowledged url/81" in p and "after pg2 had taken over" in p for p in verdict.problems
    )


def test_an_ack_that_started_before_the_takeover_is_not_split_brain() -> None:
    """pg1's last commit began before pg2's first ack and finished just after: one primary,
    slow acknowledgement (e.g. the sync standby answering late)."""
    history = [
        Ack("url", 1, 0.00, 0.01, "pg1"),
        Ack("direct", 2, 0.50, 3.10, "pg1"),
        Ack("url", 3, 2.90, 3.00, "pg2"),
        Ack("url", 4, 3.20, 3.30, "pg2"),
    ]
    assert not check(healthy_input(acked_writes=history, acked_transfers=[])).split_brain


def test_dual_primary_probe_samples_are_counted() -> None:
    samples = [
        RoleSample("pg1", 0.0, 0.1, "primary"),
        RoleSample("pg2", 0.05, 0.15, "primary"),
        RoleSample("pg3", 0.05, 0.15, "replica"),
        RoleSample("pg1", 1.0, 1.1, "primary"),
        RoleSample("pg2", 2.0, 2.1, "primary"),
    ]
    assert dual_primary_samples(samples) == 1


def test_an_unreadable_primary_fails_the_check() -> None:
    verdict = check(healthy_input(primary="pg9"))
    assert not verdict.passed and "pg9 could not be read" in verdict.problems[0]


def test_cluster_loss_may_lose_only_writes_acknowledged_inside_its_window() -> None:
    """Writes 1..100 acknowledged 10 ms apart from t=0; the restored cluster holds 1..80."""
    kept = list(range(1, 81))
    nodes = [node(n, kept, [1001, 1002]) for n in ("pg1", "pg2", "pg3")]
    # Loss allowed from t=0.75 on: ids 76.. may go; 81..100 went (all inside the window).
    verdict = check(healthy_input(nodes=nodes, loss_allowed_after=0.75))
    assert verdict.passed, verdict.problems
    assert verdict.rpo_lost_acked_writes == 20 and verdict.lost_allowed == 20
    # The window starting later: ids 81..85 were acknowledged before it and are a failure.
    verdict = check(healthy_input(nodes=nodes, loss_allowed_after=0.85))
    assert not verdict.passed
    assert verdict.lost_allowed == 15
    assert any("5 acknowledged writes missing" in p for p in verdict.problems), verdict.problems
    # Without a window, every lost write fails the run.
    verdict = check(healthy_input(nodes=nodes))
    assert any("20 acknowledged writes missing" in p for p in verdict.problems)

"""The consistency checker: pure functions of what the workload was told and what every node
holds once the cluster has healed and converged.

It answers: was an acknowledged write lost? applied twice? does the bank invariant hold on
every node? do all nodes hold the same data? were there ever two writable primaries?
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from hastack.drills.events import Ack, RoleSample


@dataclass(frozen=True)
class NodeData:
    """What one node holds after the drill (read directly from it)."""

    node: str
    write_ids: Counter[int]
    transfer_ids: Counter[int]
    balance_total: int
    accounts_digest: str
    timeline: int | None = None


@dataclass(frozen=True)
class CheckInput:
    primary: str
    acked_writes: Sequence[Ack]
    acked_transfers: Sequence[Ack]
    nodes: Sequence[NodeData]
    expected_total: int
    samples: Sequence[RoleSample] = ()
    loss_allowed_after: float | None = None
    """Writes acknowledged at or after this time may be missing: the cluster-loss drill, where
    the WAL not yet archived when every node was lost is gone with them. They still count in
    the RPO; a missing write acknowledged before it is a failure as always."""


@dataclass
class Verdict:
    lost_acked_writes: list[int] = field(default_factory=list)
    lost_acked_transfers: list[int] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    invariant_ok: bool = True
    converged: bool = True
    split_brain: bool = False
    dual_primary_samples: int = 0
    """Probe rounds in which two nodes answered "not in recovery" at overlapping times. A node
    can do that briefly after waking from a freeze and still be unable to acknowledge a commit
    (its synchronous standby is gone); the ack-based check below is the verdict."""
    problems: list[str] = field(default_factory=list)
    lost_allowed: int = 0
    """Of the lost writes and transfers, those acknowledged inside the allowed window."""

    @property
    def rpo_lost_acked_writes(self) -> int:
        return len(self.lost_acked_writes) + len(self.lost_acked_transfers)

    @property
    def passed(self) -> bool:
        return not self.problems


def check(data: CheckInput) -> Verdict:
    verdict = Verdict()
    nodes = {n.node: n for n in data.nodes}
    primary = nodes.get(data.primary)
    if primary is None:
        verdict.converged = False
        verdict.problems.append(f"the primary {data.primary} could not be read")
        return verdict
    _check_lost_and_duplicates(data, primary, verdict)
    _check_invariant(data, verdict)
    _check_convergence(data, primary, verdict)
    _check_split_brain(data, verdict)
    return verdict


def _check_lost_and_duplicates(data: CheckInput, primary: NodeData, verdict: Verdict) -> None:
    lost_writes = [a for a in data.acked_writes if primary.write_ids[a.op_id] == 0]
    lost_transfers = [a for a in data.acked_transfers if primary.transfer_ids[a.op_id] == 0]
    verdict.lost_acked_writes = sorted(a.op_id for a in lost_writes)
    verdict.lost_acked_transfers = sorted(a.op_id for a in lost_transfers)
    verdict.duplicates = sorted(
        {i for i, n in primary.write_ids.items() if n > 1}
        | {i for i, n in primary.transfer_ids.items() if n > 1}
    )
    since = data.loss_allowed_after

    def forbidden(acks: list[Ack]) -> list[int]:
        return sorted(a.op_id for a in acks if since is None or a.t_end < since)

    bad_writes, bad_transfers = forbidden(lost_writes), forbidden(lost_transfers)
    verdict.lost_allowed = len(lost_writes) + len(lost_transfers) - len(bad_writes)
    verdict.lost_allowed -= len(bad_transfers)
    window = "" if since is None else " (acknowledged before the window where loss is allowed)"
    if bad_writes:
        verdict.problems.append(
            f"{len(bad_writes)} acknowledged writes missing on {primary.node}{window} "
            f"(first ids: {bad_writes[:5]})"
        )
    if bad_transfers:
        verdict.problems.append(
            f"{len(bad_transfers)} acknowledged transfers missing on {primary.node}{window} "
            f"(first ids: {bad_transfers[:5]})"
        )
    if verdict.duplicates:
        verdict.problems.append(
            f"{len(verdict.duplicates)} operations applied more than once "
            f"(ids: {verdict.duplicates[:5]})"
        )


def _check_invariant(data: CheckInput, verdict: Verdict) -> None:
    for node in data.nodes:
        if node.balance_total != data.expected_total:
            verdict.invariant_ok = False
            verdict.problems.append(
                f"bank invariant broken on {node.node}: total balance {node.balance_total}, "
                f"expected {data.expected_total}"
            )


def _check_convergence(data: CheckInput, primary: NodeData, verdict: Verdict) -> None:
    for node in data.nodes:
        if node.node == primary.node:
            continue
        differences = []
        if node.write_ids != primary.write_ids:
            missing = len(primary.write_ids - node.write_ids)
            extra = len(node.write_ids - primary.write_ids)
            differences.append(f"writes: {missing} missing, {extra} extra")
        if node.transfer_ids != primary.transfer_ids:
            differences.append("transfers differ")
        if node.accounts_digest != primary.accounts_digest:
            differences.append("account balances differ")
        timelines = (node.timeline, primary.timeline)
        if None not in timelines and node.timeline != primary.timeline:
            differences.append(f"timeline {node.timeline} vs {primary.timeline}")
        if differences:
            verdict.converged = False
            verdict.problems.append(
                f"{node.node} has not converged with {primary.node}: " + "; ".join(differences)
            )


def _check_split_brain(data: CheckInput, verdict: Verdict) -> None:
    verdict.dual_primary_samples = dual_primary_samples(data.samples)
    interleaved = interleaved_acks([*data.acked_writes, *data.acked_transfers])
    if interleaved:
        verdict.split_brain = True
        verdict.problems.append(f"split brain: {interleaved}")


def interleaved_acks(acks: Sequence[Ack]) -> str | None:
    """Two primaries acknowledging in turn: node A, the earlier primary, acknowledged a write
    it started after node B had acknowledged its first one. A failover gives A...A B...B;
    anything else is split brain. Returns a sentence naming the writes, or None."""
    first: dict[str, Ack] = {}
    last: dict[str, Ack] = {}
    for ack in acks:
        if ack.node is None:
            continue
        if ack.node not in first or ack.t_end < first[ack.node].t_end:
            first[ack.node] = ack
        if ack.node not in last or ack.t_start > last[ack.node].t_start:
            last[ack.node] = ack
    for a, a_first in first.items():
        for b, b_first in first.items():
            if a == b or not a_first.t_end < b_first.t_start:
                continue
            a_last = last[a]
            if a_last.t_start > b_first.t_end:
                return (
                    f"{a} acknowledged {a_last.writer}/{a_last.op_id} (started at "
                    f"{a_last.t_start:.3f}) after {b} had taken over ({b_first.writer}/"
                    f"{b_first.op_id} acknowledged at {b_first.t_end:.3f})"
                )
    return None


def dual_primary_samples(samples: Sequence[RoleSample]) -> int:
    """Pairs of probes of different nodes, both answering primary, overlapping in time."""
    primaries = sorted((s for s in samples if s.role == "primary"), key=lambda s: s.t_start)
    count = 0
    for i, a in enumerate(primaries):
        for b in primaries[i + 1 :]:
            if b.t_start > a.t_end:
                break
            if b.node != a.node:
                count += 1
    return count

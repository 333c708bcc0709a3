from __future__ import annotations

import json
from pathlib import Path

import pytest

from hastack.runtime.ownership import Marker, OwnershipError, read_marker, require_features
from hastack.spec import StackSpec, derive_plan


def _old_marker() -> Marker:
    return Marker(stack="demo", created_at="2026-11-01T00:00:00+00:00", hastack_version="0.1.0")


def test_a_stack_whose_etcd_ran_without_tls_is_refused_with_the_way_out(tmp_path: Path) -> None:
    plan = derive_plan(StackSpec(state_dir=tmp_path))
    (plan.etcd_nodes[0].paths.etcd_data / "member").mkdir(parents=True)
    with pytest.raises(OwnershipError, match="etcd runs without TLS") as caught:
        require_features(plan, _old_marker())
    assert "hastack destroy --yes" in caught.value.hint
    assert not plan.paths.marker.exists()


def test_an_old_marker_without_etcd_data_gains_the_feature(tmp_path: Path) -> None:
    plan = derive_plan(StackSpec(state_dir=tmp_path))
    marker = _old_marker()
    require_features(plan, marker)
    assert json.loads(plan.paths.marker.read_text())["features"] == ["etcd-tls"]
    assert read_marker(plan.paths.marker) == marker

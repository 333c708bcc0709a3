from __future__ import annotations

import pytest

from hastack.ops.logs import UnknownLog, log_files
from hastack.spec import StackSpec, derive_plan


def test_log_files_of_nodes_services_and_app_instances() -> None:
    plan = derive_plan(StackSpec())
    state = plan.paths.state_dir
    assert log_files(plan, "pg2") == [state / "logs/pg2-patroni.log"]
    assert log_files(plan, "pg2", "etcd") == [state / "logs/pg2-etcd.log"]
    assert log_files(plan, "haproxy") == [state / "logs/haproxy.log"]
    assert log_files(plan, "app2") == [state / "logs/app2.log"]
    assert log_files(plan, "fencer") == [state / "logs/fencer.log"]


def test_unknown_log_target_lists_the_choices() -> None:
    plan = derive_plan(StackSpec())
    with pytest.raises(UnknownLog, match="app1, app2"):
        log_files(plan, "app3")
    with pytest.raises(UnknownLog, match="unknown component"):
        log_files(plan, "pg1", "nginx")

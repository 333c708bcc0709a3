from __future__ import annotations

from hastack.ops.audit import Entry, readable_by_others


def test_a_file_is_exposed_only_when_others_can_reach_and_read_it() -> None:
    entries = [
        Entry(".", 0o755, True),
        Entry("hastack-stack.json", 0o644, False),
        Entry("secrets", 0o700, True),
        Entry("secrets/postgres_password", 0o644, False),  # o+r, but behind a 0700 directory
        Entry("services", 0o755, True),
        Entry("services/redis", 0o711, True),  # searchable, not listable: still reachable
        Entry("services/redis/redis.conf", 0o644, False),
        Entry("services/redis/dump.rdb", 0o600, False),
    ]
    assert readable_by_others(entries) == ["hastack-stack.json", "services/redis/redis.conf"]


def test_a_private_state_directory_exposes_nothing() -> None:
    entries = [Entry(".", 0o700, True), Entry("hastack-stack.json", 0o644, False)]
    assert readable_by_others(entries) == []

"""`hastack logs --all`: each component's time stamp read, lines merged in time order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from hastack.ops.logmerge import Unplaced, line_time, merge, parse_since, timed_lines
from hastack.ops.logs import Follower

LOCAL = timezone(timedelta(hours=1))  # what a naive stamp means on this machine
AT = datetime(2026, 11, 28, 7, 33, 40, 485000, tzinfo=UTC)

SAMPLES = {
    "watcher": ("2026-11-28T07:33:40.485+00:00 no action: pg1 is the leader", AT),
    "patroni": ("2026-11-28 08:33:40,485 INFO: no action. I am (pg1)", AT),
    "pgbouncer": ("2026-11-28 07:33:40.485 UTC [11632] LOG listening on 127.0.213.100", AT),
    "pgbackrest": ("2026-11-28 08:33:40.485 P00   INFO: archive-push command begin", AT),
    "etcd": ('{"level":"info","ts":"2026-11-28T07:33:40.485Z","msg":"serving"}', AT),
    "app": ('{"time":"2026-11-28T07:33:40.485+00:00","level":"info","message":"request"}', AT),
    "prometheus": ('{"caller":"main.go:973","level":"info","ts":"2026-11-28T07:33:40.485Z"}', AT),
    "logfmt": ("ts=2026-11-28T07:33:40.485Z caller=tls_config.go:232 level=info", AT),
    "logrus": (
        'time="2026-11-28T07:33:40Z" level=info msg="Providing metrics"',
        AT.replace(microsecond=0),
    ),
    "redis": ("11635:M 28 Nov 2026 08:33:40.485 * Ready to accept connections", AT),
    "nanoseconds": ('{"ts":"2026-11-28T07:33:40.485123456Z"}', AT.replace(microsecond=485123)),
    "epoch": ('{"ts": 1795851220.485}', datetime.fromtimestamp(1795851220.485, UTC)),
}


@pytest.mark.parametrize("kind", list(SAMPLES))
def test_every_components_stamp_is_read(kind: str) -> None:
    line, expected = SAMPLES[kind]
    assert line_time(line, LOCAL) == expected


@pytest.mark.parametrize(
    "line",
    [
        "[NOTICE]   (11598) : New worker (11614) forked",
        "Traceback (most recent call last):",
        '{"level": "info", "msg": "no time here"}',
        "2026-13-45 99:99:99 not a date",
        "",
    ],
)
def test_lines_without_a_time_say_so(line: str) -> None:
    assert line_time(line, LOCAL) is None


def test_an_unstamped_line_follows_the_one_before_and_leading_ones_are_counted() -> None:
    unplaced = Unplaced()
    lines = [
        "started without a stamp",
        "2026-11-28T07:00:00+00:00 boom",
        "Traceback (most recent call last):",
        "",
        "2026-11-28T07:00:05+00:00 after",
    ]
    found = list(timed_lines("fencer", lines, UTC, unplaced))
    assert [(line.at.second, line.text) for line in found] == [
        (0, "2026-11-28T07:00:00+00:00 boom"),
        (0, "Traceback (most recent call last):"),
        (5, "2026-11-28T07:00:05+00:00 after"),
    ]
    assert unplaced.counts == {"fencer": 1}


def test_logs_merge_in_time_order_from_since_and_keep_the_last_n() -> None:
    a = list(timed_lines("a", [f"2026-11-28T07:00:0{s}+00:00 a{s}" for s in (0, 2, 4)], UTC))
    b = list(timed_lines("b", [f"2026-11-28 08:00:0{s},000 b{s}" for s in (1, 3)], LOCAL))
    assert [line.source for line in merge([a, b])] == ["a", "b", "a", "b", "a"]
    since = datetime(2026, 11, 28, 7, 0, 2, tzinfo=UTC)
    assert [line.text[-2:] for line in merge([a, b], since)] == ["a2", "b3", "a4"]
    assert [line.text[-2:] for line in merge([a, b], None, 2)] == ["b3", "a4"]


def test_a_file_written_a_little_out_of_order_still_merges_in_time_order() -> None:
    """etcd's and Patroni's threads write lines a few milliseconds out of order."""
    etcd = [
        '{"ts":"2026-11-28T08:02:23.948Z","msg":"serving metrics"}',
        '{"ts":"2026-11-28T08:02:23.947Z","msg":"serving peer traffic"}',
        "a continuation of the line before",
    ]
    merged = merge([list(timed_lines("pg1-etcd", etcd, UTC))])
    assert [line.text for line in merged] == [etcd[1], etcd[2], etcd[0]]


def test_following_starts_at_the_end_and_survives_rotation(tmp_path: Path) -> None:
    log = tmp_path / "app1.log"
    log.write_text("old line\n")
    follower = Follower(log)
    assert follower.new_lines() == []  # what was there before is not repeated
    with log.open("a") as handle:
        handle.write("first\nsecond\n")
    assert follower.new_lines() == ["first\n", "second\n"]
    log.rename(tmp_path / "app1.log.1")  # supervisord rotates
    log.write_text("after rotation\n")
    assert follower.new_lines() == []  # notices the new file...
    assert follower.new_lines() == ["after rotation\n"]  # ...and reads it from its start


def test_since_takes_a_duration_or_a_time() -> None:
    now = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
    assert parse_since("10m", now) == now - timedelta(minutes=10)
    assert parse_since("1.5h", now) == now - timedelta(minutes=90)
    assert parse_since("2026-11-28T07:30:00", now) == datetime(2026, 11, 28, 7, 30, tzinfo=UTC)
    assert parse_since("2026-11-28 07:30:00+01:00", now).hour == 7
    for bad in ("10 minutes", "yesterday", "-5m", ""):
        with pytest.raises(ValueError, match="give a duration"):
            parse_since(bad, now)

"""`hastack logs --all`: every component's log lines in one time-ordered view. Pure.

Each component stamps its lines its own way; `line_time` knows the ones in the stack:
- ISO 8601 at the start of the line: the watcher (`2026-11-28T07:33:42.048+00:00`), Patroni
  and supervisord (`2026-11-28 07:34:14,009`, local time), PostgreSQL and PgBouncer
  (`2026-11-28 07:33:40.485 UTC`), pgBackRest (`2026-11-28 07:08:02.922 P00`, local time),
  hastack's own scheduler and receiver;
- JSON lines with `ts`, `time` or `timestamp`: etcd, the app instances, and Prometheus,
  Alertmanager and the exporters (run with `--log.format=json`);
- logfmt `ts=` / `time="..."`: exporters that cannot write JSON;
- Redis (`11635:M 28 Nov 2026 07:33:40.699`, local time).
A line without a time of its own (a traceback, a continued message) belongs to the line
before it and takes its time; lines before a file's first stamped one cannot be placed and
are counted, not shown.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo

_ISO = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:[.,](\d{1,9}))?"
    r"(?:\s?(Z|UTC|[+-]\d{2}:?\d{2})(?![\d:]))?"
)
_LOGFMT = re.compile(r'(?:^|\s)(?:ts|time)="?(\d{4}-\d{2}-\d{2}[T ][^"\s]+)"?')
_REDIS = re.compile(r"^\d+:[A-Z] (\d{1,2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2})(?:\.(\d+))?")
_JSON_KEYS = ("ts", "time", "timestamp", "asctime")
_SINCE = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True, order=True)
class LogLine:
    at: datetime
    source: str = field(compare=False)
    text: str = field(compare=False)


def _zone(text: str | None, local: tzinfo) -> tzinfo:
    if text is None:
        return local
    if text in ("Z", "UTC"):
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))


def parse_time(text: str, local: tzinfo) -> datetime | None:
    """An ISO 8601-like time at the start of `text` (naive ones in `local`)."""
    match = _ISO.match(text.strip())
    if match is None:
        return None
    day, clock, fraction, zone = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        moment = datetime.fromisoformat(f"{day}T{clock}")
    except ValueError:
        return None
    return moment.replace(microsecond=micro, tzinfo=_zone(zone, local))


def line_time(line: str, local: tzinfo) -> datetime | None:
    """When `line` was written, if it says so."""
    stripped = line.lstrip()
    if stripped.startswith("{"):
        try:
            record = json.loads(stripped)
        except ValueError:
            record = None
        if isinstance(record, dict):
            for key in _JSON_KEYS:
                value = record.get(key)
                if isinstance(value, str) and (moment := parse_time(value, local)):
                    return moment
                if isinstance(value, int | float) and not isinstance(value, bool):
                    return datetime.fromtimestamp(float(value), UTC)
    if moment := parse_time(stripped, local):
        return moment
    if match := _REDIS.match(stripped):
        try:
            moment = datetime.strptime(match.group(1), "%d %b %Y %H:%M:%S")
        except ValueError:
            return None
        micro = int((match.group(2) or "0")[:6].ljust(6, "0"))
        return moment.replace(microsecond=micro, tzinfo=local)
    if match := _LOGFMT.search(stripped):
        return parse_time(match.group(1), local)
    return None


@dataclass
class Unplaced:
    """Per source, the lines that could not be given a time."""

    counts: dict[str, int] = field(default_factory=dict)


def timed_lines(
    source: str, lines: Iterable[str], local: tzinfo, unplaced: Unplaced | None = None
) -> Iterator[LogLine]:
    """`lines` of one file with their times (in the file's order): an unstamped line takes
    the time of the stamped line before it."""
    last: datetime | None = None
    for raw in lines:
        text = raw.rstrip("\n")
        if not text.strip():
            continue
        moment = line_time(text, local)
        if moment is not None:
            last = moment
        if last is None:
            if unplaced is not None:
                unplaced.counts[source] = unplaced.counts.get(source, 0) + 1
            continue
        yield LogLine(last, source, text)


def merge(
    streams: Iterable[Iterable[LogLine]], since: datetime | None = None, last: int | None = None
) -> list[LogLine]:
    """Every stream's lines in time order, those at or after `since`, at most the `last`
    ones. A sort, not a merge of sorted files: a multi-threaded component (etcd, Patroni)
    writes lines a few milliseconds out of order. Stable: equal times keep their file's
    order, so a line's continuation stays right after it."""
    lines = itertools.chain.from_iterable(streams)
    merged = sorted(
        (line for line in lines if since is None or line.at >= since), key=lambda line: line.at
    )
    return merged[-last:] if last is not None and last >= 0 else merged


def parse_since(text: str, now: datetime) -> datetime:
    """`10m`, `2h`, `30s`, `1d`, or an ISO 8601 time (UTC when it names no zone)."""
    cleaned = text.strip()
    match = _SINCE.match(cleaned)
    if match:
        return now - timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    moment = parse_time(cleaned, UTC)
    if moment is None or _ISO.match(cleaned) is None:
        raise ValueError(
            f"--since {text!r}: give a duration (30s, 10m, 2h, 1d) or a time "
            "(2026-11-28T07:30:00, UTC unless it names a zone)"
        )
    return moment

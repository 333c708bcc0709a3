"""etcd v3 through its JSON gateway (HTTPS with a client certificate), with short timeouts.

Not `etcdctl`: `etcdctl txn` 3.4 ignores --command-timeout and hung ~7 s during an etcd
election in the prototype; the gateway honours our timeouts and can be retried.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import httpx

from hastack.errors import Unavailable
from hastack.tools.http import ClientCert, client, tls_client

DEFAULT_TIMEOUT_S = 1.0


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(text: str) -> str:
    return base64.b64decode(text).decode()


@dataclass(frozen=True)
class EtcdMemberStatus:
    url: str
    healthy: bool
    member_id: str | None = None
    leader_id: str | None = None
    raft_term: int | None = None
    error: str | None = None

    @property
    def is_leader(self) -> bool:
        return self.member_id is not None and self.member_id == self.leader_id


class EtcdClient:
    """Talks to the given member URLs, first that answers wins (the last one that answered is
    asked first next time)."""

    def __init__(
        self,
        urls: tuple[str, ...],
        timeout_s: float = DEFAULT_TIMEOUT_S,
        identity: ClientCert | None = None,
    ) -> None:
        self.urls = urls
        self.timeout_s = timeout_s
        self.identity = identity
        self._answered = 0

    def _http(self) -> httpx.Client:
        return tls_client(self.identity) if self.identity is not None else client()

    def _post(self, url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self._http().post(f"{url}{path}", json=body, timeout=self.timeout_s)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def member_status(self, url: str) -> EtcdMemberStatus:
        """Health (has a leader, serves requests) and raft role of one member."""
        try:
            health = self._http().get(f"{url}/health", timeout=self.timeout_s).json()
            status = self._post(url, "/v3/maintenance/status", {})
        except (httpx.HTTPError, ValueError, OSError) as exc:  # OSError: no certificate yet
            return EtcdMemberStatus(url=url, healthy=False, error=_short(exc))
        return EtcdMemberStatus(
            url=url,
            healthy=str(health.get("health")) == "true",
            member_id=status.get("header", {}).get("member_id"),
            leader_id=status.get("leader"),
            raft_term=int(status.get("raftTerm", 0)),
        )

    def get(self, key: str) -> str | None:
        """Linearizable read (goes through the raft leader): never a stale value."""
        return self.get_with_lease(key)[0]

    def get_with_lease(self, key: str) -> tuple[str | None, str | None]:
        """(value, lease id), read linearizably."""
        data = self._first("/v3/kv/range", {"key": _b64(key)}, f"a read of {key}")
        kvs = data.get("kvs") or []
        if not kvs:
            return None, None
        lease = kvs[0].get("lease")
        return _unb64(kvs[0]["value"]), str(lease) if lease else None

    def lease_age_s(self, lease: str) -> float | None:
        """Seconds since the lease was last renewed (granted TTL - remaining TTL), in whole
        seconds; None when it no longer exists. etcd re-grants every lease its full TTL when
        its raft leader changes, so this can only under-state the age."""
        data = self._first("/v3/lease/timetolive", {"ID": lease}, f"lease {lease}")
        ttl, granted = int(data.get("TTL", -1)), int(data.get("grantedTTL", 0))
        return None if ttl < 0 else float(granted - ttl)

    def _in_turn(self) -> list[str]:
        """The members to try, the last one that answered first: a member that is frozen or
        cut off costs one timeout, once, not one per request."""
        start = self._answered
        return [*self.urls[start:], *self.urls[:start]]

    def _first(self, path: str, body: dict[str, Any], what: str) -> dict[str, Any]:
        """The first member's answer; each is tried in turn."""
        last: Exception | None = None
        for url in self._in_turn():
            try:
                data = self._post(url, path, body)
            except (httpx.HTTPError, ValueError, OSError) as exc:
                last = exc
                continue
            self._answered = self.urls.index(url)
            return data
        raise EtcdUnavailable(f"no etcd member answered {what}: {_short(last)}")

    def delete_if_equals(self, key: str, expected: str) -> bool:
        """Delete `key` only if it still holds `expected` (one transaction). True if deleted."""
        return self._if_equals(key, expected, [{"request_delete_range": {"key": _b64(key)}}])

    def delete_and_put_if_equals(
        self, key: str, expected: str, put_key: str, put_value: str
    ) -> bool:
        """In one transaction: if `key` still holds `expected`, write `put_key` and delete
        `key` (a watcher of either sees both). True if done."""
        put = {"request_put": {"key": _b64(put_key), "value": _b64(put_value)}}
        return self._if_equals(key, expected, [put, {"request_delete_range": {"key": _b64(key)}}])

    def _if_equals(self, key: str, expected: str, success: list[dict[str, Any]]) -> bool:
        """One transaction: `success` only if `key` still holds `expected`. True if done."""
        body = {
            "compare": [
                {
                    "key": _b64(key),
                    "result": "EQUAL",
                    "target": "VALUE",
                    "value": _b64(expected),
                }
            ],
            "success": success,
        }
        data = self._first("/v3/kv/txn", body, f"a transaction on {key}")
        return bool(data.get("succeeded", False))

    def get_prefix(self, prefix: str) -> dict[str, str]:
        """Every key under `prefix` and its value (linearizable)."""
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        body = {"key": _b64(prefix), "range_end": _b64(end)}
        data = self._first("/v3/kv/range", body, f"a read of {prefix}*")
        return {_unb64(kv["key"]): _unb64(kv.get("value", "")) for kv in data.get("kvs") or []}

    def delete_prefix(self, prefix: str) -> int:
        """Delete every key under `prefix` (one range delete); how many were deleted."""
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        body = {"key": _b64(prefix), "range_end": _b64(end)}
        data = self._first("/v3/kv/deleterange", body, f"the deletion of {prefix}*")
        return int(data.get("deleted", 0))


class EtcdUnavailable(Unavailable):
    pass


def _short(exc: Exception | None) -> str:
    if exc is None:
        return "no member configured"
    return f"{type(exc).__name__}: {exc}"[:200]

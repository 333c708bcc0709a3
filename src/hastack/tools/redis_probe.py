"""Redis liveness and memory figures."""

from __future__ import annotations

from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from hastack.errors import Unavailable


class RedisUnavailable(Unavailable):
    pass


class RedisProbe:
    def __init__(self, host: str, port: int, password: str, timeout_s: float = 1.0) -> None:
        self.host = host
        self.port = port
        self.password = password
        self.timeout_s = timeout_s

    def _client(self, password: str | None = None) -> redis.Redis:
        return redis.Redis(
            host=self.host,
            port=self.port,
            password=self.password if password is None else password,
            socket_timeout=self.timeout_s,
            socket_connect_timeout=self.timeout_s,
            # redis-py retries a refused connection 3 times with back-off (~3 s); a probe
            # must not.
            retry=Retry(NoBackoff(), 0),
        )

    def _acl(self, rule: str) -> None:
        client = self._client()
        try:
            # ">pw" adds a password, "<pw" removes one; nothing else of the user changes.
            client.execute_command("ACL", "SETUSER", "default", rule)  # type: ignore[no-untyped-call]
        except redis.RedisError as exc:
            raise RedisUnavailable(f"Redis {self.host}:{self.port}: {exc}") from None
        finally:
            client.close()

    def add_password(self, password: str) -> None:
        """The `default` user accepts `password` as well as those it had (a rotation's
        first step: clients move over one at a time)."""
        self._acl(f">{password}")

    def remove_password(self, password: str) -> None:
        self._acl(f"<{password}")

    def accepts(self, password: str) -> bool:
        """Whether AUTH with `password` succeeds (a wrong password is a definite no)."""
        client = self._client(password)
        try:
            client.ping()
        except redis.AuthenticationError:
            return False
        except redis.RedisError as exc:
            raise RedisUnavailable(f"Redis {self.host}:{self.port}: {exc}") from None
        finally:
            client.close()
        return True

    def probe(self) -> dict[str, Any]:
        """PING, then the memory and persistence figures `status` shows."""
        client = self._client()
        try:
            client.ping()
            memory = client.info("memory")
            server = client.info("server")
            persistence = client.info("persistence")
        except redis.RedisError as exc:
            raise RedisUnavailable(
                f"Redis {self.host}:{self.port}: {exc}", "hastack logs redis"
            ) from None
        finally:
            client.close()
        return {
            "version": server.get("redis_version"),
            "used_memory_bytes": memory.get("used_memory"),
            "maxmemory_bytes": memory.get("maxmemory"),
            "maxmemory_policy": memory.get("maxmemory_policy"),
            "aof_enabled": bool(persistence.get("aof_enabled")),
        }

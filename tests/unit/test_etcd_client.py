"""The etcd client asks the member that answered last first: a frozen or cut-off member
costs one timeout, not one per request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from hastack.tools.etcd_api import EtcdClient, EtcdUnavailable
from hastack.tools.http import ClientCert

URLS = ("http://a:2379", "http://b:2379", "http://c:2379")


class Members(EtcdClient):
    """An EtcdClient whose members answer (or time out) as told, recording who was asked."""

    def __init__(self, down: set[str]) -> None:
        super().__init__(URLS, timeout_s=0.5)
        self.down = down
        self.asked: list[str] = []

    def _post(self, url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.asked.append(url)
        if url in self.down:
            raise httpx.ReadTimeout("frozen")
        return {"kvs": [], "succeeded": True}


def test_a_frozen_first_member_is_asked_once_then_skipped() -> None:
    client = Members(down={"http://a:2379"})
    for _ in range(3):
        client.get("/leader")
    assert client.asked == ["http://a:2379", "http://b:2379", "http://b:2379", "http://b:2379"]


def test_the_next_member_is_tried_when_the_one_that_answered_stops() -> None:
    client = Members(down=set())
    client.get("/leader")
    client.down = {"http://a:2379"}
    assert client.delete_if_equals("/leader", "pg1") is True
    assert client.asked[-2:] == ["http://a:2379", "http://b:2379"]


def test_no_member_answering_is_unavailable() -> None:
    client = Members(down=set(URLS))
    with pytest.raises(EtcdUnavailable):
        client.get("/leader")


def test_a_missing_client_certificate_is_an_unavailable_etcd_not_a_crash(tmp_path: Path) -> None:
    """A stack that never ran has no certificate yet: `status` says etcd is down."""
    missing = str(tmp_path / "none.pem")
    client = EtcdClient(("https://127.0.0.1:9",), identity=ClientCert(missing, missing, missing))
    status = client.member_status("https://127.0.0.1:9")
    assert not status.healthy and "FileNotFoundError" in (status.error or "")
    with pytest.raises(EtcdUnavailable, match="no etcd member answered"):
        client.get("/x")

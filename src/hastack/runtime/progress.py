"""How long-running runtime work reports progress without printing itself."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def step(self, message: str) -> None:
        """A step starts (e.g. "waiting for etcd quorum")."""

    def done(self, message: str) -> None:
        """A step finished, with its result (e.g. "etcd quorum after 2.4 s")."""


class NullProgress:
    def step(self, message: str) -> None:
        pass

    def done(self, message: str) -> None:
        pass

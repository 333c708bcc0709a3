"""Deleting a stack's state tree: a file another process removed meanwhile (a gpg-agent
taking its sockets with it) is deleted, not an error; any other failure still is."""

from __future__ import annotations

import os

import pytest

from hastack.ops.lifecycle import _gone_already_is_fine


def _info(exc: BaseException) -> tuple[type, BaseException, object]:
    return (type(exc), exc, None)


def test_a_file_gone_already_is_deleted() -> None:
    _gone_already_is_fine(os.unlink, "S.gpg-agent.ssh", _info(FileNotFoundError(2, "gone")))


def test_any_other_failure_stands() -> None:
    with pytest.raises(PermissionError):
        _gone_already_is_fine(os.unlink, "x", _info(PermissionError(13, "denied")))

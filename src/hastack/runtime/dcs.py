"""Keep Patroni's dynamic configuration (stored in etcd) equal to the spec.

Patroni reads `bootstrap.dcs` only when it creates the cluster; later changes to ttl, sync mode
or DCS-level parameters must be PATCHed through the REST API, which `up` does here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hastack.render.patroni import dcs_settings

if TYPE_CHECKING:
    from hastack.runtime.stack import Stack


def _norm(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value).strip().lower()
    return {"on": "true", "off": "false"}.get(text, text)


def dcs_patch(current: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """The smallest PATCH that makes `current` agree with `desired` (nested dicts merge)."""
    patch: dict[str, Any] = {}
    for key, want in desired.items():
        have = current.get(key)
        if isinstance(want, dict):
            sub = dcs_patch(have if isinstance(have, dict) else {}, want)
            if sub:
                patch[key] = sub
        elif have is None or _norm(have) != _norm(want):
            patch[key] = want
    return patch


def converge_dcs(
    stack: Stack, leader: str, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Apply what differs from the spec (with `overrides` on top); returns the patch that was
    sent (empty when nothing changed)."""
    client = stack.patroni(leader)
    patch = dcs_patch(client.config(), {**dcs_settings(stack.plan), **(overrides or {})})
    if patch:
        client.patch_config(patch)
    return patch

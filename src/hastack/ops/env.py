"""`hastack env`: the connection settings applications need."""

from __future__ import annotations

from hastack.runtime.stack import Stack
from hastack.spec.connection import monitoring_urls, tracing_settings


def env_settings(stack: Stack) -> dict[str, str]:
    return {**stack.urls(), **tracing_settings(stack.plan), **monitoring_urls(stack.plan)}

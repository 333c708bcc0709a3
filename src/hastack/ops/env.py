"""`hastack env`: the connection settings applications need."""

from __future__ import annotations

from hastack.render.connection import connection_settings
from hastack.render.secrets import Secrets
from hastack.runtime import secret_store
from hastack.spec.plan import StackPlan


class StackNotCreated(Exception):
    pass


def load_secrets_or_explain(plan: StackPlan) -> Secrets:
    try:
        return secret_store.load(plan.paths.secrets_dir)
    except FileNotFoundError:
        raise StackNotCreated(
            f"stack {plan.name!r} has no secrets yet ({plan.paths.secrets_dir}); "
            "run `hastack up` first"
        ) from None
    except PermissionError:
        raise StackNotCreated(
            f"cannot read {plan.paths.secrets_dir}: run hastack as root"
        ) from None


def env_settings(plan: StackPlan) -> dict[str, str]:
    return connection_settings(plan, load_secrets_or_explain(plan))

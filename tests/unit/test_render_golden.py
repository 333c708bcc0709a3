"""Every rendered file, byte for byte. Update with `pytest --update-golden` and review the diff."""

from __future__ import annotations

from pathlib import Path

import pytest

from hastack.render import render_stack
from hastack.spec import StackSpec, derive_plan, roles
from tests.unit.factories import fixed_secrets

GOLDEN = Path(__file__).parent.parent / "golden"


def golden_name(path: Path, state_dir: Path) -> str:
    return str(path.relative_to(state_dir)).replace("/", "__")


def rendered() -> dict[str, str]:
    plan = derive_plan(StackSpec())
    files = render_stack(plan, fixed_secrets())
    return {golden_name(f.path, plan.paths.state_dir): f.content for f in files}


@pytest.mark.parametrize("name", sorted(rendered()))
def test_rendered_file_matches_golden(name: str, request: pytest.FixtureRequest) -> None:
    content = rendered()[name]
    golden = GOLDEN / name
    if request.config.getoption("--update-golden"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(content)
    assert golden.exists(), f"no golden file {golden}; run pytest --update-golden"
    assert content == golden.read_text()


def test_no_stale_golden_files() -> None:
    # Directories hold the other targets' golden files (test_render_swarm.py, ...).
    assert sorted(p.name for p in GOLDEN.iterdir() if p.is_file()) == sorted(rendered())


def test_owners_and_modes() -> None:
    plan = derive_plan(StackSpec())
    owners = {
        golden_name(f.path, plan.paths.state_dir): (f.owner, f.mode)
        for f in render_stack(plan, fixed_secrets())
    }
    assert owners["nodes__pg1__patroni.yml"] == ("hs-demo-pg1", 0o600)
    assert owners["services__pgbouncer__userlist.txt"] == ("hs-demo-pgbouncer", 0o600)
    assert owners["supervisor__supervisord.conf"] == ("root", 0o600)


def test_secrets_only_where_needed() -> None:
    """The pooler holds SCRAM verifiers, never the app's plaintext password; only the app
    instances' environment file (0600, app user) carries it."""
    files = rendered()
    secrets = fixed_secrets()
    assert secrets.app_password not in files["services__pgbouncer__userlist.txt"]
    userlist = files["services__pgbouncer__userlist.txt"]
    for login in roles.APP_LOGINS:  # both: a rotation moves the applications between them
        assert secrets.scram(login, secrets.password_of(login)) in userlist
    holders = [name for name, text in files.items() if secrets.app_password in text]
    assert holders == ["services__app__app.env"]


def test_require_tls_off_lets_plaintext_clients_in_and_only_then() -> None:
    """The golden files hold the default (TLS required); off is for measuring TLS's cost."""
    spec = StackSpec.model_validate({"postgres": {"require_tls": False}})
    plan = derive_plan(spec)
    files = {
        golden_name(f.path, plan.paths.state_dir): f.content
        for f in render_stack(plan, fixed_secrets())
    }
    assert "hostssl" not in files["nodes__pg1__patroni.yml"]
    assert "- host all all 127.0.0.1/32 scram-sha-256" in files["nodes__pg1__patroni.yml"]
    assert "client_tls_sslmode = allow" in files["services__pgbouncer__pgbouncer.ini"]
    defaults = rendered()
    assert "- hostssl all all 127.0.0.1/32 scram-sha-256" in defaults["nodes__pg1__patroni.yml"]
    assert "client_tls_sslmode = require" in defaults["services__pgbouncer__pgbouncer.ini"]

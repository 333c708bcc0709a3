"""`hastack render`'s runtime: material from the state directory, a render written as one step."""

from __future__ import annotations

import stat
from pathlib import Path, PurePosixPath

import pytest
from cryptography import x509

from hastack.errors import HastackError
from hastack.render.targets import CertRequest, StackMaterial, Target, TargetFile, targets
from hastack.runtime import target_render
from hastack.runtime.target_render import RENDER_MARK, render_target
from hastack.spec.plan import StackPlan
from tests.unit.factories import load_text


def _files(plan: StackPlan, material: StackMaterial) -> list[TargetFile]:
    cert = material.issued["edge"]
    return [
        TargetFile(PurePosixPath("stack.yml"), f"name: {plan.name}\n"),
        TargetFile(PurePosixPath("secrets/redis"), material.secrets.redis_password, 0o600),
        TargetFile(PurePosixPath("tls/edge.pem"), cert.cert_pem + cert.key_pem, 0o600),
    ]


FAKE = Target(
    name="fake",
    summary="a target for these tests",
    render=_files,
    certificates=lambda plan: {"edge": CertRequest("edge", ("edge.example",), ("10.0.0.5",))},
    next_steps=lambda plan, out: [f"deploy {out}"],
)


@pytest.fixture
def plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StackPlan:
    monkeypatch.setattr(target_render, "targets", lambda: {"fake": FAKE})
    return load_text(tmp_path, f"name: rend\nstate_dir: {tmp_path / 'state'}\n").plan


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_render_is_written_with_its_modes_and_mark(plan: StackPlan, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = render_target(plan, "fake", out)
    assert result.files == ["stack.yml", "secrets/redis", "tls/edge.pem"]
    assert result.secret_files == ["secrets/redis", "tls/edge.pem"]
    assert result.next_steps == [f"deploy {out}"]
    assert (out / "stack.yml").read_text() == "name: rend\n"
    assert _mode(out / "stack.yml") == 0o644 and _mode(out / "secrets/redis") == 0o600
    assert _mode(out) == 0o700
    assert '"target": "fake"' in (out / RENDER_MARK).read_text()
    # Only the render is left beside it: no temporary directory.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hastack.yaml", "out", "state"]


def test_a_second_render_keeps_secrets_and_certificates(plan: StackPlan, tmp_path: Path) -> None:
    out = tmp_path / "out"
    render_target(plan, "fake", out)
    first = (out / "secrets/redis").read_text(), (out / "tls/edge.pem").read_text()
    (out / "stale-file").write_text("from an older render")
    render_target(plan, "fake", out)
    assert ((out / "secrets/redis").read_text(), (out / "tls/edge.pem").read_text()) == first
    assert not (out / "stale-file").exists()  # replaced whole


def test_a_certificate_is_issued_again_when_its_names_change(
    plan: StackPlan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    render_target(plan, "fake", tmp_path / "out")
    before = (tmp_path / "out/tls/edge.pem").read_text()
    moved = Target(
        **{
            **FAKE.__dict__,
            "certificates": lambda p: {"edge": CertRequest("edge", (), ("10.9.9.9",))},
        }
    )
    monkeypatch.setattr(target_render, "targets", lambda: {"fake": moved})
    render_target(plan, "fake", tmp_path / "out")
    after = (tmp_path / "out/tls/edge.pem").read_text()
    assert after != before
    cert = x509.load_pem_x509_certificate(after.encode())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(a) for a in sans.get_values_for_type(x509.IPAddress)] == ["10.9.9.9"]


def test_a_directory_that_is_not_a_render_is_left_alone(plan: StackPlan, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(HastackError) as caught:
        render_target(plan, "fake", out)
    assert "holds no earlier render" in str(caught.value)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_a_path_leaving_the_output_writes_nothing(
    plan: StackPlan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    escaping = Target(
        name="fake",
        summary="",
        render=lambda p, m: [
            TargetFile(PurePosixPath("ok.txt"), "fine\n"),
            TargetFile(PurePosixPath("../escape.txt"), "no\n"),
        ],
    )
    monkeypatch.setattr(target_render, "targets", lambda: {"fake": escaping})
    with pytest.raises(HastackError, match="leaves the output directory"):
        render_target(plan, "fake", tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "escape.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hastack.yaml", "state"]


def test_an_unknown_target_names_the_known_ones(plan: StackPlan, tmp_path: Path) -> None:
    with pytest.raises(HastackError) as caught:
        render_target(plan, "nomad", tmp_path / "out")
    assert "unknown target 'nomad'" in str(caught.value) and "fake" in caught.value.hint


def test_a_target_the_hosts_do_not_fit_is_refused(tmp_path: Path) -> None:
    assert "systemd" in targets()
    plan = load_text(tmp_path, f"state_dir: {tmp_path / 'state'}\n").plan
    with pytest.raises(HastackError, match="needs the hosts"):
        render_target(plan, "systemd", tmp_path / "out")
    assert not (tmp_path / "out").exists()

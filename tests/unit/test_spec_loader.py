from __future__ import annotations

from pathlib import Path

import pytest

from hastack.spec import SpecError, StackSpec, example_spec, load_spec
from tests.unit.factories import load_text


def errors_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_text(tmp_path, text)
    return [i.format() for i in caught.value.errors]


def test_example_spec_is_valid_and_equals_the_defaults(tmp_path: Path) -> None:
    loaded = load_text(tmp_path, example_spec("demo"))
    assert loaded.spec == StackSpec()
    assert loaded.warnings == ()


def test_empty_file_means_all_defaults(tmp_path: Path) -> None:
    assert load_text(tmp_path, "").spec == StackSpec()


def test_unknown_key_names_line_and_suggests_the_right_key(tmp_path: Path) -> None:
    (err,) = errors_of(tmp_path, "name: demo\npostgres:\n  nodse: 3\n")
    assert "hastack.yaml:3: postgres.nodse: unknown key" in err
    assert "did you mean 'nodes'?" in err


def test_unknown_key_without_close_match_lists_allowed_keys(tmp_path: Path) -> None:
    (err,) = errors_of(tmp_path, "redis:\n  zzzzzz: 1\n")
    assert "hastack.yaml:2: redis.zzzzzz: unknown key" in err
    assert "keys allowed in redis: port, maxmemory_mb" in err


def test_wrong_type_names_line_value_and_an_example(tmp_path: Path) -> None:
    (err,) = errors_of(tmp_path, "postgres:\n  version: 15\n  memory_mb: lots\n")
    assert "hastack.yaml:3: postgres.memory_mb: expected a whole number, got 'lots'" in err
    assert "e.g. 256" in err


def test_out_of_range_says_the_bound(tmp_path: Path) -> None:
    (err,) = errors_of(tmp_path, "patroni:\n  ttl_s: 10\n")
    assert "hastack.yaml:2: patroni.ttl_s: 10 is out of range" in err
    assert "use a value >= 20" in err


def test_literal_lists_the_choices(tmp_path: Path) -> None:
    (err,) = errors_of(tmp_path, "pgbouncer:\n  pool_mode: statement\n")
    assert "pgbouncer.pool_mode: 'statement' is not allowed" in err
    assert "'transaction' or 'session'" in err


def test_every_error_is_reported_sorted_by_line(tmp_path: Path) -> None:
    errs = errors_of(tmp_path, "name: Bad_Name\nredis:\n  port: 80\netcd:\n  memebrs: 3\n")
    assert [e.split(":")[1] for e in errs] == ["1", "3", "5"]


def test_invalid_yaml_gives_the_line(tmp_path: Path) -> None:
    (err,) = errors_of(tmp_path, "name: demo\npostgres:\n  nodes: [3\n")
    assert "invalid YAML" in err
    assert "hastack.yaml:4" in err or "hastack.yaml:3" in err


def test_duplicate_key_is_a_yaml_error(tmp_path: Path) -> None:
    (err,) = errors_of(tmp_path, "name: a\nname: b\n")
    assert "invalid YAML" in err and "hastack.yaml:2" in err


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    (err,) = errors_of(tmp_path, "- a\n- b\n")
    assert "the top level must be a mapping" in err


def test_missing_file_points_at_init(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(tmp_path / "nope.yaml")
    assert "hastack init" in caught.value.issues[0].fix


@pytest.mark.parametrize(
    ("subnet", "message"),
    [
        ("10.0.0.0/24", "inside 127.0.0.0/8"),
        ("127.0.0.0/24", "must not contain 127.0.0.1"),
        ("127.0.0.0/16", "must be a /24"),
        ("127.0.10.5/24", "not an IPv4 network"),
    ],
)
def test_subnet_rules(tmp_path: Path, subnet: str, message: str) -> None:
    (err,) = errors_of(tmp_path, f"network:\n  subnet: {subnet}\n")
    assert "hastack.yaml:2: network.subnet" in err
    assert message in err


def test_state_dir_must_be_absolute(tmp_path: Path) -> None:
    (err,) = errors_of(tmp_path, "state_dir: relative/dir\n")
    assert "must be an absolute path" in err


def test_name_pattern_explains_the_form(tmp_path: Path) -> None:
    (err,) = errors_of(tmp_path, "name: My_Stack\n")
    assert "lowercase letters, digits and '-'" in err


def test_nested_section_of_wrong_type(tmp_path: Path) -> None:
    (err,) = errors_of(tmp_path, "postgres: 3\n")
    assert "postgres: expected a mapping of keys, got 3" in err


def test_a_newline_in_a_value_is_refused_with_its_line(tmp_path: Path) -> None:
    """A newline would start a new directive in supervisord.conf or haproxy.cfg."""
    text = 'name: demo\napp:\n  health_path: "/health/ready\\n  http-request return status 200"\n'
    (err,) = errors_of(tmp_path, text)
    assert "hastack.yaml:3: app.health_path: contains the control character U+000A" in err
    assert "single line of printable text" in err


def test_control_characters_anywhere_are_refused(tmp_path: Path) -> None:
    text = 'http:\n  tls:\n    hostnames: ["ok.example", "bad\\u001b[31m"]\nname: "demo\\t"\n'
    errors = errors_of(tmp_path, text)
    assert any(
        "hastack.yaml:3: http.tls.hostnames.1: contains the control character U+001B" in e
        for e in errors
    )
    assert any("hastack.yaml:4: name: contains the control character U+0009" in e for e in errors)


def test_a_hostname_must_be_a_dns_name(tmp_path: Path) -> None:
    (err,) = errors_of(tmp_path, "http:\n  tls:\n    hostnames: [localhost, 'a b']\n")
    assert "hastack.yaml:3: http.tls.hostnames.1" in err
    ok = load_text(tmp_path, "http:\n  tls:\n    hostnames: ['*.shop.example', 10.0.0.5]\n")
    assert ok.spec.http.tls.hostnames == ["*.shop.example", "10.0.0.5"]

"""Read `hastack.yaml` with line numbers and turn every problem into a located SpecIssue."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from hastack.spec.checks import MachineFacts, check_machine, check_plan, check_standby
from hastack.spec.errors import SpecError, SpecIssue
from hastack.spec.model import StackSpec
from hastack.spec.plan import StackPlan, derive_plan


@dataclass(frozen=True)
class LoadedSpec:
    """A valid spec, its derived plan, where it came from, and any warnings."""

    spec: StackSpec
    plan: StackPlan
    path: Path
    warnings: tuple[SpecIssue, ...]


class _Source:
    """Maps dotted keys of the parsed document back to line numbers."""

    def __init__(self, path: Path, root: Any) -> None:
        self.path = path
        self.root = root

    def line_of(self, loc: Sequence[str | int]) -> int:
        """Line of the deepest part of `loc` present in the file (1 when none is)."""
        return self._walk(loc)[0]

    def _walk(self, loc: Sequence[str | int]) -> tuple[int, bool]:
        node = self.root
        line = 1
        for part in loc:
            if isinstance(node, CommentedMap) and part in node:
                line = node.lc.key(part)[0] + 1
                node = node[part]
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
                line = node.lc.item(part)[0] + 1
                node = node[part]
            else:
                return line, False
        return line, True

    def locate(self, issue: SpecIssue) -> SpecIssue:
        """Point at the issue's key, or at a related key the file does set."""
        for key in (issue.key, *issue.related):
            line, found = self._walk(_parts(key))
            if found:
                return issue.located(self.path, line)
        return issue.located(self.path, self.line_of(_parts(issue.key)))


def _parts(key: str) -> list[str | int]:
    """A dotted key's parts; a number is a list index (`hosts.1.address`)."""
    return [int(p) if p.isdigit() else p for p in key.split(".")] if key else []


def load_spec(
    path: Path, machine: MachineFacts | None = None, *, follow_primary: bool = True
) -> LoadedSpec:
    """Load, validate and cross-check a spec. Raises SpecError listing every problem.
    `follow_primary`: for a standby cluster, read its primary's spec too (not that spec's
    own primary: two specs naming each other must not loop)."""
    root = _parse(path)
    source = _Source(path, root)
    controls = [source.locate(i) for i in control_characters(root)]
    if controls:
        raise SpecError(controls)
    try:
        spec = StackSpec.model_validate(_plain(root))
    except ValidationError as exc:
        found = [_from_pydantic(err, source) for err in exc.errors()]
        raise SpecError(sorted(found, key=lambda i: i.line or 0)) from None
    primary, issues = _load_primary(spec) if follow_primary else (None, [])
    plan = derive_plan(spec, primary)
    issues += check_plan(plan)
    if machine is not None:
        issues += check_machine(plan, machine)
    located = sorted((source.locate(i) for i in issues), key=lambda i: i.line or 0)
    if any(i.severity == "error" for i in located):
        raise SpecError(located)
    return LoadedSpec(spec=spec, plan=plan, path=path, warnings=tuple(located))


def _load_primary(spec: StackSpec) -> tuple[StackSpec | None, list[SpecIssue]]:
    """A standby cluster's primary: its spec, read for its addresses and state directory."""
    sc = spec.standby_cluster
    if sc is None:
        return None, []
    key = "standby_cluster.primary"
    try:
        primary = load_spec(sc.primary, follow_primary=False).spec
    except SpecError as exc:
        first = exc.errors[0] if exc.errors else None
        said = first.format() if first is not None else str(exc)
        fix = "fix that spec, or point standby_cluster.primary at the primary's hastack.yaml"
        return None, [
            SpecIssue(key=key, message=f"the primary's spec is not valid: {said}", fix=fix)
        ]
    return primary, check_standby(spec, primary)


def _parse(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(
            [
                SpecIssue(
                    key="",
                    message="no such file",
                    fix="run `hastack init` to write an example, or pass -c PATH",
                    file=path,
                )
            ]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([SpecIssue(key="", message=f"cannot read: {exc}", file=path)]) from None
    try:
        root = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise SpecError(
            [
                SpecIssue(
                    key="",
                    message=f"invalid YAML: {problem}",
                    fix="fix the YAML syntax (indent with spaces; `key: value` pairs)",
                    file=path,
                    line=line,
                )
            ]
        ) from None
    except YAMLError as exc:
        raise SpecError(
            [SpecIssue(key="", message=f"invalid YAML: {exc}", file=path, line=1)]
        ) from None
    if root is None:
        return CommentedMap()
    if not isinstance(root, CommentedMap):
        raise SpecError(
            [
                SpecIssue(
                    key="",
                    message="the top level must be a mapping of keys (name:, postgres:, ...)",
                    fix="start from `hastack init`",
                    file=path,
                    line=1,
                )
            ]
        )
    return root


def control_characters(node: Any, loc: tuple[str | int, ...] = ()) -> list[SpecIssue]:
    """Every key or string holding a control character. Spec strings end up in config files
    (supervisord, HAProxy, Patroni) where a newline starts a new directive: a value with one
    could add a program that runs as root."""
    found: list[SpecIssue] = []
    items: list[tuple[Any, Any]] = []
    if isinstance(node, dict):
        items = list(node.items())
    elif isinstance(node, list):
        items = list(enumerate(node))
    elif isinstance(node, str):
        bad = next((c for c in node if _is_control(c)), None)
        if bad is not None:
            key = ".".join(str(p) for p in loc)
            found.append(
                SpecIssue(
                    key=key,
                    message=f"contains the control character U+{ord(bad):04X}",
                    fix="remove it: every value in the spec is a single line of printable text",
                )
            )
        return found
    for key, value in items:
        if isinstance(key, str) and any(_is_control(c) for c in key):
            found.append(
                SpecIssue(
                    key=".".join(str(p) for p in loc),
                    message=f"a key contains a control character: {key!r}",
                    fix="rename the key (printable characters only)",
                )
            )
            continue
        found += control_characters(value, (*loc, key))
    return found


def _is_control(char: str) -> bool:
    """C0, DEL, C1 and the Unicode line and paragraph separators."""
    code = ord(char)
    return code < 0x20 or 0x7F <= code < 0xA0 or code in (0x2028, 0x2029)


def _plain(node: Any) -> Any:
    """ruamel's round-trip types -> plain Python, so pydantic sees ordinary values."""
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


def _from_pydantic(err: Any, source: _Source) -> SpecIssue:
    loc = tuple(err["loc"])
    key = ".".join(str(p) for p in loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        message, fix = _unknown_key(loc)
    else:
        message, fix = _describe(err, _example_value(loc))
    return SpecIssue(key=key, message=message, fix=fix, file=source.path, line=source.line_of(loc))


def _unknown_key(loc: tuple[Any, ...]) -> tuple[str, str]:
    known = _fields_at(loc[:-1])
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    if close:
        return "unknown key", f"did you mean '{close[0]}'?"
    where = ".".join(str(p) for p in loc[:-1]) or "the top level"
    return "unknown key", f"remove it; keys allowed in {where}: {', '.join(known)}"


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    model = _model_at(loc)
    return list(model.model_fields) if model else []


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = StackSpec
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        annotation = field.annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _example_value(loc: tuple[Any, ...]) -> str:
    """The field's default, shown as an example of a valid value."""
    model = _model_at(loc[:-1])
    field = model.model_fields.get(str(loc[-1])) if model and loc else None
    if field is None or field.default is None or isinstance(field.default, BaseModel):
        return ""
    default = field.default
    return str(default).lower() if isinstance(default, bool) else str(default)


def _describe(err: Any, example: str) -> tuple[str, str]:
    """A sentence for what is wrong and one for how to fix it."""
    kind = err["type"]
    given = err.get("input")
    ctx = err.get("ctx") or {}
    shown = repr(given) if not isinstance(given, dict) else "a mapping"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"expected a whole number, got {shown}", (
            f"write a number without quotes, e.g. {example or 3}"
        )
    if kind in ("bool_parsing", "bool_type"):
        return f"expected true or false, got {shown}", "write true or false"
    if kind in ("string_type",):
        return f"expected text, got {shown}", "quote the value"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping of keys, got {shown}", "indent the keys under this one"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = {
            "greater_than_equal": ">=",
            "greater_than": ">",
            "less_than_equal": "<=",
            "less_than": "<",
        }[kind]
        limit = next(iter(ctx.values()), "?")
        return f"{given} is out of range", f"use a value {bound} {limit}"
    if kind == "literal_error":
        return f"{shown} is not allowed", f"use one of: {ctx.get('expected', '?')}"
    if kind == "string_pattern_mismatch":
        return f"{shown} has the wrong form", _pattern_hint(ctx.get("pattern", ""))
    if kind == "value_error":
        msg = str(err["msg"]).removeprefix("Value error, ")
        return f"{shown}: {msg}", ""
    return f"{err['msg']} (got {shown})", ""


def _pattern_hint(pattern: str) -> str:
    if "{0,15}" in pattern:
        return "use lowercase letters, digits and '-', start with a letter, at most 16 chars"
    if "{0,62}" in pattern:
        return "use lowercase letters, digits and '_', start with a letter or '_'"
    return f"match the pattern {pattern}"

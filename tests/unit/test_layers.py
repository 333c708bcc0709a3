"""The layers talk one way (spec -> render -> runtime -> ops/drills -> cli) and never in a
cycle; ops, drills and the CLI reach processes and clients only through the Stack; the CLI
loads no web framework. Checked from the source's import statements (those under
`if TYPE_CHECKING:` are for annotations only and are skipped)."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "hastack"

ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "polling": {"errors"},
    "namespaces": set(),
    "spec": {"errors", "spec"},
    "render": {"errors", "namespaces", "spec", "render"},
    "tools": {"errors", "namespaces", "polling", "tools"},
    "runtime": {"errors", "polling", "spec", "render", "tools", "runtime"},
    "ops": {"errors", "polling", "spec", "runtime", "ops", "demo", "app"},
    "drills": {"errors", "polling", "spec", "runtime", "ops", "drills"},
    "cli": {"errors", "spec", "ops", "drills", "cli", "runtime.stack"},
    "app": {"app"},
    "demo": {"app", "demo"},
    "web": {"errors", "spec", "ops", "web", "runtime.stack"},
}
"""What each package may import from hastack (a package, or one module of it)."""


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        if parts and parts[0] not in ("__main__",):
            yield ".".join(parts), path


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def hastack_imports(path: Path) -> set[str]:
    """Modules of hastack imported at run time (not under TYPE_CHECKING). `from hastack.cli
    import views` imports the module cli.views, not the package."""
    known = {module for module, _ in modules()}
    tree = ast.parse(path.read_text())
    skip = _type_checking_lines(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hastack"):
            base = node.module.removeprefix("hastack").lstrip(".")
            subs = {f"{base}.{a.name}" if base else a.name for a in node.names}
            found |= (subs & known) or {base}
        elif isinstance(node, ast.Import):
            found |= {
                a.name.removeprefix("hastack").lstrip(".")
                for a in node.names
                if a.name.startswith("hastack")
            }
    return {m for m in found if m}


@pytest.mark.parametrize(("module", "path"), list(modules()), ids=lambda v: str(v))
def test_imports_follow_the_layers(module: str, path: Path) -> None:
    package = module.split(".")[0]
    allowed = ALLOWED.get(package)
    if allowed is None:  # top-level modules: errors, polling, namespaces
        allowed = ALLOWED[module]
    wrong = {
        imported
        for imported in hastack_imports(path)
        if imported.split(".")[0] not in allowed and imported not in allowed
    }
    assert not wrong, f"{module} imports {sorted(wrong)}; it may import only {sorted(allowed)}"


def test_no_import_cycles_between_modules() -> None:
    graph = {module: set() for module, _ in modules()}
    for module, path in modules():
        for imported in hastack_imports(path):
            target = imported if imported in graph else imported.rsplit(".", 1)[0]
            if target in graph and target != module:
                graph[module].add(target)
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> None:
        if node in done:
            return
        assert node not in visiting, "import cycle: " + " -> ".join([*visiting, node])
        visiting.append(node)
        for nxt in sorted(graph[node]):
            visit(nxt)
        visiting.pop()
        done.add(node)

    for node in sorted(graph):
        visit(node)


def test_the_cli_loads_no_web_framework() -> None:
    """`hastack status` must not pay for Starlette and uvicorn (the app tier's)."""
    code = (
        "import sys, hastack.cli; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'starlette', 'uvicorn'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"

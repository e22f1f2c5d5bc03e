"""The package design, read from the source's import statements (every import, lazy ones included):

- the top folders import one way: ``spice`` knows nothing of the others, ``circuits`` may use
  ``spice``, ``pnn`` knows nothing of SPICE or circuits, ``validation`` uses all three, and only
  the CLI (``imcpnn.cli``, ``imcpnn.verbs``) wires them; the base modules of ``imcpnn/`` (errors,
  config, rundir, progress) import no subsystem;
- inside ``circuits``: netlist <- characterization <- simulate, netlist <- layout;
- no import cycle between modules;
- no private name (``_x``) and no private module is imported from outside its own package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: source folder -> package name (pyproject's package-dir)
FOLDERS = {"imcpnn": "imcpnn", "spice": "imcpnn.spice", "circuits": "imcpnn.circuits",
           "pnn": "imcpnn.pnn", "validation": "imcpnn.validation", "netlists": "imcpnn.netlists"}
SUBSYSTEMS = ("spice", "circuits", "pnn", "validation")

#: importer prefix -> prefixes it must not import
FORBIDDEN = {
    "imcpnn.spice": ("imcpnn.circuits", "imcpnn.pnn", "imcpnn.validation", "imcpnn.cli", "imcpnn.verbs"),
    "imcpnn.circuits": ("imcpnn.pnn", "imcpnn.validation", "imcpnn.cli", "imcpnn.verbs"),
    "imcpnn.pnn": ("imcpnn.spice", "imcpnn.circuits", "imcpnn.validation", "imcpnn.cli", "imcpnn.verbs"),
    "imcpnn.validation": ("imcpnn.cli", "imcpnn.verbs"),
    "imcpnn.circuits.netlist": ("imcpnn.circuits.characterization", "imcpnn.circuits.simulate",
                                "imcpnn.circuits.layout", "imcpnn.spice"),
    "imcpnn.circuits.characterization": ("imcpnn.circuits.simulate", "imcpnn.circuits.layout"),
    "imcpnn.circuits.layout": ("imcpnn.circuits.characterization", "imcpnn.circuits.simulate"),
    "imcpnn.circuits.simulate": ("imcpnn.circuits.layout",),
}
BASE = ("imcpnn.errors", "imcpnn.config", "imcpnn.rundir", "imcpnn.progress")


def _modules() -> dict[str, Path]:
    out = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([package, *parts])] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, tuple[str, ...], int]]:
    """(imported module, names taken from it, line) for every import of ``path``, relative ones
    resolved against the module ``name``."""
    is_package = path.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, (), node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                module = ".".join(base + ([module] if module else []))
            out.append((module, tuple(a.name for a in node.names), node.lineno))
    return out


def _resolve(module: str, names: tuple[str, ...]) -> list[str]:
    """The project modules an import loads: ``from pkg import mod`` names the submodule."""
    subs = [f"{module}.{n}" for n in names if f"{module}.{n}" in MODULES]
    return subs or ([module] if module in MODULES else [])


def _graph() -> dict[str, set[str]]:
    return {m: {t for mod, names, _ in _imports(m, p) for t in _resolve(mod, names)} - {m}
            for m, p in MODULES.items()}


def test_every_source_folder_is_seen():
    assert {"imcpnn.spice._runner", "imcpnn.circuits.netlist.network", "imcpnn.pnn._api",
            "imcpnn.validation._pipeline", "imcpnn.cli"} <= set(MODULES)


@pytest.mark.parametrize("importer", sorted(FORBIDDEN))
def test_imports_go_one_way(importer):
    bad = [f"{m} imports {mod} (line {line})" for m, p in MODULES.items()
           if m == importer or m.startswith(importer + ".")
           for mod, _, line in _imports(m, p)
           if any(mod == f or mod.startswith(f + ".") for f in FORBIDDEN[importer])]
    assert not bad, "\n".join(bad)


def test_base_modules_import_no_subsystem():
    bad = [f"{m} imports {mod}" for m in BASE for mod, _, _ in _imports(m, MODULES[m])
           if any(mod.startswith(f"imcpnn.{s}") for s in (*SUBSYSTEMS, "verbs", "cli"))]
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    graph = _graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node, stack):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    # A package __init__ re-exporting its own modules is not a cycle of design.
    cycles = [c for c in cycles if not any(
        a.startswith(b + ".") or b.startswith(a + ".")
        for a, b in zip(c.split(" -> "), c.split(" -> ")[1:]) if MODULES[min(a, b, key=len)].name == "__init__.py")]
    assert not cycles, "\n".join(cycles)


def _package(module: str) -> str:
    return module if MODULES[module].name == "__init__.py" else module.rsplit(".", 1)[0]


def test_no_private_name_crosses_modules():
    """``from x import _name`` only inside x's own module, and a private module ``pkg._m`` only
    from within ``pkg`` (benchmarks included: they use the public API; tests may reach inside)."""
    bad = []
    importers = list(MODULES.items()) + [(f"benchmarks.{p.stem}", p) for p in sorted((ROOT / "benchmarks").glob("*.py"))]
    for m, p in importers:
        own = _package(m) if m in MODULES else "benchmarks"
        for mod, names, line in _imports(m, p):
            if not mod.startswith("imcpnn"):
                continue
            private = [n for n in names if n.startswith("_") and n != "__version__"
                       and not (f"{mod}.{n}" in MODULES and own in (mod, _package(f"{mod}.{n}")))]
            if private and mod != m:
                bad.append(f"{m}:{line} takes {', '.join(private)} from {mod}")
            hidden = [part for part in mod.split(".") if part.startswith("_")]
            if hidden and not (own == mod.rsplit(".", 1)[0] or own.startswith(mod.rsplit(".", 1)[0] + ".")):
                bad.append(f"{m}:{line} imports the private module {mod}")
    assert not bad, "\n".join(bad)

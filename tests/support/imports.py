"""The project's import graph, read from the source (ast): which module imports which, and what a
module runs when it is imported (its transitive closure, parent packages included). The
architecture test checks the layers with it; the DVC test derives each stage's code from it."""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOPS = ("sslmae", "components", "pipelines")


@lru_cache(maxsize=None)
def modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the project's packages (`sslmae.cli` for its __init__)."""
    found = {}
    for top in TOPS:
        for path in (REPO / top).rglob("*.py"):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
            found[name] = path
    return found


def imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported name, line, inside a function) of every absolute import in a file;
    `from a.b import c` gives 'a.b.c' (a module, or a name in module a.b)."""
    tree = ast.parse(path.read_text())
    local = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
             for n in ast.walk(f)}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno, id(node) in local) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out += [(f"{node.module}.{a.name}", node.lineno, id(node) in local) for a in node.names]
    return out


def _resolve(name: str) -> str | None:
    """The project module an imported name lives in: 'sslmae.config.Config' -> 'sslmae.config'."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in modules():
            return candidate
    return None


def _with_parents(module: str) -> list[str]:
    """`module` and the packages Python imports first: sslmae.cli.commands.x -> sslmae, sslmae.cli, ..."""
    parts = module.split(".")
    return [".".join(parts[:n]) for n in range(1, len(parts) + 1) if ".".join(parts[:n]) in modules()]


@lru_cache(maxsize=None)
def closure(module: str, called: bool = False) -> frozenset[str]:
    """Every project module that importing `module` runs (module-level imports only: a
    function-local import is an optional dependency's, and runs only when called); with `called`,
    also the project modules its functions import when called (what a command may run: a DVC
    stage's code, where a module is imported late only to keep a command's start fast)."""
    seen: set[str] = set()
    todo = _with_parents(module)
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for name, _, local in imports(modules()[current]):
            target = _resolve(name)
            if target is not None and (called or not local):
                todo.extend(p for p in _with_parents(target) if p not in seen)
    return frozenset(seen)


def files(module_names) -> set[str]:
    """Repo-relative paths of the modules' files."""
    return {modules()[m].relative_to(REPO).as_posix() for m in module_names}


def covering(paths: set[str]) -> list[str]:
    """`paths` (repo-relative files) with every folder whose .py files are all in it named once
    instead of its files: the shortest exact list of code dependencies."""
    out = set(paths)
    folders = sorted({str(Path(p).parent) for p in paths}, key=lambda d: -d.count("/"))
    for folder in folders:
        if folder in ("sslmae", "."):
            continue
        members = {p.relative_to(REPO).as_posix() for p in (REPO / folder).rglob("*.py")}
        if members <= paths:
            out = {p for p in out if not p.startswith(folder + "/")} | {folder}
    return sorted(out)


def stage_code(command: str) -> list[str]:
    """The code dependencies of a DVC stage that runs `sslmae <command>`: its command module and
    everything it imports, as `covering` lists them."""
    return covering(files(closure(f"sslmae.cli.commands.{command}", called=True)))

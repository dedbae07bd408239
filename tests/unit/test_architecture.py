"""The import graph: layers point one way (docs/architecture.md), no package imports a higher
one, none imports back into a circle, and no library module hides an sslmae import in a function."""

from __future__ import annotations

from tests.support.imports import REPO, imports, modules

# lowest first; a module may import its own layer's units and the layers below, never above
LAYERS = [
    ("sslmae.atomic", "sslmae.outputs", "sslmae.progress", "sslmae.metrics", "sslmae.hardware", "sslmae.knobs",
     "sslmae.redact", "sslmae.seen", "sslmae.digest", "sslmae.bands"),
    ("sslmae.datasets", "sslmae.loading", "sslmae.augment", "sslmae.report"),
    ("sslmae.split",),
    ("sslmae.model",),
    ("sslmae.config", "sslmae.inference"),
    ("sslmae.tracking",),
    ("sslmae.train",),
    ("sslmae.evaluate", "sslmae.predict", "sslmae.grid"),
    ("sslmae.fractions", "sslmae.release", "sslmae.serving"),
    ("sslmae.kubeflow",),
    ("components", "pipelines"),
    ("sslmae.cli",),
]
RANK = {unit: i for i, units in enumerate(LAYERS) for unit in units}
MAX_LINES = 350


def unit_of(module: str) -> str | None:
    parts = module.split(".")
    for n in (2, 1):
        if ".".join(parts[:n]) in RANK:
            return ".".join(parts[:n])
    return None


def test_every_library_module_belongs_to_a_layer():
    assert [m for m in modules() if m != "sslmae" and unit_of(m) is None] == []


def test_no_import_runs_back_up_and_none_forms_a_circle():
    edges, upward = {}, []
    for name, path in modules().items():
        src = unit_of(name)
        for target, line, _ in imports(path):
            dst = unit_of(target)
            if src is None or dst is None or dst == src:
                continue
            edges.setdefault(src, set()).add(dst)
            if RANK[dst] > RANK[src]:
                upward.append(f"{path.relative_to(REPO)}:{line} {src} -> {dst}")
    assert upward == []
    # units of one layer may import each other, but never in a circle
    seen, stack = set(), []

    def visit(unit):
        assert unit not in stack, f"import circle: {' -> '.join(stack[stack.index(unit):] + [unit])}"
        if unit in seen:
            return
        stack.append(unit)
        for nxt in sorted(edges.get(unit, ())):
            visit(nxt)
        stack.pop()
        seen.add(unit)

    for unit in sorted(edges):
        visit(unit)


def test_library_imports_of_sslmae_are_at_module_level():
    """Function-local imports are for optional heavy dependencies only (and for KFP components,
    whose function bodies run alone in the container). A project module imported late to keep a
    command's start fast says so on its line (`# late: why`); DVC's stage code follows those too
    (tests/support/imports.closure(called=True))."""
    hidden = [f"{path.relative_to(REPO)}:{line} {target}"
              for name, path in modules().items() if name.startswith("sslmae")
              for target, line, local in imports(path) if local and target.startswith("sslmae")
              and "# late: " not in path.read_text().splitlines()[line - 1]]
    assert hidden == []


def test_modules_stay_small():
    long = {str(p.relative_to(REPO)): n for p in (REPO / "sslmae").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_the_cli_package_imports_nothing():
    """A command's module imports only what the command runs (DVC derives stage code from it):
    the packages above it must not import every command."""
    for package in ("sslmae", "sslmae.cli", "sslmae.cli.commands"):
        assert [t for t, _, _ in imports(modules()[package]) if t.startswith("sslmae")] == [], package

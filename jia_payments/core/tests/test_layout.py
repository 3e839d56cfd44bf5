"""The import direction of the layout (docs/architecture.md): backoffice -> payments -> entitlements ->
pricing -> core, and an app uses another only through its `services` and `selectors`. Read from the source
(the AST of every module), so an import inside a function counts as much as one at the top."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
# Lowest first: each may import only those before it. The back office (the admin's dashboard and
# site) sits above every app.
LAYERS = ("core", "pricing", "entitlements", "payments", "backoffice")
PUBLIC = ("services", "selectors")


def _layer_of(module: str) -> str | None:
    if module == "jia_payments.core" or module.startswith("jia_payments.core."):
        return "core"
    top = module.split(".")[0]
    return top if top in LAYERS else None


def _modules(layer: str) -> list[Path]:
    base = ROOT / ("jia_payments/core" if layer == "core" else layer)
    return [
        path
        for path in sorted(base.rglob("*.py"))
        if not {"tests", "migrations"} & set(path.relative_to(base).parts)
    ]


def _type_checking_blocks(tree: ast.Module) -> set[int]:
    """Nodes under `if TYPE_CHECKING:`: imports for annotations only, never executed."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            skipped.update(id(inner) for statement in node.body for inner in ast.walk(statement))
    return skipped


def _imported(path: Path) -> set[str]:
    """Every module `path` imports at run time (`from a import b` counts as a.b when b may be a
    module); imports only for type annotations (under `if TYPE_CHECKING:`) are not dependencies."""
    found = set()
    tree = ast.parse(path.read_text(), str(path))
    annotations_only = _type_checking_blocks(tree)
    for node in ast.walk(tree):
        if id(node) in annotations_only:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if _layer_of(node.module) and "." not in node.module.removeprefix("jia_payments."):
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            else:
                found.add(node.module)
    return found


def _cross_layer_imports() -> list[tuple[str, str, str]]:
    edges = []
    for layer in LAYERS:
        for path in _modules(layer):
            for module in _imported(path):
                target = _layer_of(module)
                if target and target != layer:
                    edges.append((layer, str(path.relative_to(ROOT)), module))
    return edges


def test_every_layer_has_modules_to_check():
    for layer in LAYERS:
        assert len(_modules(layer)) > 3, layer


def test_core_imports_no_app():
    offending = [(path, module) for layer, path, module in _cross_layer_imports() if layer == "core"]
    assert offending == []


def test_apps_import_only_downwards():
    upwards = [
        (path, module)
        for layer, path, module in _cross_layer_imports()
        if LAYERS.index(_layer_of(module)) > LAYERS.index(layer)
    ]
    assert upwards == []


def test_another_app_is_used_only_through_its_services_and_selectors():
    offending = []
    for _layer, path, module in _cross_layer_imports():
        target = _layer_of(module)
        if target == "core":
            continue
        if module.split(".")[1:2] not in ([name] for name in PUBLIC):
            offending.append((path, module))
    assert offending == []


def test_the_checks_see_an_import_inside_a_function(tmp_path):
    source = tmp_path / "example.py"
    source.write_text(
        "def f():\n    from payments.models import Payment\n    from entitlements import services\n"
    )
    assert _imported(source) == {"payments.models", "entitlements.services"}


def test_an_import_for_annotations_only_is_not_a_dependency(tmp_path):
    source = tmp_path / "example.py"
    source.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pricing.models import Plan\n"
        "from pricing import selectors\n"
    )
    assert _imported(source) == {"typing", "pricing.selectors"}

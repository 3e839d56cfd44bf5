"""The product as it was before tracing, for the benchmark's reference: `bench.untraced:application`,
served with PYTHONPATH=bench/untraced_site so that this module's import hook is installed
at interpreter start, before gunicorn imports anything of the project.

Tracing off (no OTEL_* variable) should cost nothing; to measure that, the tracing bench compares
it with this app, where the tracing code is not there at all:

- the project's modules are compiled without their tracing hooks: every statement that only calls
  `tracing.<something>(...)` (business attributes, the caller's id) is removed, `tracing.active()`
  is the constant False (so the traced branches go), and the log processor imported from the
  tracing module is taken out of the processor lists it sits in;
- OpenTelemetry cannot be imported (as before its packages were installed): redis-py then skips
  its optional import of the SDK's metrics, and anything else that imported it would fail here.

`rewritten` records what was taken out of each module, so the bench can show that the reference
really differs from the product (and fail if the hooks moved and nothing was removed).
"""

import ast
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys

TRACING_MODULE = "jia_payments.core.ops.tracing"
PROJECT_PACKAGES = ("jia_payments", "payments", "entitlements", "pricing", "backoffice")

rewritten: dict[str, int] = {}  # module name -> tracing hooks removed


class _WithoutTracing(ast.NodeTransformer):
    def __init__(self) -> None:
        self.removed = 0
        self.imported: set[str] = set()  # names bound by `from <tracing module> import ...`

    def visit_ImportFrom(self, node):
        if node.module == TRACING_MODULE:
            self.imported.update(alias.asname or alias.name for alias in node.names)
        return node

    @staticmethod
    def _is_tracing_call(node, attribute: str | None = None) -> bool:
        return (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "tracing"
            and (attribute is None or node.func.attr == attribute)
        )

    def visit_Expr(self, node):
        if self._is_tracing_call(node.value):
            self.removed += 1
            return ast.copy_location(ast.Pass(), node)
        return self.generic_visit(node)

    def visit_Call(self, node):
        if self._is_tracing_call(node, "active") and not node.args:
            self.removed += 1
            return ast.copy_location(ast.Constant(False), node)
        return self.generic_visit(node)

    def _without_imported(self, node):
        self.generic_visit(node)
        kept = [e for e in node.elts if not (isinstance(e, ast.Name) and e.id in self.imported)]
        self.removed += len(node.elts) - len(kept)
        node.elts = kept
        return node

    visit_List = visit_Tuple = _without_imported


class _Loader(importlib.machinery.SourceFileLoader):
    def source_to_code(self, data, path, *, _optimize=-1):
        tree = ast.parse(data, filename=path)
        transformer = _WithoutTracing()
        # Imports first, so a list that names an imported processor is seen after its import.
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                transformer.visit_ImportFrom(node)
        tree = ast.fix_missing_locations(transformer.visit(tree))
        if transformer.removed:
            rewritten[self.name] = transformer.removed
        return compile(tree, path, "exec", dont_inherit=True, optimize=_optimize)

    def get_code(self, fullname):  # never the cached bytecode of the unmodified source
        source = self.get_data(self.path)
        return self.source_to_code(source, self.path)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname == "opentelemetry" or fullname.startswith("opentelemetry."):
            raise ModuleNotFoundError(f"{fullname}: not installed in the untraced reference", name=fullname)
        if fullname.split(".", 1)[0] not in PROJECT_PACKAGES or fullname == TRACING_MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return spec
        if "/tests/" in spec.origin:
            return spec
        loader = _Loader(fullname, spec.origin)
        return importlib.util.spec_from_file_location(
            fullname, spec.origin, loader=loader, submodule_search_locations=spec.submodule_search_locations
        )


def _install() -> None:
    already = [m for m in sys.modules if m.split(".", 1)[0] in (*PROJECT_PACKAGES, "opentelemetry")]
    if already:
        raise RuntimeError(f"bench.untraced must be imported before the app: {sorted(already)[:5]}")
    sys.meta_path.insert(0, _Finder())


_install()


def __getattr__(name: str):
    """`application`, built on first use (gunicorn loads it; the sitecustomize import does not)."""
    if name != "application":
        raise AttributeError(name)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jia_payments.settings")
    from django.core.wsgi import get_wsgi_application

    global application
    application = get_wsgi_application()
    return application

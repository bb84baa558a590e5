"""Every script in examples/ runs after the install line README gives for it.

Two checks per example, both against README's "Examples" table (so the table cannot
drift from the scripts):

* a test runs the example offline in a subprocess (no key, no network) and checks what
  it exports (each library's own example test; this file checks that one exists);
* the extra its row names installs every module the script imports outside an
  ``except ImportError`` fallback: the extra's requirements are resolved through the
  installed distributions' metadata, so ``demo`` lacking llama-index for
  ``llamaindex_rag.py`` fails here. ``.ci/matrix.d/examples.sh`` runs the same rows in
  fresh venvs made with exactly that line.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
ROW = re.compile(r'^\| `(examples/[\w./-]+\.py)` \| `pip install -e "\.\[([\w,-]+)\]"` \|', re.M)


def readme_rows() -> dict:
    return dict(ROW.findall((ROOT / "README.md").read_text(encoding="utf-8")))


def test_every_example_has_an_install_line():
    rows = readme_rows()
    scripts = sorted(f"examples/{p.name}" for p in (ROOT / "examples").glob("*.py"))
    assert scripts and sorted(rows) == scripts
    extras = set(metadata.metadata("instrumentors").get_all("Provides-Extra") or ())
    for example, names in rows.items():
        assert set(names.split(",")) <= extras, (example, names)


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    names = []
    if handler.type is None:
        return True
    for node in ast.walk(handler.type):
        if isinstance(node, ast.Name):
            names.append(node.id)
    return bool({"ImportError", "ModuleNotFoundError", "Exception"} & set(names))


def required_modules(path: Path) -> set:
    """Top-level modules imported outside a try whose except catches ImportError."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    optional: set = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(_catches_import_error(h) for h in node.handlers):
            for stmt in node.body:
                optional.update(id(n) for n in ast.walk(stmt))
    out = set()
    for node in ast.walk(tree):
        if id(node) in optional:
            continue
        if isinstance(node, ast.Import):
            out.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return {m for m in out if m not in sys.stdlib_module_names and m not in ("__future__", "instrumentors")}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def extra_closure(extras: str) -> set:
    """Canonical names of every distribution ``pip install instrumentors[extras]`` installs
    (resolved through the installed metadata; an uninstalled requirement stops there)."""
    todo = [("instrumentors", frozenset(extras.split(",")))]
    seen: set = set()
    while todo:
        name, wanted = todo.pop()
        key = (_canonical(name), wanted)
        if key in seen:
            continue
        seen.add(key)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for line in requires:
            req = Requirement(line)
            if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in (wanted or {""})):
                continue
            todo.append((req.name, frozenset(req.extras)))
    return {name for name, _ in seen}


@pytest.mark.parametrize("example", sorted(readme_rows()))
def test_the_readme_extra_installs_what_the_example_imports(example):
    extras = readme_rows()[example]
    closure = extra_closure(extras)
    providers = metadata.packages_distributions()
    missing = {}
    for module in required_modules(ROOT / example):
        dists = {_canonical(d) for d in providers.get(module, ())}
        assert dists, f"{example} imports {module!r}, which no installed distribution provides"
        if not dists & closure:
            missing[module] = sorted(dists)
    assert not missing, f'{example}: pip install -e ".[{extras}]" does not install {missing}'


def test_the_closure_check_can_fail():
    """The check above is real: the old README line for the LlamaIndex example (``demo``)
    does not install llama-index."""
    assert "llama-index-core" not in extra_closure("demo")
    assert "llama_index" in required_modules(ROOT / "examples" / "llamaindex_rag.py")
    assert "langchain_openai" not in required_modules(ROOT / "examples" / "langchain_rag.py")  # optional


def test_every_example_is_run_by_a_test():
    """Each example runs offline in a subprocess in a test of its own library (checking its
    output and spans): tests/store/test_store_demo.py, tests/openai/test_openai_entrypoints.py,
    tests/langchain/test_langchain_example.py, tests/llama_index/test_llama_index_example.py.
    A new example without such a test fails here."""
    me = Path(__file__).resolve()
    sources = [p.read_text(encoding="utf-8") for p in (ROOT / "tests").rglob("test_*.py") if p.resolve() != me]
    for example in readme_rows():
        name = Path(example).name
        assert any(f'"{name}"' in text and "subprocess.run" in text for text in sources), \
            f"no test runs {example} in a subprocess"

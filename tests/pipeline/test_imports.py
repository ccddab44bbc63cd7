"""The pipeline's modules import each other without a circle (config parsing never imports
an executor; each executor checks what it needs when it starts), and Ray stays unimported
until the Ray executor runs."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PIPELINE = Path(__file__).resolve().parents[2] / "ivi_rl" / "pipeline"


def _imports(path: Path) -> set[str]:
    """The pipeline modules ``path`` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                found.add(node.module.split(".")[0])
            elif node.level == 1:
                found.update(alias.name for alias in node.names)
            elif node.module and node.module.startswith("ivi_rl.pipeline."):
                found.add(node.module.split(".")[2])
    return found


def test_the_pipeline_modules_import_no_circle():
    graph = {p.stem: _imports(p) for p in PIPELINE.glob("*.py") if p.stem != "__init__"}
    graph = {m: deps & graph.keys() for m, deps in graph.items()}
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import circle: {' -> '.join((*path, module))}"
        if module not in done:
            for dep in sorted(graph[module]):
                visit(dep, (*path, module))
            done.add(module)

    for module in sorted(graph):
        visit(module, ())
    assert "ray_executor" not in graph["configs"] and "errors" in graph["configs"]


def test_reading_a_ray_config_imports_neither_ray_nor_its_executor(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(
        'executor = "ray"\n[[datasets]]\nname = "wheel"\n[[agents]]\nname = "uniform"\n'
    )
    code = (
        "import sys; from ivi_rl.pipeline.bandit_config import load_config; "
        f"load_config({str(config)!r}); "
        "print(sorted(m for m in sys.modules if m == 'ray' or m.endswith('ray_executor')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"

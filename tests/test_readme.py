"""The README's and the guides' (docs/*.md) Python examples run as written."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_python_blocks_run(page):
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
    if page == README:
        assert blocks, "README has no python example"
    for block in blocks:
        exec(compile(block, str(page), "exec"), {})


def test_readme_quick_start_is_two_make_commands():
    quick = README.read_text().split("## Quick start")[1].split("```bash\n")[1].split("```")[0]
    commands = [line.split("#")[0].strip() for line in quick.splitlines() if line.strip()]
    assert commands == ["make run", "make test"]


def test_every_benchmark_config_is_one_hop_from_the_readme():
    text = README.read_text()
    for config in sorted((ROOT / "experiments").glob("*.toml")):
        assert f"experiments/{config.name}" in text, config.name


@pytest.mark.parametrize(
    "page", [*PAGES, ROOT / "experiments" / "RESULTS.md"], ids=lambda p: p.name
)
def test_local_links_and_figures_exist(page):
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text())
    local = [t for t in targets if not re.match(r"[a-z]+://", t)]
    missing = [t for t in local if not (page.parent / t).exists()]
    assert not missing, f"{page.name} links to missing files: {missing}"


@pytest.mark.parametrize(
    "page", [*PAGES, ROOT / "experiments" / "RESULTS.md"], ids=lambda p: p.name
)
def test_the_files_and_tests_a_page_names_exist(page):
    """Every config, script, module and test a page's commands name is in the repository (the
    test function too, where one is named)."""
    text = page.read_text()
    files = set(re.findall(r"\b((?:experiments|tests|docs)/[\w/.-]+\.(?:toml|py|md))", text))
    modules = re.findall(r"python -m (experiments(?:\.\w+)+)", text)
    files |= {m.replace(".", "/") + ".py" for m in modules}
    missing = sorted(f for f in files if not (ROOT / f).exists())
    for path, name in re.findall(r"\b(tests/[\w/]+\.py)::(\w+)", text):
        if (ROOT / path).exists() and f"def {name}(" not in (ROOT / path).read_text():
            missing.append(f"{path}::{name}")
    assert not missing, f"{page.name} names missing files or tests: {missing}"

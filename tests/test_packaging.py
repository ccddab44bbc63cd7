"""The declared Python minimum is the one the code and the linter are held to."""

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

PYPROJECT = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())


def test_declared_minimum_matches_the_linter_target_and_this_interpreter():
    minimum = PYPROJECT["project"]["requires-python"]
    assert minimum == ">=3.11"  # tomllib and enum.StrEnum are 3.11
    assert PYPROJECT["tool"]["ruff"]["target-version"] == "py311"
    assert sys.version_info >= (3, 11)


def _build_wheel(tmp_path: Path) -> Path:
    # built from a copy: setuptools leaves build/ and *.egg-info beside the sources it builds
    root = tmp_path / "src"
    shutil.copytree(
        Path(__file__).resolve().parents[1],
        root,
        ignore=shutil.ignore_patterns(".*", "build", "runs", "*.egg-info", "__pycache__"),
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "dist"),
            str(root),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("ivi_rl-*.whl")
    return wheel


def test_installed_wheel_coexists_with_a_users_envs_and_agents(tmp_path):
    """The wheel installs one top-level name (ivi_rl), so a project's own ``envs.py`` and
    ``agents/`` keep importing next to it, and ivi_rl's own envs and agents still work."""
    wheel = _build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as z:
        tops = {name.split("/")[0] for name in z.namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"ivi_rl"}

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
    )
    # the dependencies (torch, gymnasium, ...) come from this interpreter's site-packages; a
    # plain path line in a .pth adds the folder without running its own .pth files, so this
    # checkout's editable install does not leak in
    deps = next(p for p in map(Path, sys.path) if p.name == "site-packages" and p.is_dir())
    site = next((venv / "lib").glob("python*/site-packages"))
    (site / "zz_dependencies.pth").write_text(f"{deps}\n")

    project = tmp_path / "project"
    (project / "agents").mkdir(parents=True)
    (project / "envs.py").write_text("WHOSE = 'user envs'\n")
    (project / "agents" / "__init__.py").write_text("WHOSE = 'user agents'\n")
    check = (
        "import envs, agents\n"
        "import gymnasium as gym\n"
        "import ivi_rl, ivi_rl.envs\n"
        "from ivi_rl.agents import IVIDQN\n"
        "from ivi_rl.agents.bandits import make_agent\n"
        "assert envs.WHOSE == 'user envs' and agents.WHOSE == 'user agents'\n"
        "assert 'site-packages' in ivi_rl.envs.__file__, ivi_rl.envs.__file__\n"
        "env = gym.make('ivi_rl/DeepSea-v0', size=4)\n"
        "print(env.reset(seed=0)[0].shape, IVIDQN.__module__)\n"
    )
    done = subprocess.run(
        [python, "-c", check], cwd=project, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["(4,", "4)", "ivi_rl.agents.sb3.ivi_dqn"]
    # the console script of the wheel, run from the user's folder
    version = subprocess.run(
        [venv / "bin" / "ivi-rl", "--version"], cwd=project, capture_output=True, text=True
    )
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"ivi-rl {PYPROJECT['project']['version']}"

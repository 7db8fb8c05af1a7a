"""pyproject.toml, environment.yml and binder/environment.yml must name the same dependencies.

A dependency added to one and forgotten in another breaks conda users or the
Binder demo long after the change, so the three lists are compared here,
names and version bounds both.
"""
from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
#: conda-forge names that differ from the Python package index's.
CONDA_TO_PIP = {"pytorch": "torch", "python-duckdb": "duckdb"}
#: conda-only entries: the interpreter and the installer, not Python dependencies.
CONDA_ONLY = {"python", "pip"}
_REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(.*?)\s*$")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _split(requirement: str) -> tuple[str, str]:
    # Environment markers and extras ("pkg[extra]>=1; python_version<'4'") do not change the name.
    m = _REQ.match(re.sub(r"\[.*?\]", "", requirement.split(";")[0]))
    assert m, f"cannot parse requirement {requirement!r}"
    return _normalise(m.group(1)), m.group(2).replace(" ", "")


def pyproject_requirements() -> dict[str, str]:
    """Runtime and every optional extra's requirements, as {name: version spec}."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    return dict(_split(r) for r in reqs)


def conda_requirements(path: Path) -> dict[str, str]:
    """The conda and pip entries of an environment file, renamed to package-index names."""
    env = yaml.safe_load(path.read_text())
    out = {}
    deps = []
    for dep in env["dependencies"]:
        # The pip: section: packages conda-forge lacks, and recapp itself ("-e .", an option, not a package).
        deps += [d for d in dep.get("pip", []) if not d.startswith("-")] if isinstance(dep, dict) else [dep]
    for dep in deps:
        name, spec = _split(dep)
        if name in CONDA_ONLY:
            continue
        out[CONDA_TO_PIP.get(name, name)] = spec
    return out


@pytest.mark.parametrize("env_file", ["environment.yml", "binder/environment.yml"])
def test_environment_file_matches_pyproject(env_file):
    conda = conda_requirements(ROOT / env_file)
    pip = pyproject_requirements()
    assert sorted(set(pip) - set(conda)) == [], f"in pyproject.toml but not in {env_file}"
    assert sorted(set(conda) - set(pip)) == [], f"in {env_file} but not in pyproject.toml"
    differ = {n: (pip[n], conda[n]) for n in pip if pip[n] != conda[n]}
    assert differ == {}, f"version bounds differ (pyproject, {env_file}): {differ}"


def test_binder_environments_agree():
    assert conda_requirements(ROOT / "binder" / "environment.yml") == conda_requirements(ROOT / "environment.yml")
    py = [d for d in yaml.safe_load((ROOT / "binder" / "environment.yml").read_text())["dependencies"] if isinstance(d, str)]
    assert "python=3.11" in py


def test_binder_post_build_installs_and_prefetches():
    post = ROOT / "binder" / "postBuild"
    text = post.read_text()
    assert post.stat().st_mode & 0o111, "binder/postBuild must be executable"
    assert text.startswith("#!/bin/bash") and "set -e" in text
    assert "pip install" in text and "-e ." in text
    assert "recapp.data fetch" in text and "recapp.dashboard --prepare" in text
    assert "binder/jupyter_config.json" in text


def test_binder_culls_idle_kernels():
    config = json.loads((ROOT / "binder" / "jupyter_config.json").read_text())
    mkm = config["MappingKernelManager"]
    assert 0 < mkm["cull_idle_timeout"] <= 3600 and 0 < mkm["cull_interval"] <= mkm["cull_idle_timeout"]

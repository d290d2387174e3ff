"""The set-up contract: environment.yml mirrors pyproject.toml; CI runs the README's command."""

import re
from pathlib import Path

import tomlkit
import yaml

ROOT = Path(__file__).resolve().parents[1]


def normalise(requirement: str) -> tuple[str, str]:
    name, spec = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(.*)", requirement).groups()
    return name.lower().replace("_", "-"), spec.replace(" ", "")


def test_environment_yml_mirrors_pyproject():
    project = tomlkit.parse((ROOT / "pyproject.toml").read_text()).unwrap()["project"]
    wanted = {normalise(r) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        wanted |= {normalise(r) for r in extra}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    listed = set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):  # a pip: section
            listed |= {normalise(r) for r in dep.get("pip", [])}
        else:
            listed.add(normalise(dep))
    conda_only = {("python", f">={project['requires-python'].lstrip('>=')}"), ("nodejs", ">=20"),
                  ("pip", "")}
    assert listed - conda_only == wanted, (
        f"only in environment.yml: {sorted(listed - conda_only - wanted)}; "
        f"only in pyproject.toml: {sorted(wanted - listed)}")


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/test.sh" in readme
    assert "bash scripts/demo.sh" in readme
    assert re.search(r"^exec bash scripts/test\.sh\s*$", ci, re.M)


def test_wrangler_is_pinned_for_the_conformance_suite():
    import json
    package = json.loads((ROOT / "package.json").read_text())
    version = package["devDependencies"]["wrangler"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), "pin an exact wrangler version"
    lock = json.loads((ROOT / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/wrangler"]["version"] == version

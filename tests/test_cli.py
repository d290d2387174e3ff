"""The command line: every subcommand runs, writes what it says, and fails clearly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cdpkit.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = str(ROOT / "examples" / "cdp-gateway.yaml")


def test_simulate_prints_summary_and_writes_report(tmp_path, capsys):
    assert main(["simulate", EXAMPLE, "--rate", "50", "--duration", "10", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "p99_latency" in out and "cdp-gateway" in out
    summary = pd.read_csv(tmp_path / "summary.csv", index_col=0).iloc[:, 0]
    assert summary["messages"] > 400 and summary["in_flight"] == 0
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000


def test_demo_writes_report_and_deployable_config(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["demo", "--rate", "50", "--duration", "10", "--requests", "200", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "capacity simulation" in text and "handler-code gateway" in text
    assert text.rstrip().splitlines()[-1].strip().startswith(".venv/bin/cdpkit lab")   # what next
    for name in ("summary.csv", "cost.csv", "messages.csv", "pipeline.png", "dashboard.png",
                 "handlers-local.csv", "handlers-production.csv"):
        assert (out / name).exists(), name
    toml = next((out / "deploy").rglob("wrangler.toml")).read_text()
    assert "cdp-command-queue" in toml and "max_batch_size" in toml


def test_export_refuses_to_overwrite_without_flag(tmp_path, capsys):
    assert main(["export", EXAMPLE, "--out", str(tmp_path)]) == 0
    assert main(["export", EXAMPLE, "--out", str(tmp_path)]) == 2
    assert "overwrite" in capsys.readouterr().err
    assert main(["export", EXAMPLE, "--out", str(tmp_path), "--overwrite"]) == 0


def test_bad_model_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nqueues:\n  jobs: {max_batch_size: 500}\n")
    assert main(["simulate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "max_batch_size" in err and "500" in err


def test_lab_dry_run_names_the_notebooks(capsys):
    assert main(["lab", "--dry-run"]) == 0
    assert "notebooks" in capsys.readouterr().out


def test_lab_passes_jupyter_options_through_and_handles_root(capsys, monkeypatch):
    assert main(["lab", "--dry-run", "--allow-root", "--port", "8899", "--no-browser"]) == 0
    out = capsys.readouterr().out
    assert out.count("--allow-root") == 1 and "--port 8899 --no-browser" in out
    monkeypatch.setattr("os.geteuid", lambda: 0)       # root: JupyterLab refuses without it
    assert main(["lab", "--dry-run"]) == 0
    assert "--allow-root" in capsys.readouterr().out
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert main(["lab", "--dry-run"]) == 0
    assert "--allow-root" not in capsys.readouterr().out
    with pytest.raises(SystemExit):                     # other commands stay strict
        main(["simulate", EXAMPLE, "--allow-root"])


def test_lab_starts_with_autosave_off():
    """Opening the committed notebooks must not rewrite them."""
    import json

    from cdpkit.cli import lab_command
    command = lab_command("notebooks", [])
    settings = Path(next(c for c in command if c.startswith("--LabApp.app_settings_dir=")).split("=", 1)[1])
    overrides = json.loads((settings / "overrides.json").read_text())
    assert overrides["@jupyterlab/docmanager-extension:plugin"]["autosave"] is False


def test_jupyterlab_is_part_of_the_default_install():
    import tomlkit
    project = tomlkit.parse((ROOT / "pyproject.toml").read_text()).unwrap()["project"]
    assert any(d.startswith("jupyterlab") for d in project["dependencies"])
    assert (Path(sys.executable).parent / "jupyter-lab").exists()


def test_module_entry_point():
    done = subprocess.run([sys.executable, "-m", "cdpkit", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "demo" in done.stdout and "export" in done.stdout


@pytest.mark.parametrize("argv", [["simulate"], ["export"], ["nope"]])
def test_usage_errors(argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2


def test_demo_refuses_an_output_folder_it_cannot_create_before_running(capsys):
    from cdpkit.cli import main
    assert main(["demo", "--out", "/dev/null/report"]) == 2
    err = capsys.readouterr().err
    assert "error: cdpkit demo: --out '/dev/null/report' cannot be created (Not a directory)" in err

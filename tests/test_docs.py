"""The docs cannot drift from the code: the README's settings table is the model's, every command's help
shows an example, and shell completion is offered."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sparkyfruit.cli import app
from sparkyfruit.config import RunConfig, reference_markdown
from tests.helpers import ROOT

runner = CliRunner()


def test_readme_configuration_reference_is_the_settings_model():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split("<!-- settings:start -->\n", 1)[1].split("\n<!-- settings:end -->", 1)[0]
    assert table == reference_markdown(), "run: python -m devtools.readme_settings"
    for name in RunConfig.model_fields:
        assert f"`SPARKYFRUIT_{name.upper()}`" in table


@pytest.mark.parametrize("command", [[], ["encode"], ["inspect"], ["reduce"], ["evaluate"], ["config", "show"]])
def test_every_help_is_complete_and_shows_an_example(command):
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    if command:
        assert "Example: sparkyfruit " + " ".join(command) in " ".join(result.output.split())
    else:
        for name in ("encode", "inspect", "reduce", "evaluate", "config"):
            assert name in result.output


def test_shell_completion_of_the_installed_command():
    """The script that `--install-completion` installs, and the answers it gets (bash protocol), without
    depending on which shell runs the tests."""
    script = str(Path(sys.executable).with_name("sparkyfruit"))

    def run(**env):
        return subprocess.run(
            [script], capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin", **env}
        )

    source = run(_SPARKYFRUIT_COMPLETE="source_bash")
    assert source.returncode == 0 and "complete -o default -F _sparkyfruit_completion sparkyfruit" in source.stdout
    commands = run(_SPARKYFRUIT_COMPLETE="complete_bash", COMP_WORDS="sparkyfruit e", COMP_CWORD="1")
    assert commands.stdout.split() == ["encode", "evaluate"]
    options = run(_SPARKYFRUIT_COMPLETE="complete_bash", COMP_WORDS="sparkyfruit encode --mo", COMP_CWORD="2")
    assert options.stdout.split() == ["--mode", "--model"]

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


def test_configuration_reference_is_the_settings_model():
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    table = text.split("<!-- settings:start -->\n", 1)[1].split("\n<!-- settings:end -->", 1)[0]
    assert table == reference_markdown(), "run: python -m devtools.readme_settings"
    for name in RunConfig.model_fields:
        assert f"`SPARKYFRUIT_{name.upper()}`" in table


def test_the_table_names_exactly_the_flags_that_encode_has():
    import typer.main

    from sparkyfruit.config import NO_FLAG

    encode = typer.main.get_command(app).commands["encode"]
    flags = {param.name for param in encode.params} - {"config"}
    assert flags == set(RunConfig.model_fields) - NO_FLAG


@pytest.mark.parametrize(
    "command",
    [[], ["encode"], ["inspect"], ["reduce"], ["evaluate"], ["models"], ["similar"], ["plan"], ["config", "show"]],
)
def test_every_help_is_complete_and_shows_an_example(command):
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    if command:
        assert "Example: sparkyfruit " + " ".join(command) in " ".join(result.output.split())
    else:
        for name in ("encode", "inspect", "reduce", "evaluate", "models", "similar", "plan", "config"):
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


def test_every_link_in_the_docs_works_in_a_clone():
    """Relative links (and their #anchors) in the README and docs/ point at files and headings that exist."""
    import re

    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    checked = 0
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+://", target):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            assert linked.exists(), f"{page.name}: {target}"
            if anchor:
                headings = re.findall(r"^#+ (.+)$", linked.read_text(encoding="utf-8"), re.M)
                slugs = {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}
                assert anchor in slugs, f"{page.name}: {target}"
            checked += 1
    assert checked >= 10
    assert (ROOT / "README.md").stat().st_size <= 10 * 1024

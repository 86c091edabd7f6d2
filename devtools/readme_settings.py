"""Rewrite the settings table of docs/configuration.md from the settings model: python -m devtools.readme_settings"""

from pathlib import Path

from sparkyfruit.config import reference_markdown

REFERENCE = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
START, END = "<!-- settings:start -->", "<!-- settings:end -->"


def main() -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    REFERENCE.write_text(f"{before}{START}\n{reference_markdown()}\n{END}{after}", encoding="utf-8")


if __name__ == "__main__":
    main()

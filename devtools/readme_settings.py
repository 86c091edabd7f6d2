"""Rewrite the README's configuration reference from the settings model: python -m devtools.readme_settings"""

from pathlib import Path

from sparkyfruit.config import reference_markdown

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- settings:start -->", "<!-- settings:end -->"


def main() -> None:
    text = README.read_text(encoding="utf-8")
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    README.write_text(f"{before}{START}\n{reference_markdown()}\n{END}{after}", encoding="utf-8")


if __name__ == "__main__":
    main()

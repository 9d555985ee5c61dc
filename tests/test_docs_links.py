"""Every relative link in the README and docs/ leads somewhere: a file or folder of this repository, and a heading
of the linked Markdown file where the link names one (GitHub's anchors: lower case, punctuation dropped, spaces
to hyphens)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINK = re.compile(r"(?<!\!)\[[^\]]*\]\(([^)\s]+)\)|\!\[[^\]]*\]\(([^)\s]+)\)")
CODE_BLOCK = re.compile(r"```.*?```", re.S)


def anchors(markdown: str) -> set[str]:
    found = set()
    for line in CODE_BLOCK.sub("", markdown).splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            title = re.sub(r"[^\w\- ]", "", title.replace("`", ""))
            found.add(title.replace(" ", "-"))
    return found


def broken_links(document: Path) -> list[str]:
    text = CODE_BLOCK.sub("", document.read_text(encoding="utf-8"))
    broken = []
    for match in LINK.finditer(text):
        target = match.group(1) or match.group(2)
        if re.match(r"^[a-z]+:", target) or target.startswith("#") and not target[1:]:
            continue  # http:, https:, mailto:
        path_part, _, anchor = target.partition("#")
        destination = (document.parent / path_part).resolve() if path_part else document
        if not destination.exists():
            broken.append(f"{document.relative_to(REPO)}: {target} (no such file)")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination.read_text(encoding="utf-8")):
            broken.append(f"{document.relative_to(REPO)}: {target} (no such heading)")
    return broken


def test_every_relative_link_in_the_readme_and_docs_resolves() -> None:
    documents = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    assert len(documents) > 5
    broken = [line for document in documents for line in broken_links(document)]
    assert not broken, "\n".join(broken)


def test_the_link_check_finds_a_missing_file_and_a_missing_heading(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(f"{__name__}.REPO", tmp_path)
    (tmp_path / "b.md").write_text("# A heading, with `code`\n")
    page = tmp_path / "a.md"
    page.write_text("[ok](b.md#a-heading-with-code) [gone](c.md) [bad anchor](b.md#nothing) [web](https://x.org)\n")
    assert broken_links(page) == ["a.md: c.md (no such file)", "a.md: b.md#nothing (no such heading)"]


def test_docs_keeps_prose_apart_from_run_outputs() -> None:
    """docs/ holds the prose (Markdown pages) and one results/ folder; what runs write goes under results/."""
    stray = sorted(p.name for p in (REPO / "docs").iterdir()
                   if not (p.is_file() and p.suffix == ".md") and p.name != "results")
    assert not stray, f"run outputs belong under docs/results/: {stray}"

"""Every link between the project's own documents resolves: a relative link names a file or
folder that exists, and a `#section` names a heading of that page (GitHub's anchors:
lower case, punctuation dropped, spaces as '-'). Links to the web are not followed (no
network here)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted(
    p
    for p in [
        *ROOT.glob("*.md"),
        *ROOT.glob("docs/**/*.md"),
        *ROOT.glob("benchmarks/*.md"),
        *ROOT.glob("profiles/**/*.md"),
        *ROOT.glob("tests/**/*.md"),
    ]  # fmt: skip
    if ".venv" not in p.parts
)
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation but '-' and '_' dropped, spaces as '-'."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set:
    text = CODE.sub("", page.read_text())
    return {anchor(m[1]) for m in re.finditer(r"^#{1,6} (.+)$", text, re.M)}


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def broken_links(page: Path) -> list:
    """Each link of `page` (outside code) to a missing file or section, as 'target: why'."""
    out = []
    for target in LINK.findall(CODE.sub("", page.read_text())):
        if re.match(r"[a-z]+:", target):  # https:, mailto:, file:
            continue
        path, _, section = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            out.append(f"{target}: no file {_name(dest)}")
        elif section and dest.suffix == ".md" and section not in anchors(dest):
            out.append(f"{target}: no section #{section} in {_name(dest)}")
    return out


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_link_resolves(page):
    broken = broken_links(page)
    assert not broken, f"{page.relative_to(ROOT)}:\n" + "\n".join(broken)


def test_the_check_finds_a_missing_file_and_a_moved_section(tmp_path):
    (tmp_path / "a.md").write_text("# Title here\n## One, two: three\n")
    page = tmp_path / "b.md"
    page.write_text(
        "[ok](a.md#one-two-three) [top](a.md#title-here) `[code](none.md)`\n[gone](c.md) [moved](a.md#four)\n"
    )
    assert [b.split(":")[0] for b in broken_links(page)] == ["c.md", "a.md#four"]

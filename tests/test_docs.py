"""The course's reference pages exist, are linked from every chapter, and cover every chapter."""
import re

import nbformat

from helpers.config import ROOT

SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))


def test_every_chapter_links_the_glossary_and_the_glossary_covers_every_chapter():
    glossary = (ROOT / "GLOSSARY.md").read_text()
    covered = set(re.findall(r"^\*\*(\d\d[a-z]?) ", glossary, flags=re.M))
    terms = re.findall(r"^- \*\*(.+?)\*\* \(([\d, a-z]+)\)", glossary, flags=re.M)
    for path in SOLUTIONS:
        first = nbformat.read(path, as_version=4).cells[0].source
        assert "[GLOSSARY.md](../GLOSSARY.md)" in first, f"{path.name}: link the glossary"
    chapters_with_notation = {p.name[:3].rstrip("_") for p in SOLUTIONS} - {"00", "05", "09"}
    assert chapters_with_notation <= covered, chapters_with_notation - covered
    named = {c.strip() for _, chs in terms for c in chs.split(",")}
    assert {p.name[:2] for p in SOLUTIONS} <= {c[:2] for c in named} | {"all"}
    assert [t for t, _ in terms] == sorted((t for t, _ in terms), key=str.lower), \
        "terms in alphabetical order"


def test_the_instructor_guide_times_every_chapter_and_is_linked():
    guide = (ROOT / "INSTRUCTORS.md").read_text()
    timed = dict(re.findall(r"^\| `?(\d\d[a-z]?_\w+)`? \| ([\d.]+) \|$", guide, flags=re.M))
    assert {p.stem for p in SOLUTIONS} == set(timed), "one timing row per chapter"
    assert all(float(v) > 0 for v in timed.values())
    assert "[GLOSSARY.md](GLOSSARY.md)" in guide
    assert "[INSTRUCTORS.md](INSTRUCTORS.md)" in (ROOT / "README.md").read_text()
    # every make target the guide tells an instructor to run exists
    makefile = (ROOT / "Makefile").read_text()
    for target in set(re.findall(r"`make (?:[A-Z]+=\S+ )*([a-z]\w*)", guide)):
        assert re.search(rf"^{target}:", makefile, flags=re.M), f"make {target} does not exist"


def test_the_readme_reading_times_are_the_chapters_own():
    """The students' section sums the reading times the chapters state in their first cell."""
    stated = {}
    for path in SOLUTIONS:
        m = re.search(r"\*\*Time:\*\* about ([\d.]+) (minutes|hours)(?: to read and solve)?;",
                      " ".join(nbformat.read(path, as_version=4).cells[0].source.split()))
        if m:
            stated[path.stem] = round(float(m.group(1)) * (60 if m.group(2) == "hours" else 1))
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"Chapters 00–(\d\d) state their reading time — (\d+) h (\d+) min together "
                  r"\(([\d, and]+) minutes\)", " ".join(readme.split()))
    assert m, "the README's reading-time sentence is missing or reworded"
    listed = [int(x) for x in re.findall(r"\d+", m.group(4))]
    assert listed == list(stated.values()) and max(stated)[:2] == m.group(1)
    assert int(m.group(2)) * 60 + int(m.group(3)) == sum(listed)

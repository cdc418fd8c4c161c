"""The course's reference pages exist, are linked from every chapter, and cover every chapter."""
import re

import nbformat

from helpers.core.config import ROOT

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
    rows = re.findall(r"^\| `(\d\d[a-z]?_\w+)` \| ([\d.]+) \| ([\d,]+) \|$", guide, flags=re.M)
    assert {p.stem for p in SOLUTIONS} == {name for name, _, _ in rows}, "one row per chapter"
    assert all(float(s) > 0 and 100 < int(mib.replace(",", "")) < 24_000 for _, s, mib in rows)
    total = re.search(r"All thirteen in ([\d.]+) minutes", guide)
    assert total and abs(float(total.group(1)) - sum(float(s) for _, s, _ in rows) / 60) < 0.1
    assert "[GLOSSARY.md](GLOSSARY.md)" in guide
    assert "[INSTRUCTORS.md](INSTRUCTORS.md)" in (ROOT / "README.md").read_text()
    # every make target the guide tells an instructor to run exists
    makefile = (ROOT / "Makefile").read_text()
    for target in set(re.findall(r"`make (?:[A-Z]+=\S+ )*([a-z]\w*)", guide)):
        assert re.search(rf"^{target}:", makefile, flags=re.M), f"make {target} does not exist"


def _prose_words(nb) -> int:
    return sum(len(re.findall(r"\w+", c.source)) for c in nb.cells if c.cell_type == "markdown")


def _stated_minutes(nb) -> float | None:
    m = re.search(r"\*\*Time:\*\* about ([\d.]+) (minutes|hours)(?: to read and solve)?;",
                  " ".join(nb.cells[0].source.split()))
    return m and float(m.group(1)) * (60 if m.group(2) == "hours" else 1)


WORDS_A_MINUTE = 35      # the course's reading pace, exercises included (README, "For students")
LESSON_MINUTES = 60      # the most one notebook may take at that pace (COURSE_GUIDE, a lesson)
# Chapters still longer than a lesson, to be split into parts the way 08a/08b/08c are (issue 37,
# item 2). The list may only shrink: a chapter on it that fits a lesson fails the test below.
TOO_LONG_FOR_NOW = {"02_collaborative_filtering", "04_bert_interest_models",
                    "05_reason_generation", "06_multimodal_fusion", "07_evaluation"}


def _pace_minutes(nb) -> float:
    return _prose_words(nb) / WORDS_A_MINUTE


def test_every_chapter_states_a_reading_time_in_line_with_its_length():
    """One rule for every notebook, the tour included: the stated time is within 20 % (+ rounding
    to 5 min) of words / 35, so a chapter that doubles its prose must restate its time. (Chapters
    01-06's authors' estimates implied 29-41 words a minute.)"""
    for path in SOLUTIONS:
        nb = nbformat.read(path, as_version=4)
        minutes = _stated_minutes(nb)
        assert minutes, f"{path.name}: no '**Time:** about N minutes (to read and solve);' line"
        pace = _pace_minutes(nb)
        assert abs(minutes - pace) <= 0.2 * pace + 2.5, (path.name, minutes, round(pace))


def test_every_notebook_is_lesson_sized():
    long = {p.stem: round(_pace_minutes(nbformat.read(p, as_version=4))) for p in SOLUTIONS}
    long = {stem: m for stem, m in long.items() if m > LESSON_MINUTES}
    assert set(long) <= TOO_LONG_FOR_NOW, (
        f"{sorted(set(long) - TOO_LONG_FOR_NOW)} take more than {LESSON_MINUTES} minutes at "
        f"{WORDS_A_MINUTE} words a minute ({long}): split the chapter into lessons (08a/08b/08c) "
        "or move benchmark notes to its 'Going further'")
    fitted = TOO_LONG_FOR_NOW - set(long)
    assert not fitted, f"{sorted(fitted)} fit a lesson now: take them off TOO_LONG_FOR_NOW"


def test_the_readme_reading_times_are_the_chapters_own():
    """The students' section sums the reading times the chapters state in their first cell."""
    stated = {path.stem: round(_stated_minutes(nbformat.read(path, as_version=4)))
              for path in SOLUTIONS}
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"Chapters 00–(\d\d) state their reading time — (\d+) h (\d+) min together "
                  r"\(([\d, and]+) minutes\)", " ".join(readme.split()))
    assert m, "the README's reading-time sentence is missing or reworded"
    listed = [int(x) for x in re.findall(r"\d+", m.group(4))]
    assert listed == list(stated.values()) and max(stated)[:2] == m.group(1)
    assert int(m.group(2)) * 60 + int(m.group(3)) == sum(listed)

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
    chapters_with_notation = {p.name[:3].rstrip("_") for p in SOLUTIONS} - {"00", "05a", "05b", "05c", "09"}
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
    total = re.search(r"All (\w+) in ([\d.]+) minutes", guide)
    words = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen " \
            "fifteen sixteen seventeen eighteen nineteen twenty".split()
    assert total and total.group(1) == words[len(rows) - 1], "the total names how many notebooks"
    assert abs(float(total.group(2)) - sum(float(s) for _, s, _ in rows) / 60) < 0.1
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
# Chapters still longer than a lesson, to be split into parts the way 02, 05, 06, 07 and 08 are
# (issue 37, item 2): none since 2026-12-07. It may only shrink: a chapter on it that fits a
# lesson fails the test below.
TOO_LONG_FOR_NOW: set[str] = set()


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


_MINUTE_WORDS = {"a": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}


def _stated_run_minutes(nb) -> tuple[str, float] | None:
    """("under" | "about", minutes) from the head's "the notebook runs in under/about N
    minute(s)" or "computes for about N s", or None."""
    head = " ".join(nb.cells[0].source.split())
    m = re.search(r"notebook (?:itself )?runs in (under|about) (\w+|[\d.]+) minutes?", head)
    if m:
        n = m.group(2)
        return m.group(1), float(n) if n[0].isdigit() else float(_MINUTE_WORDS[n])
    m = re.search(r"notebook computes for about (\d+) s\b", head)
    return m and ("about", float(m.group(1)) / 60)


def _measured_run_minutes() -> dict[str, float]:
    rows = re.findall(r"^\| `(\d\d[a-z]?_\w+)` \| ([\d.]+) \| [\d,]+ \|$",
                      (ROOT / "INSTRUCTORS.md").read_text(), flags=re.M)
    return {name: float(seconds) / 60 for name, seconds in rows}


def test_every_chapter_states_its_run_time_as_measured():
    """A chapter's "the notebook runs in about N minutes" is a result: it must agree with the
    compute time measured for it (INSTRUCTORS.md's table, written from `make course`'s report)
    — "under N" means at most N, "about N" within a factor of two either way. A chapter that
    grows heavier must be re-measured and restate its time."""
    measured = _measured_run_minutes()
    for path in SOLUTIONS:
        stated = _stated_run_minutes(nbformat.read(path, as_version=4))
        assert stated, f"{path.name}: no 'the notebook runs in about/under N minutes' in its head"
        how, minutes = stated
        got = measured[path.stem]
        ok = got <= minutes if how == "under" else minutes / 2 <= got <= 2 * minutes
        assert ok, (f"{path.name} says it runs in {how} {minutes:g} min; INSTRUCTORS.md measured "
                    f"{got:.1f} min: restate one of them from a new measurement")


def test_the_run_time_check_refuses_a_wrong_statement():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(
        "**Time:** about 20 minutes; the notebook runs in about two minutes on a laptop CPU.")])
    assert _stated_run_minutes(nb) == ("about", 2.0)
    nb.cells[0].source = "the notebook computes for about 80 s on a two-core AMD EPYC"
    assert _stated_run_minutes(nb) == ("about", 80 / 60)
    nb.cells[0].source = "nothing about time"
    assert _stated_run_minutes(nb) is None


def test_the_readme_chapter_table_states_the_measured_run_times():
    """The README's 'quick profile on 2 CPU cores' column (its first '≈ N s|min') agrees with
    INSTRUCTORS.md's measured compute time within a factor of two, as the chapters' heads do."""
    measured = _measured_run_minutes()
    rows = re.findall(r"^\| \d\d[a-z]? \| `(\d\d[a-z]?_\w+)` \|.*\| ≈ ([\d.]+) (s|min)\b",
                      (ROOT / "README.md").read_text(), flags=re.M)
    assert {name for name, _, _ in rows} == set(measured), "one README row per measured chapter"
    for name, value, unit in rows:
        stated = float(value) / (60 if unit == "s" else 1)
        assert stated / 2 <= measured[name] <= 2 * stated, (
            f"README says {name} runs in ≈ {value} {unit}; INSTRUCTORS.md measured "
            f"{measured[name]:.1f} min")


# Lessons still without a "vary and explain" exercise (issue 37, item 4): none since 2026-12-07.
# The list may only shrink: a lesson on it that has one fails the test below.
NO_VARY_YET: set[str] = set()


def test_every_lesson_has_its_exercises_questionnaire_and_a_vary_and_explain():
    """A lesson (one notebook) has at least two checked exercises, one questionnaire of 5-8
    questions, and a "vary and explain" exercise (README, "Exercises"; issue 37). Read from the
    chapter modules the notebooks' checks call, the way the grader finds them."""
    import importlib

    from helpers.course import grade
    from helpers.course.exercises.vary import Vary

    items = grade.chapter_items()
    assert {p.name for p in SOLUTIONS} == set(items), "every notebook has its checked items"
    with_vary = set()
    for notebook, entries in items.items():
        pairs = [(it, getattr(importlib.import_module(it.module), it.attr)) for _, it in entries]
        quizzes = [o for it, o in pairs if it.is_quiz]
        exercises = [o for it, o in pairs if not it.is_quiz]
        assert len(exercises) >= 2, f"{notebook}: {len(exercises)} checked exercise(s); a lesson has >= 2"
        assert len(quizzes) == 1 and 5 <= len(quizzes[0].questions) <= 8, \
            f"{notebook}: one questionnaire of 5-8 questions"
        if any(isinstance(o, Vary) for o in exercises):
            with_vary.add(notebook.removesuffix(".ipynb"))
    missing = {p.stem for p in SOLUTIONS} - with_vary
    assert missing <= NO_VARY_YET, f"{sorted(missing - NO_VARY_YET)} lost their vary-and-explain exercise"
    done = NO_VARY_YET - missing
    assert not done, f"{sorted(done)} have a vary-and-explain exercise now: take them off NO_VARY_YET"

"""Grading a class, measured: how long `make grade` takes for a class of 30 on 2 CPU cores.

    .venv/bin/python benchmarks/grade_benchmark.py                       # 30 students, chapter 00
    .venv/bin/python benchmarks/grade_benchmark.py --chapters 00_setup_and_tour.ipynb \\
        03_self_attention.ipynb --students 30 --jobs 2

Protocol: a class of ``--students`` synthetic students is written to ``build/grade_benchmark/``,
each with every chapter named, built from the real notebooks: two in three complete (each
exercise cell of ``chapters/`` replaced by its solution cell from ``solutions/``, matched by cell
id), one in six blank (the student notebook as distributed), one in six half done (the first
exercise answered, the questionnaire left). Then ``helpers.course.grade.grade`` grades the class
exactly as ``make grade`` does: sandboxed, the quick profile unless ``--profile`` says otherwise,
``--jobs`` notebooks at a time. Reported: the wall time of the whole grading, the mean, median
and maximum time of one notebook, the machine's load average before and after (other work on the
machine slows grading), and the share of items passed (a check that the class was graded, not that the
notebooks failed fast). The figures go to stdout and to ``build/grade_benchmark/result.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from helpers.course import grade  # noqa: E402


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _complete(chapter: dict, solution: dict, upto: int | None = None) -> dict:
    """The student notebook with its exercise cells replaced by the solution's (the first
    ``upto`` of them when given)."""
    by_id = {c.get("id"): c for c in solution["cells"]}
    out = json.loads(json.dumps(chapter))
    done = 0
    for cell in out["cells"]:
        if "exercise" not in cell.get("metadata", {}).get("tags", []):
            continue
        if upto is not None and done >= upto:
            break
        if cell.get("id") in by_id:
            cell["source"] = by_id[cell["id"]]["source"]
            done += 1
    return out


def build_class(folder: Path, chapters: list[str], students: int) -> dict[str, str]:
    """Write the synthetic class; returns student -> kind."""
    shutil.rmtree(folder, ignore_errors=True)
    kinds = {}
    for n in range(students):
        kind = ["complete", "complete", "complete", "complete", "blank", "half"][n % 6]
        name = f"student{n + 1:02d}"
        kinds[name] = kind
        (folder / name).mkdir(parents=True)
        for ch in chapters:
            chapter = _load(ROOT / "chapters" / ch)
            solution = _load(ROOT / "solutions" / ch)
            nb = {"complete": lambda: _complete(chapter, solution),
                  "blank": lambda: chapter,
                  "half": lambda: _complete(chapter, solution, upto=1)}[kind]()
            (folder / name / ch).write_text(json.dumps(nb))
    return kinds


def cpu_model() -> str:
    """The processor's name from /proc/cpuinfo (else what platform says)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--chapters", nargs="+", default=["00_setup_and_tour.ipynb"])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--profile", default="quick", choices=grade.PROFILES)
    parser.add_argument("--work", default=str(ROOT / "build" / "grade_benchmark"))
    args = parser.parse_args(argv)
    work = Path(args.work)
    kinds = build_class(work / "class", args.chapters, args.students)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    book = grade.grade(work / "class", work / "grades", profile=args.profile, jobs=args.jobs)
    wall = time.perf_counter() - t0
    load_after = os.getloadavg()
    seconds = [r.seconds for r in book.results]
    items = [it for r in book.results for it in r.items]
    passed = sum(it["state"] == "passed" for it in items) / max(len(items), 1)
    errored = sum(it["state"] == "errored" for it in items)
    result = {
        "date": time.strftime("%Y-%m-%d"), "machine": cpu_model(),
        "cores": os.cpu_count(), "python": platform.python_version(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "students": args.students, "chapters": args.chapters, "jobs": args.jobs,
        "profile": args.profile, "notebooks": len(book.results), "wall_s": round(wall, 1),
        "notebook_mean_s": round(sum(seconds) / len(seconds), 1),
        "notebook_median_s": round(statistics.median(seconds), 1),
        "notebook_max_s": round(max(seconds), 1), "share_passed": round(passed, 3),
        "items_errored": errored, "kinds": {k: list(kinds.values()).count(k) for k in
                                            sorted(set(kinds.values()))},
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in load_after],
    }
    (work / "result.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    print(f"\n{args.students} students x {len(args.chapters)} chapter(s) = {len(book.results)} "
          f"notebooks graded in {wall / 60:.1f} min on {os.cpu_count()} cores ({args.jobs} at a "
          f"time, {args.profile} profile); one notebook {result['notebook_mean_s']} s on average.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

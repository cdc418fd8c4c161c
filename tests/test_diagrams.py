"""The chapters' diagrams: tools/diagrams.py draws each into figures/, its chapter shows it, and the
committed SVGs are exactly what the script draws (so the source is the truth, not the file)."""
import re
import shutil
import sys
import xml.etree.ElementTree as ET

import nbformat
import pytest

from helpers.core.config import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import diagrams  # noqa: E402

NOTEBOOKS = sorted((ROOT / "solutions").glob("*.ipynb")) + sorted((ROOT / "chapters").glob("*.ipynb"))
_IMAGE = re.compile(r"!\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)"
                    r"|<img\b[^>]*?\bsrc\s*=\s*[\"']([^\"']+)[\"'][^>]*>")


def _images(path):
    """(cell index, alt text, target) of every image a notebook's Markdown cells show."""
    for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
        if cell.cell_type == "markdown":
            for m in _IMAGE.finditer(cell.source):
                alt = m.group(1) if m.group(2) else (re.search(r"\balt\s*=\s*[\"']([^\"']*)",
                                                               m.group(0)) or [None, ""])[1]
                yield i, alt, m.group(2) or m.group(3)


def _differing(folder, scratch):
    """Diagrams whose SVG in ``folder`` differs from a fresh drawing (missing ones included),
    and SVGs there that no diagram draws."""
    fresh = {p.name: p.read_bytes() for p in diagrams.write_all(scratch)}
    have = {p.name: p.read_bytes() for p in folder.glob("*.svg")}
    return sorted(name for name in fresh.keys() | have.keys() if fresh.get(name) != have.get(name))


def test_every_diagram_is_shown_by_its_chapter():
    for name, (_, chapter) in diagrams.DIAGRAMS.items():
        for folder in ("solutions", "chapters"):
            shown = [target for _, _, target in _images(ROOT / folder / f"{chapter}.ipynb")]
            assert f"../figures/{name}.svg" in shown, f"{folder}/{chapter}.ipynb does not show {name}"


def test_every_image_a_chapter_shows_is_a_file_here_with_alt_text():
    found = 0
    for path in NOTEBOOKS:
        for cell, alt, target in _images(path):
            where = f"{path.relative_to(ROOT)}, cell {cell}: {target}"
            assert not re.match(r"[a-z][a-z0-9+.-]*:", target), \
                f"{where}: the course runs offline, show a file of the repository"
            assert (path.parent / target).is_file(), f"{where} does not exist"
            assert len(alt.split()) >= 8, f"{where}: give it alt text that describes the picture"
            found += 1
    assert found >= 2 * len(diagrams.DIAGRAMS)     # solutions/ and chapters/ each show every one


def test_the_committed_svgs_are_what_the_script_draws(tmp_path):
    assert _differing(diagrams.FIGURES, tmp_path) == [], \
        "figures/ differs from tools/diagrams.py's drawing: run `make diagrams` (never edit an SVG)"


def test_a_hand_edited_svg_fails_the_check(tmp_path, monkeypatch):
    copy = tmp_path / "figures"
    shutil.copytree(diagrams.FIGURES, copy)
    svg = copy / "transformer_block.svg"
    svg.write_text(svg.read_text().replace("LayerNorm", "BatchNorm"))
    assert _differing(copy, tmp_path / "fresh") == ["transformer_block.svg"]
    (copy / "stray.svg").write_text("<svg/>")
    assert diagrams.stale_diagrams(copy) == ["transformer_block", "stray"]
    monkeypatch.setattr(diagrams, "FIGURES", copy)
    assert diagrams.main(["--check", "--out", str(copy)]) == 1


@pytest.mark.parametrize("name", list(diagrams.DIAGRAMS))
def test_each_svg_is_xml_with_its_labels_as_text(name):
    root = ET.parse(diagrams.FIGURES / f"{name}.svg").getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = {"".join(e.itertext()) for e in root.iter("{http://www.w3.org/2000/svg}text")}
    _, labels = diagrams.render(name)
    assert labels and not set(labels) - texts, sorted(set(labels) - texts)
    assert float(root.get("width").removesuffix("pt")) <= 7.8 * 72    # fits a notebook's width

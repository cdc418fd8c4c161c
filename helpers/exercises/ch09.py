"""Exercises of chapter 09 (the capstone), each checked against an independent reference: chapter
05's ``ClosedWorldGuard.choose`` for the serving rule of a reason (q1), and Python's own HTML
parser for a row of the page that must show untrusted text as text (q2)."""
from __future__ import annotations

import html
from html.parser import HTMLParser

from . import Exercise, Incorrect, progress_of, shape_of

_NB = "09_capstone.ipynb"
_WORLD = {}


def _world():
    if "w" not in _WORLD:
        from .. import nlg

        w = nlg.reason_world()
        template = nlg.TemplateExplainer(w.facts, w.profile)
        _WORLD["w"] = (w, template, nlg.ClosedWorldGuard(w.facts, w.lex, fallback=template))
    return _WORLD["w"]


def _check_serve(fn) -> str:
    w, template, guard = _world()
    user, item = int(w.warm["user_id"].iloc[0]), int(w.warm["item_id"].iloc[0])
    good = template.explain_one(user, item)
    cases = [([good], (good, False)),
             (["It is made of gold and waterproof.", good], (good, False)),
             (["It is made of gold.", "Number 1 best seller!"], (template.fallback_for(user, item),
                                                                 True)),
             ([], (template.fallback_for(user, item), True)),
             ([None, "", good], (good, False))]
    for cands, want in cases:
        assert guard.choose(list(cands), user, item) == want     # the reference agrees
        got = fn(list(cands), user, item, guard, template)
        if not isinstance(got, tuple) or len(got) != 2:
            raise Incorrect(f"return a (reason, used_fallback) pair, got {shape_of(got)}.")
        if got != want:
            hint = ""
            if cands and got[0] == cands[0]:
                hint = " The first candidate is not always true: ask guard.passes first."
            elif want[1] and not str(got[0]).startswith("[fallback]"):
                hint = (" When nothing passes, serve template.fallback_for(user, item): the "
                        "template's reason, marked as a fallback.")
            raise Incorrect(f"candidates {cands!r}: the served pair is {want!r}; you returned "
                            f"{got!r}.{hint}")
    return ("It serves exactly what chapter 05's ClosedWorldGuard.choose serves on five cases "
            "(a lie first, nothing true, no candidates, empty entries).")


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def _check_render(fn) -> str:
    cases = [(1, "Aurora Kano 84 X headphones", "headphones", 97.5,
              "It is good value for money, which matters to you."),
             (3, "<script>steal(document.cookie)</script> lamp", "desk_lamps", 12.0,
              'Great "deal" & <img src=x onerror=alert(1)> it is'),
             (10, "Tom's <b>best</b> kettle", "coffee_makers", 161.66, "A < B > C")]
    for rank, title, category, price, reason in cases:
        got = fn(rank, title, category, price, reason)
        if not isinstance(got, str):
            raise Incorrect(f"return the row's HTML as a string, got {shape_of(got)}.")
        p = _Tags()
        p.feed(got)
        p.close()
        extra = sorted(set(p.tags) - {"b", "br", "i", "small"})
        if extra:
            raise Incorrect(f"title {title!r}, reason {reason!r}: your HTML contains the tags "
                            f"{extra}, which came from the shop's or a shopper's text. Escape "
                            "untrusted text (html.escape) before putting it in a page: a browser "
                            "runs what it finds.")
        text = "".join(p.text)
        for what, value in (("title", title), ("reason", reason),
                            ("category", category.replace("_", " ")), ("price", f"{price:.2f}"),
                            ("rank", str(rank))):
            if value not in text:
                raise Incorrect(f"the row must show the {what} {value!r} as text; the browser "
                                f"would show {text!r}.")
    return ("Every title and reason shows as text, never as markup: Python's HTML parser finds "
            "only your own tags, even with a <script> in the title.")


q1 = Exercise(name="ch09.q1", title="Write serve_reason(candidates, user, item, guard, template)",
              var="serve_reason", checker=_check_serve, notebook=_NB,
              hint_text="Loop over the candidates; skip anything that is not a non-empty string; "
                        "return `(c, False)` for the first with `guard.passes(c, user, item)`; "
                        "after the loop return `(template.fallback_for(user, item), True)`.",
              nudge=("Serve the first candidate the guard can account for word by word; if none "
                     "passes, serve the template's reason, marked so everyone can see it is the "
                     "fallback."))
q2 = Exercise(name="ch09.q2", title="Write render_row(rank, title, category, price, reason)",
              var="render_row", checker=_check_render, notebook=_NB,
              hint_text="`esc = html.escape`; return `f\"<b>{rank}. {esc(title)}</b> · "
                        "{esc(category.replace('_', ' '))} · ${price:.2f}<br>{esc(reason)}\"`.",
              nudge=("Titles, brands and reviews are text from outside: a page must show them as "
                     "text, never let the browser read them as markup. Escape every piece of "
                     "text you did not write yourself."))

progress = progress_of(__name__)

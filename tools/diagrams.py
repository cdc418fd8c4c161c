"""The chapters' diagrams, drawn from this source: one function per diagram, each an SVG in figures/.

    .venv/bin/python tools/diagrams.py            # (re)draw every diagram into figures/ (make diagrams)
    .venv/bin/python tools/diagrams.py --check    # fail if figures/ is not exactly what this draws
    .venv/bin/python tools/diagrams.py --out DIR  # draw into another folder

Every box and arrow says what the course's code does, in the code's names (``helpers/``), so a
diagram changes when the code it pictures changes. A chapter shows one as
``![what the diagram shows](../figures/<name>.svg)``: ``chapters/`` and ``solutions/`` are
siblings, so the same path works from both (``make chapters`` copies the cell as it is).

The output is byte-identical on every run: text stays text (``svg.fonttype = 'none'``, so it can be
searched and read by a screen reader), the ids matplotlib writes are salted with a fixed string, and
no date or tool version is stored. Every position is set here, never measured from a font, so the
files do not depend on the fonts a machine has; a viewer draws the text in DejaVu Sans or its
own sans-serif. tests/test_diagrams.py checks that figures/ is this script's output, that every
diagram is shown by its chapter and that every label is in its SVG as text.
"""
from __future__ import annotations

import argparse
import io
import sys
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("svg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch, Rectangle  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "figures"

STYLE = {
    "svg.fonttype": "none",
    "svg.hashsalt": "reasonrec-diagrams",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Helvetica", "Arial"],
    "font.monospace": ["DejaVu Sans Mono", "Menlo", "Consolas"],
}
METADATA = {"Date": None, "Creator": None, "Format": None, "Type": None}

# one colour per role, the same in every diagram (each diagram's legend names the ones it uses)
KINDS = {
    "data": ("#f1f1f1", "input or data"),
    "layer": ("#dde9f8", "learned layer or model"),
    "step": ("#fdf1d6", "computation, no weights"),
    "check": ("#f9dcd6", "check against the facts"),
    "out": ("#dff1dc", "output"),
}
EDGE, INK, MUTED = "#3a3a3a", "#1a1a1a", "#5a5a5a"
FONT = 8.5        # points; notebook width shows a 7.8-inch diagram at about this size
SMALL = 7.5


@dataclass
class Diagram:
    """A canvas in inches (origin bottom left) that records every label it draws."""

    width: float
    height: float
    labels: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.fig = plt.figure(figsize=(self.width, self.height))
        self.ax = self.fig.add_axes((0, 0, 1, 1))
        self.ax.set_xlim(0, self.width)
        self.ax.set_ylim(0, self.height)
        self.ax.axis("off")

    # -- text ------------------------------------------------------------------------------
    def text(self, x, y, line, size=FONT, mono=False, bold=False, color=INK, ha="center",
             italic=False):
        """One line of text centred vertically on ``y`` (baseline placed by hand: no font
        metrics are read, so the output is the same whatever fonts the machine has)."""
        self.ax.text(x, y - 0.36 * size / 72, line, fontsize=size, ha=ha, va="baseline",
                     family="monospace" if mono else "sans-serif", color=color,
                     fontweight="bold" if bold else "normal",
                     fontstyle="italic" if italic else "normal")
        self.labels.append(line)

    def lines(self, x, y, rows, ha="center"):
        """Rows of ``(text, style)`` (style: '', 'b' bold, 'm' mono, 's' small, 'i' italic,
        combinable) stacked and centred on ``y``."""
        sizes = [SMALL if "s" in st or "m" in st else FONT for _, st in rows]
        steps = [1.3 * s / 72 for s in sizes]
        top = y + sum(steps) / 2
        for (line, st), step, size in zip(rows, steps, sizes):
            top -= step / 2
            self.text(x, top, line, size=size, mono="m" in st, bold="b" in st, ha=ha,
                      italic="i" in st, color=MUTED if "i" in st else INK)
            top -= step / 2

    # -- shapes ----------------------------------------------------------------------------
    def box(self, cx, cy, w, h, rows, kind="layer", ha="center"):
        """A rounded box centred on ``(cx, cy)`` holding ``rows`` (see :meth:`lines`)."""
        fc = KINDS[kind][0]
        if kind not in self.kinds:
            self.kinds.append(kind)
        self.ax.add_patch(FancyBboxPatch((cx - w / 2, cy - h / 2), w, h,
                                         boxstyle="round,pad=0,rounding_size=0.06",
                                         fc=fc, ec=EDGE, lw=0.9))
        rows = [(r, "") if isinstance(r, str) else r for r in rows]
        self.lines(cx if ha == "center" else cx - w / 2 + 0.08, cy, rows, ha=ha)
        return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)

    def plus(self, cx, cy, r=0.11):
        """The residual sum: a circle with a plus."""
        self.ax.add_patch(Circle((cx, cy), r, fc="white", ec=EDGE, lw=0.9))
        self.ax.plot([cx - r * 0.55, cx + r * 0.55], [cy, cy], color=EDGE, lw=1.0)
        self.ax.plot([cx, cx], [cy - r * 0.55, cy + r * 0.55], color=EDGE, lw=1.0)

    def cell(self, x, y, w, h, fc):
        self.ax.add_patch(Rectangle((x, y), w, h, fc=fc, ec=EDGE, lw=0.6))

    def arrow(self, *points, color=EDGE, dashed=False):
        """A polyline through ``points`` with an arrowhead at the last one."""
        ls = (0, (3, 2)) if dashed else "-"
        for (x0, y0), (x1, y1) in zip(points[:-2], points[1:-1]):
            self.ax.plot([x0, x1], [y0, y1], color=color, lw=1.0, ls=ls, solid_capstyle="butt")
        self.ax.add_patch(FancyArrowPatch(points[-2], points[-1], arrowstyle="-|>",
                                          mutation_scale=9, color=color, lw=1.0,
                                          linestyle=ls, shrinkA=0, shrinkB=0))

    def legend(self, y=0.16):
        """One line naming the colours this diagram uses, centred at the bottom."""
        items = [k for k in KINDS if k in self.kinds]
        widths = [0.22 + 0.058 * len(KINDS[k][1]) for k in items]
        x = (self.width - sum(widths) - 0.25 * (len(items) - 1)) / 2
        for k, w in zip(items, widths):
            self.ax.add_patch(Rectangle((x, y - 0.055), 0.14, 0.11, fc=KINDS[k][0], ec=EDGE,
                                        lw=0.6))
            self.text(x + 0.2, y, KINDS[k][1], size=SMALL, ha="left", color=MUTED)
            x += w + 0.25

    def svg(self) -> bytes:
        buf = io.BytesIO()
        self.fig.savefig(buf, format="svg", metadata=METADATA)
        plt.close(self.fig)
        return buf.getvalue()


DIAGRAMS: dict[str, tuple] = {}
"""name -> (drawing function, the chapter that shows it)."""


def diagram(name: str, chapter: str):
    def register(fn):
        DIAGRAMS[name] = (fn, chapter)
        return fn
    return register


# ----------------------------------------------------------------------------- chapter 03
@diagram("transformer_block", "03_self_attention")
def transformer_block() -> Diagram:
    """helpers.models.attention.TransformerBlock: pre-norm, x + attn(ln_1(x)), + mlp(ln_2(x))."""
    d = Diagram(7.8, 2.55)
    y = 1.25
    d.lines(0.5, y, [("x", "b"), ("(b, t, d_model)", "s")])
    d.box(1.5, y, 0.8, 0.55, [("ln_1", "m"), "LayerNorm"], "layer")
    d.box(3.025, y, 1.85, 1.05, [("attn: MultiHeadAttention", "b"), ("c_attn → q, k, v", "m"),
                                 ("split into n_head heads", "s"),
                                 "softmax(q kᵀ / √d_k) v", ("merge_heads → c_proj", "m")], "layer")
    d.plus(4.2, y)
    d.box(4.85, y, 0.8, 0.55, [("ln_2", "m"), "LayerNorm"], "layer")
    d.box(6.1, y, 1.2, 1.05, [("mlp: MLP", "b"), ("c_fc: d → 4d", "m"), "GELU",
                              ("c_proj: 4d → d", "m")], "layer")
    d.plus(6.95, y)
    d.lines(7.45, y, [("out", "b"), ("same shape", "s")])
    for a, b in ((0.95, 1.1), (1.9, 2.1), (3.95, 4.09), (4.31, 4.45), (5.25, 5.5),
                 (6.7, 6.84), (7.06, 7.25)):
        d.arrow((a, y), (b, y))
    # the residual connections, over the top
    top = 2.15
    d.arrow((1.0, y), (1.0, top), (4.2, top), (4.2, y + 0.11))
    d.text(2.6, top + 0.11, "residual: x + attn(ln_1(x))", size=SMALL, color=MUTED)
    d.arrow((4.38, y), (4.38, top - 0.1), (6.95, top - 0.1), (6.95, y + 0.11))
    d.text(5.65, top + 0.01, "residual: x + mlp(ln_2(x))", size=SMALL, color=MUTED)
    # the mask enters the attention
    d.box(3.025, 0.45, 1.85, 0.3, [("mask: causal and/or padding", "s")], "data")
    d.arrow((3.025, 0.6), (3.025, y - 0.525))
    d.legend(0.12)
    return d


# ----------------------------------------------------------------------------- chapter 04
@diagram("two_tower", "04_bert_interest_models")
def two_tower() -> Diagram:
    """helpers.models.interest.TwoTowerRecommender and in_batch_softmax_loss."""
    d = Diagram(7.8, 3.75)
    ux, ix, w = 1.25, 3.75, 2.3
    d.text(ux, 2.95, "user tower (_UserTower)", bold=True)
    d.text(ix, 2.95, "item tower", bold=True)
    d.box(ux, 0.7, w, 0.55, ["the last max_len history items:",
                              ("their MiniLM text vectors (t, 384)", "s")], "data")
    d.box(ux, 1.45, w, 0.45, [("proj (Linear), tanh", "m"), ("one vector per history item", "s")],
          "layer")
    d.box(ux, 2.1, w, 0.45, ["attention pooling", ("a learned query; pads masked", "s")], "layer")
    d.box(ux, 2.62, w, 0.3, [("out (Linear) → normalise → u", "m")], "layer")
    d.box(ix, 0.7, w, 0.55, ["the item's MiniLM text vector (384)",
                              ("frozen, or top layers fine-tuned", "s")], "data")
    d.box(ix, 1.75, w, 0.7, [("item_proj (Linear)", "m"), "v + item_proj(v)",
                             ("residual, starts at zero", "s")], "layer")
    d.box(ix, 2.62, w, 0.3, [("normalise → v", "m")], "layer")
    for x, a, b in ((ux, 0.975, 1.225), (ux, 1.675, 1.875), (ux, 2.325, 2.47), (ix, 0.975, 1.4),
                    (ix, 2.1, 2.47)):
        d.arrow((x, a), (x, b))
    d.box(2.5, 3.45, 3.4, 0.42, ["score = u · v / temperature",
                                 ("serving: user_vecs @ item_vecs.T → top k", "s")], "step")
    d.arrow((ux, 3.07), (ux, 3.24))
    d.arrow((ix, 3.07), (ix, 3.24))
    # training: a B x B matrix of scores, the positives on its diagonal
    gx, gy, c = 5.75, 1.2, 0.3
    d.text(gx + 2 * c, 2.75, "training: a batch of B pairs", size=SMALL)
    d.text(gx + 2 * c, 2.6, "gives B × B scores", size=SMALL)
    for r in range(4):
        for k in range(4):
            d.cell(gx + k * c, gy + (3 - r) * c, c, c, "white")
        d.text(gx + (r + 0.5) * c, gy + (3.5 - r) * c, "+", bold=True)
    d.text(gx - 0.1, gy + 2 * c, "users", size=SMALL, color=MUTED, ha="right")
    d.text(gx + 2 * c, gy - 0.12, "their next items", size=SMALL, color=MUTED)
    d.arrow((4.2, 3.45), (gx + 2 * c, 3.45), (gx + 2 * c, 2.85))
    d.lines(gx + 2 * c, 0.72, [("in_batch_softmax_loss", "m"),
                               ("row b's positive: column b (+),", "s"),
                               ("minus log q per column", "s")])
    d.legend(0.14)
    return d


@diagram("bert4rec", "04_bert_interest_models")
def bert4rec() -> Diagram:
    """helpers.models.interest.BERT4Rec / BERT4RecRecommender (an ItemSequenceEncoder)."""
    d = Diagram(7.8, 3.45)
    xs = [1.0, 1.9, 2.8, 3.7, 4.6]
    tokens = [("0", "pad"), ("i₁", ""), ("[MASK]", ""), ("i₃", ""), ("[MASK]", "")]
    for x, (tok, note) in zip(xs, tokens):
        masked = tok == "[MASK]"
        d.box(x, 0.62, 0.75, 0.34, [(tok, "m" if masked else "")], "data")
        if note:
            d.text(x, 0.3, note, size=SMALL, color=MUTED)
        d.arrow((x, 0.79), (x, 0.99))
    d.box(2.8, 1.17, 4.4, 0.36, [("item_emb + pos_emb", "m")], "layer")
    d.box(2.8, 1.86, 4.4, 0.62, [("n_layer × TransformerBlock (chapter 03), then ln_f", "b"),
                                 ("no causal mask: every position reads every real item", "s")], "layer")
    d.arrow((2.8, 1.35), (2.8, 1.55))
    for x in (2.8, 4.6):
        d.arrow((x, 2.17), (x, 2.45))
        d.box(x, 2.63, 1.25, 0.36, [("logits(h)", "m")], "step")
        d.arrow((x, 2.81), (x, 3.0))
    d.box(2.8, 3.17, 1.25, 0.32, ["i₂ ?"], "out")
    d.box(4.6, 3.17, 1.25, 0.32, ["next item ?"], "out")
    d.lines(6.35, 2.85, [("h · item_embᵀ: a score", "s"), ("for every item (tied)", "s")])
    d.lines(6.35, 1.95, [("training: mask_items hides", "s"), ("mask_prob of the real items;", "s"),
                         ("cross-entropy on them", "s")])
    d.lines(6.35, 1.05, [("recommending: [MASK]", "s"), ("appended after the last", "s"),
                         ("item; its scores rank", "s")])
    d.legend(0.1)
    return d


# ----------------------------------------------------------------------------- chapter 05
@diagram("peter", "05b_language_models")
def peter() -> Diagram:
    """helpers.reasons.explainers.PETER: [user, item, <bos>, w1..wn] through one Transformer."""
    d = Diagram(7.8, 3.4)
    xs = [0.9, 1.85, 2.8, 3.6, 4.4, 5.2]
    toks = ["user", "item", "<bos>", "w₁", "w₂", "…"]
    embs = ["user_emb", "item_emb", "word_emb", "word_emb", "word_emb", ""]
    for x, t, e in zip(xs, toks, embs):
        d.box(x, 0.55, 0.7, 0.32, [t], "data")
        if e:
            d.arrow((x, 0.71), (x, 0.93))
    d.box(3.05, 1.1, 4.8, 0.34, [("user_emb, item_emb, word_emb  +  pos_emb", "m")], "layer")
    d.box(3.05, 1.78, 4.8, 0.66, [("n_layer × TransformerBlock (chapter 03) with peter_mask, then ln_f", "b"),
                                  ("user and item see each other; each word sees the user,", "s"),
                                  ("the item and the words before it", "s")], "layer")
    d.arrow((3.05, 1.27), (3.05, 1.45))
    d.arrow((0.9, 2.11), (0.9, 2.4))
    d.arrow((1.85, 2.11), (1.85, 2.4))
    d.arrow((4.0, 2.11), (4.0, 2.4))
    d.box(0.9, 2.6, 0.95, 0.4, [("to_rating", "m")], "layer")
    d.box(1.95, 2.6, 1.0, 0.4, [("to_word", "m")], "layer")
    d.box(4.0, 2.6, 2.3, 0.4, [("to_word at <bos>, w₁, …", "m")], "layer")
    d.arrow((0.9, 2.8), (0.9, 2.95))
    d.arrow((1.95, 2.8), (1.95, 2.95))
    d.arrow((4.0, 2.8), (4.0, 2.95))
    d.box(0.9, 3.13, 0.95, 0.36, ["rating"], "out")
    d.box(1.95, 3.13, 1.0, 0.36, ["context words"], "out")
    d.box(4.0, 3.13, 2.3, 0.36, ["the explanation: next word"], "out")
    d.lines(6.65, 3.13, [("loss: word + context", "s"), ("+ 0.1 × rating (MSE)", "s")])
    d.lines(6.65, 2.45, [("context: the bag of the", "s"), ("reason's words, from the", "s"),
                         ("item position", "s")])
    d.lines(6.65, 1.6, [("writing: greedy, one", "s"), ("word at a time from <bos>", "s")])
    d.legend(0.13)
    return d


@diagram("reason_pipeline", "05c_guard_and_plan")
def reason_pipeline() -> Diagram:
    """Plan (helpers.reasons.planner) -> realise (SmolLM2 + LoRA) -> guard: realiser.serve."""
    d = Diagram(7.8, 3.2)
    y = 2.1
    d.box(0.85, 2.55, 1.45, 0.62, ["ShopWorld facts", ("claims.item_facts: stated", "s"),
                                   ("aspects, colour, brand…", "s")], "data")
    d.box(0.85, 1.6, 1.45, 0.62, ["the shopper", ("aspect profile, what they", "s"),
                                  ("browsed and bought", "s")], "data")
    d.box(2.55, y, 1.5, 1.0, [("plan", "b"), ("ContentPlanner", "m"), ("a conditional logit", "s"),
                              ("over candidates(facts)", "s"), ("e.g. [comfort high]", "s")], "layer")
    d.box(4.35, y, 1.6, 1.0, [("realise", "b"), ("SmolLM2-135M + LoRA", "s"),
                              ("prompt: plan | brand, kind", "s"),
                              ("one sample, drawn again if", "s"),
                              ("another shopper has it", "s")], "layer")
    d.box(6.55, y, 2.0, 1.0, [("guard", "b"), ("ClosedWorldGuard", "m"),
                              ("every word a stated fact of", "s"),
                              ("the item or allowed phrasing;", "s"),
                              ("names a driver of the plan", "s")], "check")
    d.arrow((1.575, 2.55), (1.8, 2.3))
    d.arrow((1.575, 1.6), (1.8, 1.9))
    d.arrow((3.3, y), (3.55, y))
    d.arrow((5.15, y), (5.55, y))
    # the facts go to the guard too, over the top
    d.arrow((0.85, 2.86), (0.85, 3.02), (6.55, 3.02), (6.55, y + 0.5))
    d.text(3.7, 3.1, "the same facts", size=SMALL, color=MUTED)
    # pass / reject
    d.box(7.05, 0.9, 1.25, 0.45, ["served reason"], "out")
    d.arrow((7.05, y - 0.5), (7.05, 1.125))
    d.text(7.1, 1.38, "passes", size=SMALL, color=MUTED, ha="left")
    d.box(4.6, 0.9, 2.1, 0.45, ["rejected: the greedy sentence,", ("served if the guard passes it", "s")], "step")
    d.arrow((6.1, y - 0.5), (6.1, 1.32), (5.65, 1.32), (5.65, 1.125))
    d.text(6.15, 1.38, "rejects", size=SMALL, color=MUTED, ha="left")
    d.box(2.15, 0.9, 2.1, 0.45, ["rejected again: the template's", ("reason, marked as a fallback", "s")], "out")
    d.arrow((3.55, 0.9), (3.2, 0.9))
    d.legend(0.3)
    return d


# ----------------------------------------------------------------------------- chapter 06
@diagram("multimodal_fusion", "06b_fusion")
def multimodal_fusion() -> Diagram:
    """The fusion models of chapter 06b's cold-start comparison (helpers.models.multimodal)."""
    d = Diagram(7.8, 3.75)
    rows = [3.15, 2.4, 1.65, 0.9]
    d.text(0.95, 3.6, "what the item brings", size=SMALL, color=MUTED)
    d.text(3.75, 3.6, "how it is fused", size=SMALL, color=MUTED)
    d.text(6.6, 3.6, "scored for a shopper", size=SMALL, color=MUTED)
    chips = [["text", "image"], ["text", "image"], ["text", "image"], ["item ID", "features f"]]
    fused = [
        [("early fusion", "b"), "concatenate, divide by √2"],
        [("late fusion: LateFusion", "b"), "one model per modality; each", "shopper's scores z-scored, averaged"],
        [("attention fusion: AttentionFusion", "b"), "a token per modality (own Linear);",
         "softmax(q · t / √d) over present ones"],
        [("VBPR", "b"), "b_i + p_u · q_i + θ_u · (E f) + β' · f", ("a new item: the f terms only", "s")],
    ]
    scorer = [["mean of the history's", "vectors · item vector"], ["averaged z-scores"],
              ["two-tower (chapter 04):", "u · fused item vector"], ["BPR-trained factors", "and content terms"]]
    for y, (a, b), f, s in zip(rows, chips, fused, scorer):
        d.box(0.55, y, 0.75, 0.3, [a], "data")
        d.box(1.4, y, 0.85, 0.3, [b], "data")
        d.arrow((1.825, y), (2.35, y))
        d.box(3.75, y, 2.75, 0.62, [(t, "") if isinstance(t, str) else t for t in f], "step" if y in rows[:2] else "layer")
        d.arrow((5.125, y), (5.4, y))
        d.box(6.55, y, 2.05, 0.52, s, "out")
    d.lines(3.9, 0.36, [("text: MiniLM vector (384)  ·  image: EfficientNet-Lite0 features, pca to 128, unit length  ·  f: text, or both concatenated", "s")])
    d.legend(0.12)
    return d


# ----------------------------------------------------------------------------- chapter 09
@diagram("serving_path", "09_capstone")
def serving_path() -> Diagram:
    """helpers.serving.app.Shop.page / Shop.act: one request to one page."""
    d = Diagram(7.8, 2.35)
    y, w, h = 1.3, 1.18, 1.25
    xs = [0.67, 1.95, 3.23, 4.51, 5.79, 7.1]
    stages = [
        [("request", "b"), ("Shop.page(user)", "m"), ("Shop.act(user,", "m"), ("item, action)", "m"),
         ("a click is folded in", "s"), ("(online.FoldIn)", "s")],
        [("candidates", "b"), ("ImplicitALS", "m"), ("top n_candidates", "s"), ("a new shopper: the", "s"),
         ("k most popular,", "s"), ("not re-ranked", "s")],
        [("rerank", "b"), ("rerank.mmr", "m"), ("on MiniLM item", "s"), ("vectors, when the", "s"),
         ("knob is below 1", "s"), ("→ top k", "s")],
        [("reason", "b"), ("planner.plans", "m"), ("→ phrasing.say", "m"), ("unknown to the", "s"),
         ("planner: template", "s"), ("(new: popularity)", "s")],
        [("guard", "b"), ("guard.choose", "m"), ("passes, else the", "s"), ("marked template;", "s"),
         ("DiversityGuard:", "m"), ("\"different\" if true", "s")],
        [("response", "b"), ("Page", "m"), ("interests, k rows:", "s"), ("title, reason,", "s"),
         ("fallback, ms;", "s"), ("render_row escapes", "s")],
    ]
    kinds = ["data", "layer", "step", "layer", "check", "out"]
    for x, rows, kind in zip(xs, stages, kinds):
        d.box(x, y, w, h, rows, kind)
    for a, b in zip(xs[:-1], xs[1:]):
        d.arrow((a + w / 2, y), (b - w / 2 - (0.06 if b == xs[-1] else 0), y))
    d.arrow((xs[-1], y + h / 2), (xs[-1], 2.15), (xs[0], 2.15), (xs[0], y + h / 2))
    d.text((xs[0] + xs[-1]) / 2, 2.24, "the shopper clicks view, cart or buy on the page: the next request",
           size=SMALL, color=MUTED)
    d.legend(0.22)
    return d


# ----------------------------------------------------------------------------- writing
def render(name: str) -> tuple[bytes, list[str]]:
    """The SVG of diagram ``name`` and every label it draws."""
    # from matplotlib's own defaults, not whatever a notebook or test in this process set
    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        matplotlib.rcParams.update(STYLE)
        d = DIAGRAMS[name][0]()
        return d.svg(), d.labels


def write_all(out: Path = FIGURES) -> list[Path]:
    """Draw every diagram into ``out``; returns the paths written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in DIAGRAMS:
        path = out / f"{name}.svg"
        data, _ = render(name)
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)
        paths.append(path)
    return paths


def stale_diagrams(folder: Path = FIGURES) -> list[str]:
    """Names of diagrams whose SVG in ``folder`` is missing or not what this script draws,
    and of SVGs there that no diagram draws. Empty when ``folder`` is up to date."""
    folder = Path(folder)
    stale = [name for name in DIAGRAMS
             if not (folder / f"{name}.svg").exists()
             or (folder / f"{name}.svg").read_bytes() != render(name)[0]]
    return stale + [p.stem for p in sorted(folder.glob("*.svg")) if p.stem not in DIAGRAMS]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/diagrams.py", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=FIGURES, help="folder (default figures/)")
    parser.add_argument("--check", action="store_true",
                        help="only report diagrams whose SVG is stale or missing")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_diagrams(args.out)
        if stale:
            print(f"stale diagrams: {', '.join(stale)}; run `make diagrams`", file=sys.stderr)
            return 1
        print(f"{args.out} is up to date ({len(DIAGRAMS)} diagrams).")
        return 0
    for path in write_all(args.out):
        print(f"[diagrams] {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

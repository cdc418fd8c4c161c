"""Claims and facts: what a reason asserts, what the shop states, and what is true.

Everything in chapter 05 speaks one small language of **claims**. A reason such as
"It combines superb comfort with great grip" claims ``aspect:comfort`` at a *high* level and
``aspect:grip`` at a *high* level; "It comes in red" claims ``colour:red``. Claims are what we
check (against the shop's stated facts when generating, against ShopWorld's hidden truth when
scoring), and what the feature metrics (FMR, FCR, DIV) count::

    lex = claims.lexicon(catalogue)
    claims.extract_claims("Its superb comfort matches what you care about.", lex)
    # [Claim(kind='aspect', name='comfort', level='high')]

The claim extractor only knows the course's vocabulary (aspects, opinion words, colours,
patterns, brands): a paraphrase it has no word for ("it feels like a cloud") is not a claim to it.
That is why the guard (:mod:`helpers.reasons.guard`) is *closed-world*: what it cannot read, it rejects.

>>> extract_claims("Its superb comfort is what you care about most.", lexicon())
[Claim(kind='aspect', name='comfort', level='high')]
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd

from helpers.core.checks import DataError, require_columns, require_finite
from helpers.data import vocab as V
from helpers.metrics import stats, text as text_metrics

FALLBACK_PREFIX = "[fallback] "
"""Reasons that did not come from the method asked for (unknown user or item, or a guard
rejection) start with this marker, so no table can mistake them for the method's output."""

# ============================================================================ claims
class Claim(NamedTuple):
    kind: str                 # aspect | colour | pattern | brand | popularity
    name: str                 # 'comfort', 'red', 'striped', 'Quillon', 'popularity'
    level: str | None = None  # for aspects: 'high' | 'mid' | 'low' | None (mentioned, not rated)

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}"


def driver_of(claim: Claim) -> str:
    """The driver name a claim speaks to: 'comfort', 'price', 'colour', ..., 'popularity'."""
    if claim.kind == "aspect":
        return claim.name
    return claim.kind


def drivers_of(text: str) -> set[str]:
    """``'durability;comfort'`` (ShopWorld's drivers column) -> ``{'durability', 'comfort'}``."""
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"a drivers entry must be a non-empty string such as 'comfort;price', "
                        f"got {text!r}")
    return {d.strip() for d in text.split(";") if d.strip()}


def band_of_level(level: int) -> str:
    """ShopWorld's quality 1..5 -> 'low' (1-2), 'mid' (3), 'high' (4-5)."""
    return "high" if level >= 4 else "mid" if level == 3 else "low"


PATTERN_WORDS = {"striped": ["bold stripes", "stripes", "striped", "stripe"], "dotted": ["polka-dot", "polka dot",
                  "dotted", "dots"], "checked": ["checked pattern", "checked", "check pattern", "checks"],
                  "solid": ["plain finish", "solid colour", "plain"]}
PRICE_PHRASES = ["good value for money", "great value for money", "value for money",
                  "good value", "great value", "affordable", "cheap",
                  "low price", "budget-friendly", "inexpensive"]
_POPULAR = re.compile(r"\b(popular|bestsell\w*|best-sell\w*|best sell\w*|customer favourite)\b")


@dataclass
class Lexicon:
    """The words claims are made of. Build it with :func:`lexicon`."""
    aspects: list[str]
    opinion_band: dict[str, str]          # 'superb' -> 'high', 'decent' -> 'mid', ...
    colours: list[str]
    brands: list[str]
    patterns: dict[str, list[str]] = field(default_factory=lambda: dict(PATTERN_WORDS))

    def __post_init__(self):
        alt = lambda words: "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
        self._aspect_re = re.compile(rf"\b({alt(self.aspects)})\b")
        self._opinion_re = re.compile(rf"\b({alt(self.opinion_band)})\b")
        self._colour_re = re.compile(rf"\b({alt(self.colours)})\b")
        self._brand_re = re.compile(rf"\b({alt([b.lower() for b in self.brands])})\b")
        self._brand_case = {b.lower(): b for b in self.brands}
        self._pattern_re = {p: re.compile(rf"\b({alt(ws)})\b") for p, ws in self.patterns.items()}
        self._price_re = re.compile(rf"\b({alt(PRICE_PHRASES)})\b")


def lexicon(catalogue: pd.DataFrame | None = None) -> Lexicon:
    """The ShopWorld lexicon: aspects, review opinion words and catalogue adjectives (with their
    quality band), colours, patterns, and the brands of ``catalogue`` (or of the vocabulary)."""
    band = {w: band_of_level(int(q)) for q, ws in V.OPINIONS.items() for w in ws}
    for b, ws in V.MARKETING.items():
        for w in ws:
            band.setdefault(w, b)
    for w, b in _EXTRA_BANDS.items():
        band.setdefault(w, b)
    brands = (sorted(catalogue["brand"].dropna().unique()) if catalogue is not None
              else sorted({b for c in V.CATEGORIES.values() for b in c["brands"]}))
    aspects = sorted({a for c in V.CATEGORIES.values() for a in c["aspects"]} | set(V.SHARED_ASPECTS))
    return Lexicon(aspects=aspects, opinion_band=band, colours=list(V.COLOURS), brands=brands)


_EXTRA_BANDS = {"good": "high", "high": "high", "mid": "mid", "medium": "mid", "moderate": "mid",
                "low": "low", "bad": "low"}
"""Plain band words (the ones a prompt uses: 'comfort high') are opinion words too, so 'high
build quality' is a claim at the band 'high', checked like 'superb build quality'."""


@dataclass
class Parse:
    """What :func:`parse` found in a reason (lower-cased): its claims, the character spans of
    every fact word (aspects, opinions, colours, patterns, brands, price and popularity
    phrases), and opinion words that qualify no aspect ('it is excellent')."""
    text: str
    claims: list[Claim]
    spans: list[tuple[int, int]]
    loose_opinions: list[str]


def _mask(text: str, spans) -> str:
    chars = list(text)
    for s, e in spans:
        chars[s:e] = " " * (e - s)
    return "".join(chars)


def _aspect_levels(text: str, lex: Lexicon) -> tuple[list[Claim], set[int], list]:
    mentions = [(m.start(), m.end(), m.group(1)) for m in lex._aspect_re.finditer(text)]
    opinions = [(m.start(), m.end(), lex.opinion_band[m.group(1)])
                for m in lex._opinion_re.finditer(text)]
    found: dict[str, str | None] = {}
    used: set[int] = set()
    for k, (s, e, aspect) in enumerate(mentions):
        prev_end = mentions[k - 1][1] if k else -1
        next_start = mentions[k + 1][0] if k + 1 < len(mentions) else len(text)
        level = None
        # an opinion word right before the aspect ("superb comfort", "very good grip") ...
        before = [n for n, o in enumerate(opinions) if prev_end <= o[0] and o[1] <= s and
                  len(text[o[1]:s].split()) == 0]
        if before:
            level = opinions[before[-1]][2]
            used.add(before[-1])
        else:  # ... or within the next six words, before the next aspect ("comfort is great")
            after = [n for n, o in enumerate(opinions) if e <= o[0] < next_start and
                     len(re.findall(r"[a-z]+", text[e:o[0]])) <= 5 and
                     not re.search(r"[.;]", text[e:o[0]])]
            if after:
                level = opinions[after[0]][2]
                used.add(after[0])
        if found.get(aspect) is None:
            found[aspect] = level
    return [Claim("aspect", a, lv) for a, lv in found.items()], used, mentions + opinions


def parse(text: str, lex: Lexicon) -> Parse:
    """Claims and the words they are made of (see :class:`Parse`). Price phrases ('good value',
    'low price') are read first and masked, so their words are not read again as opinions."""
    if not isinstance(text, str):
        raise TypeError(f"a reason must be a string, got {type(text).__name__}")
    t = text.lower()
    price = [m.span() for m in lex._price_re.finditer(t)]
    masked = _mask(t, price)
    claims, used, found = _aspect_levels(masked, lex)
    spans = [(s, e) for s, e, _ in found] + price
    opinion_spans = [(m.start(), m.end(), m.group(1)) for m in lex._opinion_re.finditer(masked)]
    loose = [w for n, (_, _, w) in enumerate(opinion_spans) if n not in used]
    if price and not any(c.name == "price" for c in claims):
        claims.append(Claim("aspect", "price", "high"))
    colours = list(lex._colour_re.finditer(masked))
    claims += [Claim("colour", c) for c in dict.fromkeys(m.group(1) for m in colours)]
    spans += [m.span() for m in colours]
    for p, rx in lex._pattern_re.items():
        hits = list(rx.finditer(masked))
        if hits:
            claims.append(Claim("pattern", p))
            spans += [m.span() for m in hits]
    brands = list(lex._brand_re.finditer(masked))
    claims += [Claim("brand", lex._brand_case[b]) for b in dict.fromkeys(m.group(1) for m in brands)]
    spans += [m.span() for m in brands]
    popular = list(_POPULAR.finditer(masked))
    if popular:
        claims.append(Claim("popularity", "popularity"))
        # only the word 'popular' is a fact word; 'best-selling' & co. are sales superlatives
        spans += [m.span() for m in popular if m.group(1) == "popular"]
    return Parse(t, claims, sorted(spans), loose)


def extract_claims(text: str, lex: Lexicon) -> list[Claim]:
    """The claims a reason makes, in a fixed order (aspects in order of mention, then colour,
    pattern, brand, popularity). 'good value' and friends are a claim on the aspect 'price'."""
    return parse(text, lex).claims


# ============================================================================ facts
_MARKET_BAND = {w: b for b, ws in V.MARKETING.items() for w in ws}
VALUE_SHARE = 0.35
"""An item among the cheapest 35 % of its category is stated to be good value (price 'high')."""


def category_aspects(category) -> set[str]:
    """The aspects a category's items can be rated on (its own and the shared ones); an empty set
    for an unknown category.
    """
    c = V.CATEGORIES.get(category) if isinstance(category, str) else None
    return set(c["aspects"]) | set(V.SHARED_ASPECTS) if c else set()


def item_facts(catalogue: pd.DataFrame, reviews: pd.DataFrame | None = None, *,
               col_item: str = "item_id") -> dict[int, dict]:
    """What the shop *states* about each item, for the guard and the prompts (never the hidden
    truth): ``{item_id: {"title", "category", "brand", "colour", "pattern", "aspects":
    {aspect: band}, "price_pct"}}``. Aspect bands come from the description's marketing
    adjectives; with ``reviews`` (training reviews only!), aspects the description does not rate
    get the band of their median review opinion. Colour and pattern are known only when the text
    states them. Only aspects of the item's own category count (a seller who writes "superb
    waterproofing" on a desk lamp states nothing the shop can stand behind). With a ``price`` column, ``price_pct`` is the item's price percentile within its
    category (0 = cheapest), ``price_log_ratio`` its log price over the category median,
    ``review_level`` the median review level (1-5) per reviewed aspect, and, unless stated otherwise, the aspect ``price`` (value for money)
    is 'high' for the cheapest :data:`VALUE_SHARE` of a category and 'low' for the dearest."""
    require_columns(catalogue, [col_item, "title", "category", "brand", "description"],
                    "the catalogue")
    lex = lexicon(catalogue)
    marketing = Lexicon(lex.aspects, _MARKET_BAND, lex.colours, lex.brands)  # catalogue adjectives
    facts = {}
    for row in catalogue[[col_item, "title", "category", "brand", "description"]].itertuples(index=False):
        item, title, cat, brand, desc = row
        d = (desc or "").lower() if isinstance(desc, str) else ""
        aspects = {}
        own = category_aspects(cat)
        for c in _aspect_levels(d, marketing)[0]:
            if c.level is not None and c.name in own:   # a lamp cannot be 'waterproof'
                aspects[c.name] = c.level
        colour = next((m.group(1) for m in lex._colour_re.finditer(d)), None)
        pattern = next((p for p, rx in lex._pattern_re.items() if rx.search(d)), None)
        facts[int(item)] = {"title": title, "category": cat, "brand": brand, "colour": colour,
                            "pattern": pattern, "aspects": aspects}
    if reviews is not None and len(reviews):
        require_columns(reviews, [col_item, "aspect", "opinion"], "reviews")
        lv = {w: int(q) for q, ws in V.OPINIONS.items() for w in ws}
        r = reviews[reviews[col_item].isin(facts)]
        med = r.assign(q=r["opinion"].map(lv)).groupby([col_item, "aspect"])["q"].median()
        for (item, aspect), q in med.items():
            if aspect not in category_aspects(facts[int(item)]["category"]):
                continue
            facts[int(item)]["aspects"].setdefault(aspect, band_of_level(int(round(q))))
            facts[int(item)].setdefault("review_level", {})[aspect] = float(q)
    if "price" in catalogue.columns:

        require_finite(catalogue, "price", "the catalogue")
        pct = catalogue.groupby("category")["price"].rank(pct=True, method="average")
        ratio = np.log(catalogue["price"] / catalogue.groupby("category")["price"]
                       .transform("median"))
        for item, p, r in zip(catalogue[col_item], pct, ratio):
            f = facts[int(item)]
            f["price_pct"], f["price_log_ratio"] = float(p), float(r)
            if p <= VALUE_SHARE:
                f["aspects"].setdefault("price", "high")
            elif p >= 1 - VALUE_SHARE:
                f["aspects"].setdefault("price", "low")
    return facts


def user_truth_facts(user_truth: pd.DataFrame, price_threshold: float = 0.5) -> dict[int, dict]:
    """ShopWorld's hidden truth about each user, for *scoring* only: the three aspects they
    weigh, favourite colour/pattern/brand, and whether price matters (sensitivity >=
    ``price_threshold``)."""
    require_columns(user_truth, ["user_id", "aspect_1", "aspect_2", "aspect_3", "fav_colour",
                                 "fav_pattern", "fav_brand", "price_sensitivity"], "user_truth")
    out = {}
    for r in user_truth.itertuples(index=False):
        aspects = {r.aspect_1, r.aspect_2, r.aspect_3}
        if r.price_sensitivity >= price_threshold:
            aspects.add("price")
        out[int(r.user_id)] = {"aspects": aspects, "colour": r.fav_colour,
                               "pattern": r.fav_pattern, "brand": r.fav_brand}
    return out


def judge_claims(claims: list[Claim], item: dict, user: dict | None) -> list[tuple[bool, bool]]:
    """Per claim ``(true_of_item, important_to_user)`` against ground truth.

    ``item``: ``{"q": {aspect: 0..5}, "colour", "pattern", "brand"}`` (0 = the item has no such
    aspect); ``user``: as from :func:`user_truth_facts` (None: importance is False).
    An aspect claim is true when the item has the aspect and, if rated, its band matches.
    Popularity claims are true (ShopWorld cannot falsify them) and never personal.
    """
    out = []
    for c in claims:
        if c.kind == "aspect":
            q = int(item["q"].get(c.name, 0))
            true = q > 0 and (c.level is None or band_of_level(q) == c.level)
            important = user is not None and c.name in user["aspects"]
        elif c.kind in ("colour", "pattern", "brand"):
            true = item[c.kind] == c.name
            important = user is not None and user[c.kind] == c.name
        else:
            true, important = True, False
        out.append((bool(true), bool(important)))
    return out


def item_truth_facts(item_truth: pd.DataFrame, catalogue: pd.DataFrame) -> dict[int, dict]:
    """ShopWorld's hidden truth about each item, for *scoring* only: ``{item_id: {"q": {aspect:
    0..5}, "colour", "pattern", "brand"}}`` (the input of :func:`judge_claims`)."""
    require_columns(item_truth, ["item_id", "colour", "pattern"], "item_truth")
    require_columns(catalogue, ["item_id", "brand"], "the catalogue")
    qcols = [c for c in item_truth.columns if c.startswith("q_")]
    brand = catalogue.set_index("item_id")["brand"]
    missing = set(item_truth["item_id"]) - set(brand.index)
    if missing:
        raise DataError(f"{len(missing)} items of item_truth are not in the catalogue")
    q = item_truth[qcols].to_numpy()
    names = [c[2:].replace("_", " ") for c in qcols]
    return {int(i): {"q": dict(zip(names, q[r].tolist())), "colour": c, "pattern": p,
                     "brand": brand[i]}
            for r, (i, c, p) in enumerate(zip(item_truth["item_id"], item_truth["colour"],
                                              item_truth["pattern"]))}


PER_PAIR = ("truthful", "grounded", "personal", "faithful", "FMR")
"""The metrics that are means over pairs, so :func:`score_reasons` can give them intervals."""


def reason_verdicts(generated, pairs: pd.DataFrame, lex: Lexicon, items_truth: dict[int, dict],
                    facts: dict[int, dict] | None = None) -> pd.DataFrame:
    """The chapter's definitions, one row per pair (columns truthful, grounded, personal,
    faithful, FMR, claims):

    * **truthful** — every claim is true of the item (ShopWorld's hidden truth);
    * **grounded** — every claim is stated by the shop (``facts``: what a generator may know;
      NaN when ``facts`` is not given);
    * **personal** — it names a true driver of this purchase (``pairs['drivers']``); "popular
      with shoppers like you" is personal exactly when popularity was the driver;
    * **faithful** — truthful and personal;
    * **FMR** — it names a feature the reference names (NaN where the reference names none,
      i.e. popularity purchases; the field's definition).

    A reason that claims nothing is truthful (it says nothing false) but neither personal nor
    faithful. Fallback markers are stripped first (the shopper never sees them)."""

    require_columns(pairs, ["user_id", "item_id", "reason", "drivers"], "the test pairs")
    gen = [g.removeprefix(FALLBACK_PREFIX) if isinstance(g, str) else g for g in generated]
    if len(gen) != len(pairs):
        raise DataError(f"{len(gen)} generated reasons for {len(pairs)} pairs")
    unknown = set(pairs["item_id"]) - set(items_truth)
    if unknown:
        raise DataError(f"{len(unknown)} items have no truth entry (e.g. {sorted(unknown)[0]})")
    rows = []
    for g, ref, i, d in zip(gen, pairs["reason"], pairs["item_id"], pairs["drivers"]):
        claims = extract_claims(g, lex)
        truth = judge_claims(claims, items_truth[int(i)], None)
        truthful = all(t for t, _ in truth)
        if facts is None:
            grounded = np.nan
        else:
            f = facts.get(int(i), {"aspects": {}})
            grounded = all(is_stated(c, f) for c in claims)
        personal = bool({driver_of(c) for c in claims} & drivers_of(d))
        g_feat = {c.key for c in claims if c.kind != "popularity"}
        r_feat = {c.key for c in extract_claims(ref, lex) if c.kind != "popularity"}
        rows.append({"truthful": float(truthful), "grounded": float(grounded),
                     "personal": float(personal), "faithful": float(truthful and personal),
                     "FMR": float(bool(g_feat & r_feat)) if r_feat else np.nan,
                     "claims": len(claims)})
    return pd.DataFrame(rows, index=pairs.index)


def stated_problem(c: Claim, f: dict) -> str | None:
    """Why the shop's facts ``f`` (an :func:`item_facts` entry) do not back claim ``c`` up, or
    None when they do: an aspect not stated or stated at another band, another colour, pattern
    or brand. Popularity is the recommender's own knowledge: always backed."""
    if c.kind == "aspect":
        stated = f["aspects"].get(c.name)
        if stated is None:
            return f"{c.name}: not a stated fact of this item"
        if c.level is not None and c.level != stated:
            return f"{c.name}: called {c.level}, the shop says {stated}"
    elif c.kind in ("colour", "pattern", "brand") and f.get(c.kind) != c.name:
        return f"{c.kind} {c.name}: the item's is {f.get(c.kind) or 'not stated'}"
    return None


def is_stated(c: Claim, f: dict) -> bool:
    """Whether ``f`` (one item's :func:`item_facts`) supports the claim ``c``;
    :func:`stated_problem` says why not.
    """
    return stated_problem(c, f) is None


def score_reasons(generated, pairs: pd.DataFrame, lex: Lexicon, items_truth: dict[int, dict],
                  facts: dict[int, dict] | None = None, *, seconds: float | None = None,
                  intervals: bool = False, n_boot: int = 1000, seed: int = 0) -> dict[str, float]:
    """Every chapter-05 metric for ``generated`` reasons of ``pairs`` (columns user_id, item_id,
    reason = the reference, drivers): BLEU-1/4, ROUGE-1/2/L (F1, and the papers' F_beta), USR,
    FCR, DIV, and the per-pair
    metrics of :func:`reason_verdicts` (truthful, grounded, personal, faithful, FMR) with
    ``halluc.`` = 1 - truthful; milliseconds per reason if ``seconds`` is given. With
    ``intervals``, each per-pair metric also gets a 95 % bootstrap interval over pairs
    (``<metric> lo`` / ``<metric> hi``)."""

    v = reason_verdicts(generated, pairs, lex, items_truth, facts)
    gen = [g.removeprefix(FALLBACK_PREFIX) for g in generated]
    g_feat = [{c.key for c in extract_claims(g, lex) if c.kind != "popularity"} for g in gen]
    n_features = len(lex.aspects) + len(lex.colours) + len(lex.patterns) + len(lex.brands)
    ro = text_metrics.rouge(gen, pairs["reason"])
    row = {"BLEU-1": text_metrics.bleu(gen, pairs["reason"], 1), "BLEU-4": text_metrics.bleu(gen, pairs["reason"], 4),
           "ROUGE-1": ro["rouge1"], "ROUGE-2": ro["rouge2"], "ROUGE-L": ro["rougeL"],
           "ROUGE-L Fbeta": ro["rougeL_fbeta"],
           "USR": text_metrics.unique_sentence_ratio(gen),
           "FCR": text_metrics.feature_coverage_ratio(g_feat, n_features),
           "DIV": text_metrics.feature_diversity(g_feat)}
    for m in PER_PAIR:
        x = v[m].dropna().to_numpy()     # FMR: pairs whose reference names a feature
        if m == "grounded" and facts is None:
            continue
        row[m] = float(x.mean()) if len(x) else float("nan")
        if intervals and len(x):
            row[f"{m} lo"], row[f"{m} hi"] = stats.bootstrap_ci(x, n_boot=n_boot, seed=seed)
    row["halluc."] = 1.0 - row["truthful"]
    if seconds is not None:
        row["ms/reason"] = 1e3 * seconds / len(gen)
    return row

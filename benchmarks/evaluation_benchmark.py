"""Chapter 07 at a larger scale than its quick profile: the seed's table on every test purchase,
the simulated A/B test with four times the shoppers and three simulation seeds, the LLM judge on
800 reasons, and the harness's training-seed spread beside its bootstrap intervals.

    .venv/bin/python benchmarks/evaluation_benchmark.py        # ~20 minutes on 2 CPU cores
    .venv/bin/python benchmarks/evaluation_benchmark.py --sections 4    # only the A/B test

1. **Harness, training seeds** (chapter 07, section 1: ShopWorld's non-view events,
   leave-last-out, full ranking of all 2,000 items, NDCG@10 per test user): the four models
   trained by SGD (BPR, SASRec, two-tower, VBPR) with seeds 0, 1, 2 — the spread of the mean
   over seeds against the width of one seed's 95 % bootstrap interval over users. A paper that
   reports one seed's number hides the first; one that reports no interval hides the second.
2. **The seed's table** (chapter 07, section 4) on *all* of chapter 05's warm and cold test
   purchases: reason precision, recall and F1 against the true drivers
   (``evaluation.driver_scores`` / ``reason_prf``, 95 % bootstrap intervals over purchases) for
   the template, retrieval and plan + LM + guard (chapter 05's shipped LoRA realiser served behind
   the guard, ``RL.serve``, temperature 1, seed 0); the zero-shot LM without a guard
   (SmolLM2-135M-Instruct, chapter 05's prompt, greedy, 28 new tokens) on a random 400 of them,
   with the other generators on the same 400 for paired tests (``evaluation.paired_ratio_diff``).
3. **LLM-as-judge** (chapter 07, section 7) on those 400 purchases' guarded and unguarded reasons
   (800 judgements): agreement with the truth (every claim true of the item), Cohen's kappa,
   AUC, the share judged "Yes".
5. **Every generator's text metrics** (chapter 07, section 3's table) on all the test purchases:
   template, retrieval, PETER (chapter 05, section 6: d_model 64, 10 epochs, seed 0, trained on
   the non-popularity training purchases), plan + LM + guard, and chapter 06's pixel facts
   (a three-head CNN trained 6 epochs on the items whose text states colour and pattern, its
   colour and pattern added where the text is silent at probability >= 0.9,
   ``multimodal.facts_from_pixels``; the planner refitted on them, the same realiser behind a
   guard that knows them): BLEU-4, ROUGE-L, BERTScore F1 (MiniLM layer 4) raw and rescaled by
   the mean of 500 unrelated reference pairs, USR, FMR, DIV, truthful, grounded (in the facts
   the generator had), faithful.
4. **Simulated A/B test** (chapter 07, section 6; ``simulate.Funnel`` and ``simulate.Reader``
   with their stated defaults): 1,400 shoppers drawn from the harness's 1,682 test users (350 per
   arm: no reason, template, plan + LM + guard, LM without guard), each shown EASE's top item;
   visits per shopper from the power calculation on a pilot of 200 other test users (25 % relative lift in
   conversion, alpha 0.05, power 0.8); the test run with three simulation seeds (the reasons
   fixed): differences from no reason with 95 % bootstrap intervals over shoppers and
   permutation p-values.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from helpers.core import config
from helpers.data import loaders, preprocess as pp
from helpers.evaluation import offline as E, simulate as S, textscore as TS
from helpers.metrics import stats  # noqa: E402
from helpers.models import cf, interest as I, multimodal as M, pretrained
from helpers.models.sequential import SASRecRecommender  # noqa: E402
from helpers.reasons import (
    adapter,
    claims,
    explainers,
    guard as G,
    lm as LM,
    planner as PL,
    realiser as RL,
    vocabulary,
    world as W,
)


def harness_seeds(train, test, um, im, text_emb, texts):
    users = np.sort(test["user_id"].unique())
    makers = {
        "BPR": lambda s: cf.BPR(64, reg=1e-3, n_epochs=30, lr=0.01, seed=s),
        "SASRec": lambda s: SASRecRecommender(max_len=20, n_epochs=8, lr=3e-3, whole_history=True,
                                              seed=s),
        "two-tower": lambda s: I.TwoTowerRecommender(text_emb, texts.index, n_epochs=2, seed=s),
        "VBPR, text": lambda s: M.VBPR(text_emb, texts.index, seed=s),
    }
    print("\n## 1. Harness: training seeds against bootstrap intervals (NDCG@10, "
          f"{len(users):,} test users)\n\n| model | seed 0 | seed 1 | seed 2 | range over seeds | "
          "seed 0's 95 % interval (width) |\n|---|---|---|---|---|---|")
    for name, make in makers.items():
        vals, ci = [], None
        for s in (0, 1, 2):
            per = E.per_user_metrics(make(s).fit(train, um, im).recommend(users, k=10), test, 10)
            vals.append(per["ndcg@10"].mean())
            if s == 0:
                from helpers.metrics.stats import bootstrap_ci
                ci = bootstrap_ci(per["ndcg@10"])
        print(f"| {name} | {vals[0]:.4f} | {vals[1]:.4f} | {vals[2]:.4f} | "
              f"{max(vals) - min(vals):.4f} | [{ci[0]:.4f}, {ci[1]:.4f}] ({ci[1] - ci[0]:.4f}) |")


def main(sections: set[int]) -> None:
    config.seed_everything(0)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    t_start = time.perf_counter()
    sw = pp.clean_shopworld(write=False)
    catalogue, events = sw["catalogue"], sw["events"]
    texts = I.item_texts(catalogue)
    text_emb = I.encode_items(texts)
    inter = events[events["event_type"] != "view"]
    um, im = pp.build_id_map(inter["user_id"]), pp.build_id_map(catalogue["item_id"])
    train, _, test = pp.leave_last_out(inter)
    if 1 in sections:
        harness_seeds(train, test, um, im, text_emb, texts)

    # ------------------------------------------------------------------ 2. the seed's table
    world = W.reason_world()
    facts, lex = world.facts, world.lex
    pairs = pd.concat([world.warm, world.cold], ignore_index=True)
    profile_map = explainers.profile_map(world.profile)
    template = explainers.TemplateExplainer(facts, world.profile)
    retrieval = explainers.RetrievalExplainer(world.train_reviews, world.profile, fallback=template)
    planner = PL.fit_planner(world, progress=False)
    tok_r, realiser, _ = adapter.load_realiser()
    vocab = vocabulary.closed_vocabulary(tok_r, lex)
    guard = G.ClosedWorldGuard(facts, lex, fallback=template)
    tok_lm, lm = pretrained.language_model()
    strip = lambda xs: [x.removeprefix(claims.FALLBACK_PREFIX) for x in xs]
    gens = {
        "template": lambda u, i: strip(template.explain(u, i)),
        "retrieval": lambda u, i: strip(retrieval.explain(u, i)),
        "plan + LM + guard": lambda u, i: strip(RL.serve(
            tok_r, realiser, vocab, guard, u, i, planner.plans(u, i, progress=False), seed=0)[0]),
        "LM, no guard": lambda u, i: LM.generate(tok_lm, lm, [
            LM.build_prompt(profile_map.get(int(a), []), facts[int(b)], []) for a, b in zip(u, i)],
            max_new_tokens=28, batch_size=32, progress=False)[0],
    }
    if sections & {2, 3}:
        seed_table_and_judge(world, pairs, gens, tok_lm, lm, sections)
    if 5 in sections:
        every_generator(world, pairs, gens, (tok_r, realiser, vocab), strip)
    if 4 in sections:
        ab_test(world, gens, train, test, um, im)
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")


def seed_table_and_judge(world, pairs, gens, tok_lm, lm, sections):
    facts, lex = world.facts, world.lex
    said = {}
    for name in ("template", "retrieval", "plan + LM + guard"):
        said[name] = gens[name](pairs["user_id"], pairs["item_id"])
    sub = pairs.sample(400, random_state=0)
    t0 = time.perf_counter()
    unguarded = gens["LM, no guard"](sub["user_id"], sub["item_id"])
    zs_seconds = time.perf_counter() - t0

    def table(title, rows, base):
        print(f"\n{title}\n\n| generator | precision | recall | F1 | precision vs template (p) | "
              "recall vs template (p) |\n|---|---|---|---|---|---|")
        for name, d in rows.items():
            r = E.reason_prf(d)
            cell = lambda m: f"{r[m]:.3f} [{r[m + ' lo']:.3f}, {r[m + ' hi']:.3f}]"
            vs = ["", ""]
            if name != "template":
                for k, den in enumerate(("named", "n_true")):
                    t = stats.paired_ratio_diff(d["correct"], d[den], base["correct"], base[den])
                    vs[k] = f"{t['diff']:+.3f} [{t['lo']:+.3f}, {t['hi']:+.3f}] (p={t['p']:.3f})"
            print(f"| {name} | {cell('precision')} | {cell('recall')} | {cell('F1')} | {vs[0]} | "
                  f"{vs[1]} |")

    full = {n: E.driver_scores(g, pairs["drivers"], lex) for n, g in said.items()}
    table(f"## 2. The seed's table: all {len(pairs):,} test purchases (95 % bootstrap intervals; "
          "paired differences and permutation p against the template)", full, full["template"])
    pos = pairs.index.get_indexer(sub.index)
    on_sub = {n: d.iloc[pos].reset_index(drop=True) for n, d in full.items()}
    on_sub["LM, no guard"] = E.driver_scores(unguarded, sub["drivers"], lex)
    table(f"The same on a random 400 of them, with the zero-shot LM and no guard "
          f"({1e3 * zs_seconds / len(sub):.0f} ms per reason)", on_sub, on_sub["template"])

    if 3 not in sections:
        return
    # ------------------------------------------------------------------ 3. the judge
    from sklearn.metrics import cohen_kappa_score, roc_auc_score

    guarded = [said["plan + LM + guard"][k] for k in pos]
    reasons = guarded + list(unguarded)
    items = list(sub["item_id"]) * 2
    truth = np.concatenate([claims.reason_verdicts(g, sub, lex, world.items_truth)["truthful"]
                            .to_numpy().astype(bool) for g in (guarded, unguarded)])
    qs = [TS.verdict_question(facts[int(i)], r) for r, i in zip(reasons, items)]
    p_yes = TS.judge(tok_lm, lm, qs)
    print(f"\n## 3. SmolLM2-135M-Instruct as judge, {len(qs)} reasons ({truth.mean():.3f} truly "
          f"truthful)\n\n| judged Yes | agreement | Cohen kappa | AUC |\n|---|---|---|---|\n"
          f"| {(p_yes > 0.5).mean():.3f} | {((p_yes > 0.5) == truth).mean():.3f} | "
          f"{cohen_kappa_score(truth, p_yes > 0.5):.3f} | {roc_auc_score(truth, p_yes):.3f} |")


def every_generator(world, pairs, gens, realiser_kit, strip):
    import dataclasses

    lex, u, i = world.lex, pairs["user_id"], pairs["item_id"]
    said = {name: gens[name](u, i) for name in ("template", "retrieval")}
    t0 = time.perf_counter()
    peter = explainers.PETERExplainer(d_model=64, n_epochs=10, seed=0)
    peter.fit(world.train[world.train["drivers"] != "popularity"])
    said["PETER"] = strip(peter.explain(u, i))
    peter_s = time.perf_counter() - t0
    said["plan + LM + guard"] = gens["plan + LM + guard"](u, i)
    # chapter 06: the picture's colour and pattern as stated facts
    x, ids = M.load_item_images()
    stated = pd.DataFrame({t: M.stated_labels(world.facts, ids, t) for t in ("colour", "pattern")})
    ok = stated.notna().all(axis=1).to_numpy().copy()
    truth = M.item_labels(ids)
    labels = pd.DataFrame({"colour": stated["colour"][ok].astype(int).to_numpy(),
                           "pattern": stated["pattern"][ok].astype(int).to_numpy(),
                           "category": truth["category"][ok].to_numpy()})
    cnn, _ = M.fit_image_classifier(x[ok], labels, tasks=("colour", "pattern", "category"),
                                    epochs=6, batch_size=16, seed=0)
    proba = M.predict_proba(cnn, x)
    enriched, _ = M.facts_from_pixels(world.facts, ids, {t: proba[t] for t in ("colour", "pattern")},
                                      threshold=0.9)
    planner = PL.fit_planner(dataclasses.replace(world, facts=enriched), progress=False)
    guard = G.ClosedWorldGuard(enriched, lex, fallback=explainers.TemplateExplainer(enriched, world.profile))
    tok_r, realiser, vocab = realiser_kit
    said["plan + LM + guard, pixel facts (ch. 06)"] = strip(RL.serve(
        tok_r, realiser, vocab, guard, u, i, planner.plans(u, i, progress=False), seed=0)[0])
    tok_e, enc = pretrained.text_encoder()
    refs = pairs["reason"].tolist()
    base = TS.random_pair_baseline(refs, tok_e, enc, layer=4, seed=0)
    print(f"\n## 5. Every generator on all {len(pairs):,} test purchases (PETER trained in "
          f"{peter_s:.0f} s; BERTScore baseline of unrelated reference pairs {base:.3f})\n\n"
          "| generator | BLEU-4 | ROUGE-L | BERTScore F1 (rescaled) | USR | FMR | DIV | truthful | "
          "grounded | faithful |\n|---|---|---|---|---|---|---|---|---|---|")
    for name, g in said.items():
        f = enriched if "pixel" in name else world.facts
        r = claims.score_reasons(g, pairs, lex, world.items_truth, f)
        _, _, bs = TS.bert_score(g, refs, tok_e, enc, layer=4)
        print(f"| {name} | {r['BLEU-4']:.3f} | {r['ROUGE-L']:.3f} | {bs.mean():.3f} "
              f"({TS.rescale(bs, base).mean():+.3f}) | {r['USR']:.3f} | {r['FMR']:.3f} | "
              f"{r['DIV']:.3f} | {r['truthful']:.3f} | {r['grounded']:.3f} | {r['faithful']:.3f} |")


def ab_test(world, gens, train, test, um, im):
    lex = world.lex
    best = cf.EASE(250.0).fit(train, um, im)
    rng = np.random.default_rng(0)
    known = np.intersect1d(np.sort(test["user_id"].unique()), list(world.users_truth))
    chosen = rng.choice(known, size=1600, replace=False)
    panel_users, pilot_users = chosen[:1400], chosen[1400:]
    top1 = best.recommend(chosen, k=1).set_index("user_id")["item_id"]
    ut, it = loaders.load_shopworld("user_truth"), loaders.load_shopworld("item_truth")
    raw = loaders.load_shopworld("catalogue")

    def shown(us, rs):
        itm = top1.loc[us].to_numpy()
        return S.read_reasons(rs, us, itm, lex, world.items_truth, world.users_truth).assign(
            user_id=us, item_id=itm, utility=S.true_utility(us, itm, ut, it, raw))

    pilot = S.ab_test(shown(pilot_users, [None] * 200).assign(arm="pilot"), sessions=20, seed=1)
    p0 = pilot["purchases"].sum() / pilot["sessions"].sum()
    n_needed = S.two_proportion_n(p0, 1.25 * p0)
    arms = ["no reason", "template", "plan + LM + guard", "LM, no guard"]
    arm_of = np.repeat(arms, 350)[rng.permutation(1400)]
    sessions = int(np.ceil(n_needed / 350))
    panel = []
    for arm in arms:
        us = panel_users[arm_of == arm]
        rs = [None] * len(us) if arm == "no reason" else gens[arm](us, top1.loc[us].to_numpy())
        panel.append(shown(us, [r or None for r in rs]).assign(arm=arm))
    panel = pd.concat(panel, ignore_index=True)
    print(f"\n## 4. Simulated A/B test: 350 shoppers per arm x {sessions} visits (pilot conversion "
          f"{p0:.4f}; {n_needed:,} sessions per arm detect a 25 % lift with power 0.8)")
    for seed in (0, 1, 2):
        ab = S.arm_summary(S.ab_test(panel, sessions=sessions, seed=seed), control="no reason",
                           seed=seed)
        print(f"\nsimulation seed {seed}:\n\n| arm | CTR | return rate | kept / 100 sessions | "
              "stars | kept vs none [95 %] (p) | stars vs none [95 %] (p) |\n|---|---|---|---|---|---|---|")
        for arm, r in ab.iterrows():
            vs = lambda m: ("" if arm == "no reason" else
                            f"{r[m + ' diff']:+.2f} [{r[m + ' lo']:+.2f}, {r[m + ' hi']:+.2f}] "
                            f"(p={r[m + ' p']:.3f})")
            print(f"| {arm} | {r['CTR']:.3f} | {r['return rate']:.3f} | "
                  f"{r['kept / 100 sessions']:.2f} | {r['stars']:.2f} | "
                  f"{vs('kept / 100 sessions')} | {vs('stars')} |")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sections", default="1,2,3,4,5", help="which sections to run, e.g. 2,4")
    main({int(x) for x in parser.parse_args().sections.split(",")})

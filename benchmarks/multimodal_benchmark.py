"""Chapter 06: what the picture gives, measured — a CNN from scratch against a
pretrained encoder's frozen features, and a shared image-text space that names colours zero-shot.

    .venv/bin/python benchmarks/multimodal_benchmark.py        # ~20 minutes on 2 CPU cores
    .venv/bin/python benchmarks/multimodal_benchmark.py --only gan   # one section (see below)

Data: ShopWorld's 2,000 item icons (64×64) and item texts (title + description); the first
1,600 items by id train, the last 400 test (ids are assigned at random by the generator, so the
cut is not by category). Labels: the item truth's colour (10) and pattern (4), the catalogue's
category (8).

1. **A small CNN from scratch** (``multimodal.fit_image_classifier``: 3 conv blocks, colour and
   pattern heads, 4 epochs, Adam, seed 0): held-out accuracy per task, fit seconds.
2. **Frozen EfficientNet-Lite0** (ImageNet weights, ``pretrained.image_encoder``), the icons resized
   to 64 and 128 pixels: a logistic-regression probe per task (``multimodal.linear_probe``),
   feature seconds. Does ImageNet transfer to drawn icons?
3. **A shared space** (``multimodal.fit_shared_space``: two linear projections, CLIP's symmetric
   InfoNCE, 60 epochs, batch 256) on frozen Lite0 features (64 px) and MiniLM text features of
   the 1,600 training items: image→text and text→image recall@k on the 400 test items (chance:
   k/400), and **zero-shot colour**: each test icon against the ten prompts "It comes in
   {colour}." through the text projection, accuracy overall and where the item's own text never
   states its colour (``colour_in_text`` false: there the picture is the only source).
4. **Reasons from pixels**: one CNN per task trained only on the items whose *text states* the
   colour (pattern) (``multimodal.stated_labels``: chapter 05's facts, no hidden truth), 4 epochs;
   its colour and pattern become stated facts where the text is silent and the probability is at
   least 0.9 (``multimodal.facts_from_pixels``; wrong additions counted against the item truth).
   Then chapter 05's content planner, refitted on the enriched facts (``P.fit_planner``), and
   the oracle plan (the best plan from stated facts alone) on the warm + cold test purchases whose
   true drivers include colour or pattern: precision/recall of planned drivers and the share of
   pairs whose plan names a true driver (``P.plan_scores``), before and after; and the
   fitted planner's plans said by the phrasing bank's first wording (``phrasing.say``,
   deterministic) and by chapter 05's shipped LoRA realiser served behind the closed-world guard
   (``realiser.serve``: a sample at temperature 1, the greedy sentence where the guard
   rejects it, the template where that fails too), each scored with chapter 05's metrics (``claims.score_reasons``: FMR, truthful =
   1 - hallucination against the hidden truth, grounded in the facts the run had, faithful).
5. **Fusion** (chapter 04's cold-start protocol: ShopWorld's non-view events, cut at the 70 %
   time quantile, test events of known users on items launched before the cut (warm, ranked
   among old items) and after it (cold, ranked among new items)): item vectors from the text
   alone (MiniLM), the image alone (Lite0 at 64 px, PCA to 128 dimensions, unit norm) and both —
   early fusion (the two unit vectors concatenated, / √2), late fusion (per-user z-scores of the
   two models averaged) and attention fusion (``multimodal.AttentionFusionTwoTower``) — in
   chapter 04's mean-pooling interest model and its frozen two-tower (2 epochs, seed 0); the
   course's VBPR (``multimodal.VBPR``, Cornac's defaults) and Cornac's VBPR (``cornac==3.0.1``,
   k = k2 = 10, 20 epochs, lr 0.005, batch 100, seed 0) with the same item features, each
   scoring new items by its content part ``θ_u·(E f_i) + β'·f_i``. NDCG@10
   per user; paired gains over the same family's text model with 95 % bootstrap intervals over
   users, for all cold test users and the colour-driven ones (``colour_taste`` >= 0.6). Cornac
   is optional: installed with ``pip install --target build/cornac-site --no-deps cornac==3.0.1
   powerlaw==1.5`` it never touches the course's environment; without it the VBPR rows are
   skipped with that message.
6. **Rolling origin**: section 5's protocol at the 50, 60, 70 and 80 % time quantiles, every
   user-cutoff pair one unit, pooled (about four times the users of one cut-off): mean pooling
   (text, early, late fusion) and the course's VBPR (text, early fusion), paired gains over the
   family's text model with 95 % bootstrap intervals.
7. **The ceiling: the hidden truth's colour and pattern.** Is the image's information worth
   anything for cold ranking on this data, however well a model extracts it? Section 5's protocol
   again, with the item truth's colour and pattern themselves (what a perfect image classifier
   would read; no model in the course may use them) given to the text models two ways: appended
   to the text vector as one-hot attributes (weight 0.3 or 0.6, / √2), and as a separate scorer,
   ``log P(colour | the user's training history)`` (Laplace-smoothed counts), late-fused with the
   text model at weights 0.1 and 0.25; and that scorer alone. Paired gains over the family's text
   model, all cold test users and the colour-driven ones. ``--only ceiling`` runs this section
   alone (about a minute).
8. **A shop where colour decides** (dose and response). The same catalogue, icons and people,
   with only their colour taste scaled: ShopWorld regenerated (seed 0, ``dirt=False``: the
   generator's clean log, which chapter 01's cleaning recovers exactly) with ``colour_taste`` drawn
   from U(0, m) for m = 0.8 (the committed world), 1.6, 2.5 and 4.0
   (``WorldConfig.colour_taste_max``; every other draw is identical). Section 5's protocol on each
   world's log with the committed catalogue's texts and icons: mean pooling on text, image,
   early and late fusion; the course's VBPR on text and early fusion; section 7's colour-affinity
   scorer on the true colours (the ceiling: what knowing every colour is worth). Share of
   purchases in the buyer's favourite colour; paired gains over the family's text model with 95 %
   bootstrap intervals, all cold test users and the colour-driven ones (``colour_taste`` >=
   0.75·m, the same top quarter as section 5's 0.6 of 0.8). ``--only colour-world`` runs this
   section alone (about a minute).
9. **One thread or two** for chapter 06's small training loops (``--only threads``, about four
   minutes, run alone on an idle machine): each job timed at one and at two CPU threads
   (``config.cpu_threads``), alternating 1, 2, 1, 2, fastest of two each; the same seeds, so the
   work is the same. Jobs: the small CNN (2 epochs on the 2,000 icons, batch 16), the conditional
   GAN (100 steps, batch 32, 32 px), the shared space (60 epochs), the attention-fusion two-tower
   (2 epochs on section 5's training events), the course's VBPR on text and on early fusion
   (Cornac's defaults, 20 epochs, section 5's training events), and frozen EfficientNet-Lite0
   features of the 2,000 icons at 64 px. OpenMP's wait policy as the Makefile sets it
   (``OMP_WAIT_POLICY=PASSIVE``).
10. **How far the GAN's result moves with its trajectory** (``--only gan``, about six minutes):
   chapter 06's quick-profile GAN (batch 32, lr 5e-4, one thread) trained with six seeds, each
   judged as the chapter judges it: the chapter's section-2 CNN (trained on the items whose text
   states colour and pattern, 6 epochs, batch 16) reads the colour and category of 400 samples
   (5 per category x colour, sampling seed 0). A seed stands in for what moves a trajectory
   between machines (another processor's last bits, another thread count); seed 0 is also
   trained on two threads. Two GANs: the projection critic alone for 400 steps (the chapter's
   GAN until 2026-12-02) and with the auxiliary classifier (``aux_weight=1``) for 200 steps (the
   chapter's now). The spread sets the tolerance of the chapter's recorded
   ``gan.colour_accuracy`` (``tools/spread.py``).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from helpers.core import config
from helpers.data import loaders
from helpers.models import interest as I, multimodal as M, pretrained


def main() -> None:
    config.seed_everything(0)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    x, ids = M.load_item_images()
    labels = M.item_labels(ids)
    tr = np.arange(len(ids)) < 1600
    te = ~tr
    rows = []

    t0 = time.perf_counter()
    cnn, _ = M.fit_image_classifier(x[tr], labels[tr], epochs=4, seed=0)
    secs = time.perf_counter() - t0
    proba = M.predict_proba(cnn, x[te])
    acc = {t: float((proba[t].argmax(1).numpy() == labels[t][te].to_numpy()).mean())
           for t in proba}
    rows.append(f"| small CNN from scratch, 64 px (4 epochs) | {secs:.1f} s fit | "
                f"{acc['colour']:.3f} | {acc['pattern']:.3f} | — |")

    enc = pretrained.image_encoder(device="cpu")
    feats = {}
    for size in (64, 128):
        t0 = time.perf_counter()
        f = M.image_features(enc, x, size=size)
        secs = time.perf_counter() - t0
        feats[size] = f
        acc = {t: M.linear_probe(f[tr], labels[t][tr], f[te], labels[t][te])["accuracy"]
               for t in ("colour", "pattern", "category")}
        rows.append(f"| frozen EfficientNet-Lite0, {size} px, linear probe | {secs:.1f} s "
                    f"features | {acc['colour']:.3f} | {acc['pattern']:.3f} | "
                    f"{acc['category']:.3f} |")
    print("\n| model | time | colour | pattern | category |\n|---|---:|---:|---:|---:|")
    print("\n".join(rows))

    tf = I.encode_items(I.item_texts(loaders.load_shopworld("catalogue")).loc[ids])
    t0 = time.perf_counter()
    space, hist = M.fit_shared_space(feats[64][tr], tf[tr], dim=128, epochs=60, batch_size=256,
                                     seed=0)
    secs = time.perf_counter() - t0
    with torch.no_grad():
        zi, zt = space.embed_images(feats[64][te]), space.embed_texts(tf[te])
    print(f"\nShared space: {secs:.1f} s to align (loss {hist[0]:.3f} -> {hist[-1]:.3f}, "
          f"learned temperature {space.temperature.item():.3f})\n")
    print("| k | image→text recall@k | text→image recall@k | chance |\n|---:|---:|---:|---:|")
    for k in (1, 5, 10):
        print(f"| {k} | {M.recall_at_k(zi, zt, k):.3f} | {M.recall_at_k(zt, zi, k):.3f} | "
              f"{k / te.sum():.4f} |")
    tok, text_enc = pretrained.text_encoder(device="cpu")
    prompts = [f"It comes in {c}." for c in M.COLOURS]
    with torch.no_grad():
        zp = space.embed_texts(pretrained.encode(prompts, tok, text_enc, progress=False))
    pred = (zi @ zp.T).argmax(1).numpy()
    ok = pred == labels["colour"][te].to_numpy()
    silent = ~labels["colour_in_text"][te].to_numpy().astype(bool)
    print(f"\nZero-shot colour from the image (10 prompts 'It comes in {{colour}}.'): "
          f"{ok.mean():.3f} of {te.sum()} test items; {ok[silent].mean():.3f} of the "
          f"{silent.sum()} whose text never states the colour; chance 0.100.")

    reasons_from_pixels(x, ids, labels)
    inputs = cold_start_inputs(ids, feats[64])
    fusion(inputs)
    rolling_origin(inputs)
    truth_ceiling(inputs, labels)
    colour_world(inputs, labels)
    threads(x, ids)
    gan_spread(x, ids)


def section_only(section) -> None:
    """``--only ceiling`` / ``--only colour-world``: section 7 or 8 alone (the inputs it needs,
    then the section)."""
    config.seed_everything(0)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    x, ids = M.load_item_images()
    feats = M.image_features(pretrained.image_encoder(device="cpu"), x, size=64)
    section(cold_start_inputs(ids, feats), M.item_labels(ids))


CORNAC_SITE = ROOT / "build" / "cornac-site"   # pip install --target build/cornac-site ...


def _vbpr_cold(train, cold, new_items, feats_by_item, seed=0, epochs=20):
    """Cornac's VBPR (He & McAuley, 2016) trained on ``train`` with item features
    ``feats_by_item`` (a frame indexed by item id), scoring the new items with its visual part
    only — ``θ_u·(E f_i) + β'·f_i``, the standard cold-start use: a new item has no ``γ_i`` or
    ``β_i``. Returns each cold test user's NDCG@10 among the new items (a Series by user id)."""
    import cornac
    import pandas as pd
    from cornac.data import ImageModality

    from helpers.metrics.ranking import ndcg_per_user, rank_from_scores

    uir = list(zip(train["user_id"].astype(str), train["item_id"].astype(str),
                   np.ones(len(train))))
    ts = cornac.data.Dataset.from_uir(uir, seed=seed)
    known = [int(i) for i in ts.iid_map]
    modality = ImageModality(features=feats_by_item.loc[known].to_numpy(np.float32),
                             ids=[str(i) for i in known])
    modality.build(id_map=ts.iid_map)
    ts.add_modalities(item_image=modality)
    model = cornac.models.VBPR(k=10, k2=10, n_epochs=epochs, batch_size=100,
                               learning_rate=0.005, lambda_w=0.01, lambda_b=0.01, use_gpu=False,
                               verbose=False, seed=seed)
    model.fit(ts)
    new = np.asarray(new_items)
    f_new = feats_by_item.loc[new].to_numpy(np.float32)
    users = np.sort(cold["user_id"].unique())
    rows = np.array([ts.uid_map[str(u)] for u in users])
    scores = model.theta_user[rows] @ (f_new @ model.emb_matrix).T + (f_new @ model.beta_prime).T
    pos = {int(i): k for k, i in enumerate(new)}
    relevant = [set(pos[int(i)] for i in g) for _, g in
                cold.groupby("user_id")["item_id"]]
    top = rank_from_scores(scores, 10)
    return pd.Series(ndcg_per_user(top, relevant, 10), index=users)


def _gain_cells(p, base, users, driven) -> list[str]:
    """Two table cells: the paired gain of per-user NDCG ``p`` over ``base`` (Series by user)
    with its 95 % bootstrap interval, over all ``users`` and over the ``driven`` ones (a mask)."""
    from helpers.metrics.stats import bootstrap_ci

    diff = (p - base).reindex(users).to_numpy()
    cells = []
    for keep in (np.ones(len(diff), bool), driven):
        lo, hi = bootstrap_ci(diff[keep])
        cells.append(f"{diff[keep].mean():+.4f} [{lo:+.4f}, {hi:+.4f}]")
    return cells


def cold_start_inputs(ids, image_feats):
    """What sections 5 and 6 share, built once: the cleaned catalogue and non-view events, the
    ID maps, and the item vectors in the texts' order — MiniLM text, Lite0 image (``image_feats``
    of items ``ids``, PCA to 128, unit norm) and early fusion (both, / √2)."""
    from types import SimpleNamespace

    import torch.nn.functional as F

    from helpers.data import preprocess as pp
    from helpers.models import multimodal as M

    sw = pp.clean_shopworld(write=False)
    catalogue, events = sw["catalogue"], sw["events"]
    texts = I.item_texts(catalogue)
    text_emb = I.encode_items(texts)
    rows_of = ids.get_indexer(texts.index)
    if (rows_of < 0).any():
        raise SystemExit("the catalogue has items without features")
    image_emb = F.normalize(M.pca(image_feats, 128), dim=-1)[rows_of]
    inter = events[events["event_type"] != "view"]
    return SimpleNamespace(
        catalogue=catalogue, inter=inter, texts=texts, text_emb=text_emb, image_emb=image_emb,
        early=torch.cat([text_emb, image_emb], dim=1) / np.sqrt(2),
        um=pp.build_id_map(inter["user_id"]), im=pp.build_id_map(catalogue["item_id"]))


def cold_start_split(d, quantile):
    """Chapter 04's split at the ``quantile`` of time: training events, the warm and cold test
    events of users known in training, and the old and new items' IDs."""
    from helpers.data import preprocess as pp

    cutoff = d.inter["timestamp"].quantile(quantile)
    train, warm, cold = pp.cold_start_split(d.inter, d.catalogue, cutoff)
    known = train["user_id"].unique()
    launched = d.catalogue["launch_ts"]
    return (train, warm[warm["user_id"].isin(known)], cold[cold["user_id"].isin(known)],
            d.catalogue.loc[launched < cutoff, "item_id"],
            d.catalogue.loc[launched >= cutoff, "item_id"])


def fusion(d) -> None:
    """Section 5 (the chapter's protocol, more models): per-user cold NDCG@10 and paired
    bootstrap gains over the text model of the same family, for all cold test users and for the
    colour-driven ones (``colour_taste`` >= 0.6 in the user truth). ``d``:
    :func:`cold_start_inputs`."""
    import pandas as pd

    from helpers.models import multimodal as M

    texts, text_emb, image_emb, early, um, im = (d.texts, d.text_emb, d.image_emb, d.early,
                                                 d.um, d.im)
    train, warm, cold, old_items, new_items = cold_start_split(d, 0.7)
    pooled = lambda e: I.TextInterestRecommender(e, texts.index, max_len=20)
    tower = lambda e: I.TwoTowerRecommender(e, texts.index, n_epochs=2, seed=0)
    families = {
        "mean pooling": {"text": lambda: pooled(text_emb), "image": lambda: pooled(image_emb),
                         "early fusion": lambda: pooled(early),
                         "late fusion": lambda: M.LateFusion([pooled(text_emb),
                                                              pooled(image_emb)])},
        "two-tower, 2 epochs": {
            "text": lambda: tower(text_emb), "image": lambda: tower(image_emb),
            "early fusion": lambda: tower(early),
            "late fusion": lambda: M.LateFusion([tower(text_emb), tower(image_emb)]),
            "attention fusion": lambda: M.AttentionFusionTwoTower(
                torch.cat([text_emb, image_emb], 1), texts.index, splits=(384, 128), n_epochs=2,
                seed=0)},
        "VBPR (course), 20 epochs": {
            "text": lambda: M.VBPR(text_emb, texts.index, seed=0),
            "image": lambda: M.VBPR(image_emb, texts.index, seed=0),
            "early fusion": lambda: M.VBPR(early, texts.index, seed=0)},
    }
    per, table = {}, []
    for fam, makers in families.items():
        for name, make in makers.items():
            t0 = time.perf_counter()
            m = make().fit(train, um, im)
            secs = time.perf_counter() - t0
            per[(fam, name)] = m.evaluate(cold, candidates=new_items, per_user=True)
            table.append({"family": fam, "item vectors": name, "fit s": round(secs, 1),
                          "NDCG@10 cold": per[(fam, name)].mean(),
                          "NDCG@10 warm": m.evaluate(warm, candidates=old_items)["ndcg@10"]})
    if (CORNAC_SITE / "cornac").exists():
        sys.path.insert(0, str(CORNAC_SITE))
    try:
        import cornac  # noqa: F401
    except ImportError:
        print("\n(Cornac is not installed: VBPR skipped. `.venv/bin/python -m pip install "
              "--target build/cornac-site --no-deps cornac==3.0.1 powerlaw==1.5` adds it "
              "without touching the course's environment.)")
    else:
        by_item = lambda e: pd.DataFrame(e.numpy(), index=texts.index)
        for name, e in (("text", text_emb), ("image", image_emb),
                        ("early fusion", early)):
            t0 = time.perf_counter()
            per[("Cornac VBPR, 20 epochs", name)] = _vbpr_cold(train, cold, new_items, by_item(e))
            table.append({"family": "Cornac VBPR, 20 epochs", "item vectors": name,
                          "fit s": round(time.perf_counter() - t0, 1),
                          "NDCG@10 cold": per[("Cornac VBPR, 20 epochs", name)].mean(),
                          "NDCG@10 warm": float("nan")})
    print(f"\nFusion: {len(train)} training events; {len(warm)} warm and {len(cold)} cold test "
          f"events; {cold['user_id'].nunique()} cold test users\n")
    print(pd.DataFrame(table).round(4).to_markdown(index=False))
    truth = loaders.load_shopworld("user_truth").set_index("user_id")
    users = per[("mean pooling", "text")].index
    driven = (truth.loc[users, "colour_taste"] >= 0.6).to_numpy()
    print(f"\nPaired gain in cold NDCG@10 over the same family's text model, 95 % bootstrap "
          f"interval over users (all {len(users)}; colour-driven {driven.sum()}):\n")
    print("| family | item vectors | all users | colour-driven |\n|---|---|---|---|")
    for (fam, name), p in per.items():
        if name != "text":
            cells = _gain_cells(p, per[(fam, "text")], users, driven)
            print(f"| {fam} | {name} | {cells[0]} | {cells[1]} |")


def rolling_origin(d, quantiles=(0.5, 0.6, 0.7, 0.8)) -> None:
    """Section 6: section 5's cold-start protocol at several cut-offs (time quantiles), each
    user-cutoff pair one unit, pooled: about four times the users of one cut-off, so intervals
    about half as wide. Mean pooling (text, early, late fusion) and the course's VBPR (text,
    early fusion); paired gains over the family's text model. ``d``: :func:`cold_start_inputs`."""
    import pandas as pd

    from helpers.metrics.stats import bootstrap_ci
    from helpers.models import multimodal as M

    texts, text_emb, image_emb, early = d.texts, d.text_emb, d.image_emb, d.early
    pooled = lambda e: I.TextInterestRecommender(e, texts.index, max_len=20)
    makers = {"mean pooling, text": lambda: pooled(text_emb),
              "mean pooling, early fusion": lambda: pooled(early),
              "mean pooling, late fusion": lambda: M.LateFusion([pooled(text_emb),
                                                                pooled(image_emb)]),
              "VBPR, text": lambda: M.VBPR(text_emb, texts.index, seed=0),
              "VBPR, early fusion": lambda: M.VBPR(early, texts.index, seed=0)}
    per = {n: [] for n in makers}
    print("\nRolling origin: the cold-start protocol at several cut-offs, NDCG@10 on new items\n")
    print("| cut-off quantile | cold test users | " + " | ".join(makers) + " |")
    print("|---:|---:|" + "---:|" * len(makers))
    for q in quantiles:
        train, _, cold, _, new = cold_start_split(d, q)
        for name, make in makers.items():
            p = make().fit(train, d.um, d.im).evaluate(cold, candidates=new, per_user=True)
            per[name].append(p.set_axis(pd.MultiIndex.from_product([[q], p.index])))
        print(f"| {q} | {cold['user_id'].nunique()} | "
              + " | ".join(f"{per[n][-1].mean():.4f}" for n in makers) + " |")
    per = {n: pd.concat(v) for n, v in per.items()}
    print(f"\nPooled over {len(per['VBPR, text'])} user-cutoff pairs, paired gain over the "
          "family's text model (95 % bootstrap interval):\n")
    for a, b in (("mean pooling, early fusion", "mean pooling, text"),
                 ("mean pooling, late fusion", "mean pooling, text"),
                 ("VBPR, early fusion", "VBPR, text")):
        d = (per[a] - per[b]).to_numpy()
        lo, hi = bootstrap_ci(d)
        print(f"- {a}: {d.mean():+.4f} [{lo:+.4f}, {hi:+.4f}]")


def _colour_affinity_class():
    """Section 7's scorer, defined lazily (the course's Recommender base needs its imports)."""
    from helpers.models import cf, multimodal as M

    class ColourAffinity(cf.Recommender):
        """log P(the item's colour | the user's training history), Laplace-smoothed (α = 1)."""

        def __init__(self, colour_of, **kw):
            super().__init__(**kw)
            self.colour_of = colour_of

        def fit(self, df, user_map=None, item_map=None):
            self._prepare(df, user_map, item_map)
            items = self.item_map.decode(np.arange(len(self.item_map)))
            self.codes = self.colour_of.reindex(items).to_numpy()
            counts = np.zeros((len(self.user_map), len(M.COLOURS)))
            np.add.at(counts, (self.u, self.codes[self.i]), 1.0)
            self.logp = np.log((counts + 1) / (counts.sum(1, keepdims=True) + len(M.COLOURS)))
            return self

        def scores(self, user_idx):
            return self.logp[np.asarray(user_idx)][:, self.codes]

    return ColourAffinity


def truth_ceiling(d, labels) -> None:
    """Section 7: the text models given the item truth's colour and pattern (a perfect image
    classifier's output), appended as one-hot attributes or late-fused as a colour-affinity
    scorer. ``d``: :func:`cold_start_inputs`; ``labels``: ``multimodal.item_labels``."""
    import pandas as pd
    import torch.nn.functional as F

    from helpers.models import multimodal as M

    ColourAffinity = _colour_affinity_class()
    rows = labels.loc[d.texts.index]
    onehot = torch.cat([F.one_hot(torch.tensor(rows["colour"].to_numpy()), len(M.COLOURS)),
                        F.one_hot(torch.tensor(rows["pattern"].to_numpy()),
                                  len(M.CLASSES["pattern"]))], 1).float()
    colour_of = pd.Series(rows["colour"].to_numpy(), index=d.texts.index)
    with_attrs = lambda w: torch.cat([d.text_emb, w * onehot / np.sqrt(2)], 1)
    pooled = lambda e: I.TextInterestRecommender(F.normalize(e, dim=-1), d.texts.index,
                                                 max_len=20)
    vbpr = lambda e: M.VBPR(e, d.texts.index, seed=0)
    makers = {("mean pooling", "text"): lambda: pooled(d.text_emb),
              ("VBPR", "text"): lambda: vbpr(d.text_emb),
              ("-", "colour affinity alone"): lambda: ColourAffinity(colour_of)}
    for fam, make in (("mean pooling", pooled), ("VBPR", vbpr)):
        for w in (0.3, 0.6):
            makers[(fam, f"text + true attributes ×{w}")] = lambda make=make, w=w: make(
                with_attrs(w))
        for w in (0.1, 0.25):
            makers[(fam, f"text, late-fused with colour affinity at {w}")] = (
                lambda make=make, w=w: M.LateFusion([make(d.text_emb), ColourAffinity(colour_of)],
                                                    weights=[1 - w, w]))
    train, _, cold, _, new_items = cold_start_split(d, 0.7)
    per = {key: make().fit(train, d.um, d.im).evaluate(cold, candidates=new_items, per_user=True)
           for key, make in makers.items()}
    users = per[("VBPR", "text")].index
    user_truth = loaders.load_shopworld("user_truth").set_index("user_id")
    driven = (user_truth.loc[users, "colour_taste"] >= 0.6).to_numpy()
    print(f"\nThe ceiling: the item truth's colour and pattern given to the text models "
          f"(section 5's split; {len(users)} cold test users, {driven.sum()} colour-driven)\n")
    print("| family | item information | NDCG@10 cold | gain, all users | gain, colour-driven |")
    print("|---|---|---:|---|---|")
    for (fam, name), p in per.items():
        cells = ["", ""]
        if name != "text" and fam != "-":
            cells = _gain_cells(p, per[(fam, "text")], users, driven)
        print(f"| {fam} | {name} | {p.mean():.4f} | {cells[0]} | {cells[1]} |")


def colour_world(d, labels, maxima=(0.8, 1.6, 2.5, 4.0)) -> None:
    """Section 8: section 5's protocol on worlds whose shoppers care more about colour (the
    committed catalogue, icons and people; ``colour_taste`` ~ U(0, m)). ``d``:
    :func:`cold_start_inputs` (its catalogue, texts and item vectors are reused: the generator
    draws the items before the people, so they are identical in every world)."""
    import pandas as pd

    from helpers.data import shopworld as sw
    from helpers.models import multimodal as M

    ColourAffinity = _colour_affinity_class()
    colour_of = pd.Series(labels.loc[d.texts.index, "colour"].to_numpy(), index=d.texts.index)
    pooled = lambda e: I.TextInterestRecommender(e, d.texts.index, max_len=20)
    makers = {
        ("mean pooling", "text"): lambda: pooled(d.text_emb),
        ("mean pooling", "image"): lambda: pooled(d.image_emb),
        ("mean pooling", "early fusion"): lambda: pooled(d.early),
        ("mean pooling", "late fusion"): lambda: M.LateFusion([pooled(d.text_emb),
                                                               pooled(d.image_emb)]),
        ("VBPR", "text"): lambda: M.VBPR(d.text_emb, d.texts.index, seed=0),
        ("VBPR", "early fusion"): lambda: M.VBPR(d.early, d.texts.index, seed=0),
        ("-", "true colour affinity alone"): lambda: ColourAffinity(colour_of),
    }
    summary, gains = [], []
    for m in maxima:
        t0 = time.perf_counter()
        world = sw.generate(sw.WorldConfig(colour_taste_max=m, images=False, dirt=False),
                            progress=False)
        truth = world.tables["item_truth"].set_index("item_id")
        if not truth["colour"].map(M.COLOURS.index).reindex(d.texts.index).equals(
                colour_of.rename("colour")):
            raise SystemExit("the regenerated world's items differ from the committed ones")
        events = world.tables["events"]
        inter = events[events["event_type"] != "view"]
        dm = replace_inter(d, inter)
        train, _, cold, _, new_items = cold_start_split(dm, 0.7)
        per = {k: make().fit(train, dm.um, dm.im).evaluate(cold, candidates=new_items,
                                                           per_user=True)
               for k, make in makers.items()}
        users = per[("mean pooling", "text")].index
        taste = world.tables["user_truth"].set_index("user_id")["colour_taste"]
        driven = (taste.loc[users] >= 0.75 * m).to_numpy()
        share = sw.favourite_colour_share(events, world.tables["item_truth"],
                                          world.tables["user_truth"])
        summary.append({"m": m, "purchases in the favourite colour": round(share, 3),
                        "cold test users": len(users), "colour-driven": int(driven.sum()),
                        **{f"{fam}, {name}": round(p.mean(), 4) for (fam, name), p in per.items()},
                        "s": round(time.perf_counter() - t0)})
        for (fam, name), p in per.items():
            if name != "text" and fam != "-":
                cells = _gain_cells(p, per[(fam, "text")], users, driven)
                gains.append(f"| {m} | {fam} | {name} | {cells[0]} | {cells[1]} |")
    print("\nA shop where colour decides: colour_taste ~ U(0, m), everything else the committed "
          "world's; cold NDCG@10 (section 5's protocol)\n")
    print(pd.DataFrame(summary).to_markdown(index=False))
    print("\nPaired gain over the family's text model, 95 % bootstrap interval over users "
          "(colour-driven: colour_taste >= 0.75·m)\n")
    print("| m | family | item vectors | all users | colour-driven |\n|---:|---|---|---|---|")
    print("\n".join(gains))


def replace_inter(d, inter):
    """``d`` (:func:`cold_start_inputs`) with another interaction log (and its user ID map)."""
    from types import SimpleNamespace

    from helpers.data import preprocess as pp

    return SimpleNamespace(**{**vars(d), "inter": inter,
                              "um": pp.build_id_map(inter["user_id"])})


def threads(x, ids) -> None:
    """Section 9: chapter 06's training loops at one and at two CPU threads."""
    enc = pretrained.image_encoder(device="cpu")
    feats = M.image_features(enc, x, size=64)
    d = cold_start_inputs(ids, feats)
    train = cold_start_split(d, 0.7)[0]
    text_feats = d.text_emb[d.texts.index.get_indexer(ids)]
    labels = M.item_labels(ids)[["colour", "pattern", "category"]]
    jobs = {
        "small CNN, 2 epochs (2,000 icons, batch 16)": lambda: M.fit_image_classifier(
            x, labels, tasks=("colour", "pattern", "category"), epochs=2, batch_size=16, seed=0),
        "conditional GAN, 100 steps (batch 32, 32 px)": lambda: M.fit_cgan(
            x, labels[["category", "colour"]], steps=100, batch_size=32, lr=5e-4, seed=0),
        "shared space, 60 epochs (2,000 pairs, batch 256)": lambda: M.fit_shared_space(
            feats, text_feats, dim=128, epochs=60, seed=0),
        "attention-fusion two-tower, 2 epochs": lambda: M.AttentionFusionTwoTower(
            torch.cat([d.text_emb, d.image_emb], 1), d.texts.index, splits=(384, 128),
            n_epochs=2, seed=0).fit(train, d.um, d.im),
        "VBPR on text, 20 epochs": lambda: M.VBPR(d.text_emb, d.texts.index, seed=0).fit(
            train, d.um, d.im),
        "VBPR on early fusion, 20 epochs": lambda: M.VBPR(d.early, d.texts.index, seed=0).fit(
            train, d.um, d.im),
        "EfficientNet-Lite0 features, 2,000 icons at 64 px": lambda: M.image_features(
            enc, x, size=64),
    }
    print("\n| job | one thread, s | two threads, s | two / one |\n|---|---:|---:|---:|")
    for name, job in jobs.items():
        secs = {1: [], 2: []}
        for n in (1, 2, 1, 2):
            with config.cpu_threads(n):
                t0 = time.perf_counter()
                job()
                secs[n].append(time.perf_counter() - t0)
        one, two = min(secs[1]), min(secs[2])
        print(f"| {name} | {one:.1f} | {two:.1f} | {two / one:.2f} |", flush=True)


def gan_spread(x, ids, seeds=range(6)) -> None:
    """Section 10: chapter 06's quick-profile GAN under six seeds, judged as the chapter does."""
    import pandas as pd

    from helpers.reasons import world as W

    truth = M.item_labels(ids)
    facts = W.reason_world().facts
    stated = pd.DataFrame({t: M.stated_labels(facts, ids, t) for t in ("colour", "pattern")})
    said = stated.notna().all(axis=1).to_numpy().copy()
    labels = pd.DataFrame({"colour": stated["colour"][said].astype(int).to_numpy(),
                           "pattern": stated["pattern"][said].astype(int).to_numpy(),
                           "category": truth["category"][said].to_numpy()})
    judge, _ = M.fit_image_classifier(x[said], labels, tasks=("colour", "pattern", "category"),
                                      epochs=6, batch_size=16, seed=0)
    colour = stated["colour"].fillna(pd.Series(M.predict_proba(judge, x)["colour"].argmax(1)
                                               .numpy(), index=ids))
    gan_labels = pd.DataFrame({"category": truth["category"].to_numpy(),
                               "colour": colour.astype(int).to_numpy()})
    print("\n| GAN | seed | threads | s | colour read as asked | category read as asked |\n"
          "|---|---:|---:|---:|---:|---:|")
    runs = {"projection critic, 400 steps (before)": dict(steps=400, aux_weight=0.0),
            "projection + auxiliary classifier, 200 steps": dict(steps=200, aux_weight=1.0)}
    summary = []
    for name, kw in runs.items():
        colour_acc = []
        for seed, n in [(s, 1) for s in seeds] + [(0, 2)]:
            with config.cpu_threads(n):
                t0 = time.perf_counter()
                g, _, _ = M.fit_cgan(x, gan_labels, batch_size=32, lr=5e-4, seed=seed, **kw)
                secs = time.perf_counter() - t0
            read = M.judge_cgan(g, judge, per_pair=5, seed=0)["read_as_asked"]
            c, k = read["colour"], read["category"]
            if n == 1:
                colour_acc.append(c)
            print(f"| {name} | {seed} | {n} | {secs:.1f} | {c:.3f} | {k:.3f} |", flush=True)
        a = np.array(colour_acc)
        summary.append(f"{name}: mean {a.mean():.3f}, standard deviation {a.std(ddof=1):.3f}, "
                       f"range {a.min():.3f} to {a.max():.3f}")
    print(f"\nColour read as asked over {len(seeds)} seeds on one thread (chance "
          f"{1 / len(M.COLOURS):.2f}):\n- " + "\n- ".join(summary))


def reasons_from_pixels(x, ids, truth) -> None:
    import dataclasses

    import pandas as pd

    from helpers.reasons import (
        adapter,
        claims,
        explainers,
        guard as G,
        phrasing,
        planner as P,
        realiser,
        vocabulary,
        world as W,
    )

    w = W.reason_world()
    proba = {}
    print("\n| task | items whose text states it | image accuracy on the silent items |"
          "\n|---|---:|---:|")
    for task in ("colour", "pattern"):
        y = M.stated_labels(w.facts, ids, task)
        known = np.array(y.notna(), dtype=bool)          # a writable copy: it indexes a tensor
        model, _ = M.fit_image_classifier(x[known], pd.DataFrame({task: y[known].astype(int)}),
                                          tasks=(task,), epochs=4, seed=0)
        proba[task] = M.predict_proba(model, x)[task]
        right = proba[task].argmax(1).numpy()[~known] == truth[task].to_numpy()[~known]
        print(f"| {task} | {known.sum()} | {right.mean():.4f} ({(~known).sum()} items) |")
    enriched, counts = M.facts_from_pixels(w.facts, ids, proba, threshold=0.9)
    for task, c in counts.items():
        names = M.CLASSES[task]
        added = [i for i in ids if task in enriched[i].get("from_image", {})]
        wrong = sum(enriched[i][task] != names[truth.loc[i, task]] for i in added)
        print(f"\n{task}: {c['added']} facts added from the image at probability >= 0.9, "
              f"{wrong} of them wrong; {c['below threshold']} below the threshold; "
              f"{c['stated by text']} stated by the text (kept)", end="")
    test = pd.concat([w.warm, w.cold])
    sel = test[test["drivers"].str.contains("colour|pattern")]
    print(f"\n\nTest purchases driven by colour or pattern: {len(sel)} of {len(test)}\n")
    print("| facts | plan | precision | recall | names a driver |\n|---|---|---:|---:|---:|")
    said, verdicts, served_stats = {}, {}, {}
    tok_r, lm_r, _ = adapter.load_realiser(device="cpu")
    vocab = vocabulary.closed_vocabulary(tok_r, w.lex)
    for name, facts in (("text only", w.facts), ("text + pixels", enriched)):
        oracle = [P.oracle_plan(facts[int(i)], d) for i, d in zip(sel["item_id"], sel["drivers"])]
        planner = P.fit_planner(dataclasses.replace(w, facts=facts), progress=False)
        plans = planner.plans(sel["user_id"], sel["item_id"], progress=False)
        for label, pl in (("oracle (upper bound)", oracle), ("fitted planner", plans)):
            sc = P.plan_scores(pl, sel["drivers"])
            print(f"| {name} | {label} | {sc['precision']:.3f} | {sc['recall']:.3f} | "
                  f"{sc['names a driver']:.3f} |")
        sentences = [phrasing.say(pl, facts[int(i)]) for pl, i in zip(plans, sel["item_id"])]
        said[name] = claims.score_reasons(sentences, sel, w.lex, w.items_truth, facts,
                                       intervals=True)
        verdicts[name] = claims.reason_verdicts(sentences, sel, w.lex, w.items_truth, facts)
        # the same plans said by chapter 05's shipped LoRA realiser, served behind the guard
        wanted = {(int(u), int(i)): {claims.driver_of(c) for c in p}
                  for u, i, p in zip(sel["user_id"], sel["item_id"], plans)}
        guard = G.ClosedWorldGuard(facts, w.lex, personal=lambda u, i: wanted[(u, i)],
                                     fallback=explainers.TemplateExplainer(facts, w.profile))
        served, st = realiser.serve(tok_r, lm_r, vocab, guard, sel["user_id"], sel["item_id"],
                                        plans, temperature=1.0, seed=0)
        said[name + ", LM + guard"] = claims.score_reasons(served, sel, w.lex, w.items_truth, facts,
                                                        intervals=True)
        served_stats[name] = {k: st[k] for k in ("rejected", "fallback", "redrawn")}
    print("\nThe fitted planner's plans, said by the phrasing bank (first wording) and by chapter "
          "05's LoRA realiser behind the guard, on the same pairs (95 % bootstrap intervals; "
          f"realiser samples the guard rejected / pairs given the template / redrawn: "
          f"{served_stats}):\n\n| facts | FMR | halluc. | grounded | faithful |\n|---|---|---|---|---|")
    for name, r in said.items():
        cell = lambda m: f"{r[m]:.3f} [{r[m + ' lo']:.3f}, {r[m + ' hi']:.3f}]"
        h = (f"{r['halluc.']:.3f} [{1 - r['truthful hi']:.3f}, {1 - r['truthful lo']:.3f}]")
        print(f"| {name} | {cell('FMR')} | {h} | {cell('grounded')} | {cell('faithful')} |")
    from helpers.metrics.stats import bootstrap_ci

    before, after = verdicts["text only"], verdicts["text + pixels"]
    for m in ("FMR", "faithful"):
        ok = before[m].notna() & after[m].notna()        # FMR: pairs whose reference names one
        diff = (after[m][ok].astype(float) - before[m][ok].astype(float)).to_numpy()
        lo, hi = bootstrap_ci(diff)
        print(f"\nPaired difference in {m}, text + pixels minus text only, over the {ok.sum()} "
              f"pairs it applies to: {diff.mean():+.3f}, 95 % bootstrap interval "
              f"[{lo:+.3f}, {hi:+.3f}]", end="")
    print()


if __name__ == "__main__":
    sections = {"ceiling": truth_ceiling, "colour-world": colour_world}
    images_only = {"threads": threads, "gan": gan_spread}
    if len(sys.argv) == 3 and sys.argv[1] == "--only" and sys.argv[2] in sections:
        section_only(sections[sys.argv[2]])
    elif len(sys.argv) == 3 and sys.argv[1] == "--only" and sys.argv[2] in images_only:
        config.seed_everything(0)
        torch.set_num_threads(min(2, torch.get_num_threads()))
        images_only[sys.argv[2]](*M.load_item_images())
    elif sys.argv[1:]:
        raise SystemExit("usage: multimodal_benchmark.py [--only ceiling|colour-world|threads|gan]")
    else:
        main()

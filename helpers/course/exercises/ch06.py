"""Exercises of chapter 06 (multimodal, two lessons: 06a reading the picture, 06b fusion for
recommendation), each checked against an independent reference: the shape torch's own
``nn.Conv2d`` produces (06a, q1), InfoNCE written out as a loop of log-softmaxes (06a, q2), torch's
``scaled_dot_product_attention`` with a boolean mask (06b, q3), and the course's own re-runs for
the two "vary and explain" exercises: the linear probe on icons at 32 pixels (06a, q4) and the
keen shop with milder colour tastes (06b, q5)."""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from helpers.course.exercises import Exercise, Incorrect, fmt, progress_of, shape_of
from helpers.course.exercises.quiz import Choice, Numeric, Quiz
from helpers.course.exercises.vary import Vary
from helpers.data import preprocess as pp, shopworld
from helpers.models import interest as I, multimodal as M, pretrained
from helpers.reasons import world as W

_NB_A = "06a_images_and_text.ipynb"
_NB_B = "06b_fusion.ipynb"


def _check_conv_out(fn) -> str:
    cases = [(64, 3, 1, 1), (64, 3, 2, 1), (64, 2, 2, 0), (32, 5, 1, 0), (31, 4, 2, 1),
             (224, 7, 2, 3), (7, 7, 1, 0), (9, 3, 3, 2)]
    for size, kernel, stride, padding in cases:
        conv = nn.Conv2d(1, 1, kernel, stride=stride, padding=padding)
        with torch.no_grad():
            want = conv(torch.zeros(1, 1, size, size)).shape[-1]
        got = fn(size, kernel, stride, padding)
        if isinstance(got, bool) or not isinstance(got, int):
            raise Incorrect(f"return an int (a side length), got {type(got).__name__} {fmt(got)}.")
        if got != want:
            raise Incorrect(f"a {kernel}x{kernel} kernel, stride {stride}, padding {padding} on "
                            f"{size}x{size} pixels gives {want}x{want} in torch, you said {fmt(got)}. "
                            "Pad both sides, count the positions the kernel fits, and round "
                            "down.")
    return "It matches the output side of torch's nn.Conv2d on 8 settings."


def _reference_info_nce(a, b, temperature):
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    n = len(a)
    total = 0.0
    for i in range(n):                      # image i against every text, and text i against
        s_row = torch.tensor([float(a[i] @ b[j]) / temperature for j in range(n)])
        s_col = torch.tensor([float(a[j] @ b[i]) / temperature for j in range(n)])
        total += -(s_row[i] - torch.logsumexp(s_row, 0)) - (s_col[i] - torch.logsumexp(s_col, 0))
    return total / (2 * n)


def _check_info_nce(fn) -> str:
    gen = torch.Generator().manual_seed(6)
    for n, d, t in ((4, 3, 0.07), (6, 8, 0.5), (5, 8, 1.0)):
        a, b = torch.randn(n, d, generator=gen) * 3, torch.randn(n, d, generator=gen)
        want = _reference_info_nce(a, b, t)
        got = fn(a, b, t)
        if not isinstance(got, torch.Tensor) or got.dim() != 0:
            raise Incorrect(f"return the mean loss as a 0-dim tensor, got {shape_of(got)}.")
        if not torch.allclose(got, want.to(got.dtype), atol=1e-4):
            one_side = _reference_one_side(a, b, t)
            extra = (" That is the image→text half only: average it with the text→image half "
                     "(the transposed logits)." if torch.allclose(got, one_side, atol=1e-4)
                     else " Normalise both sides to unit length first, divide by the "
                     "temperature, and use the diagonal as the targets.")
            raise Incorrect(f"{n} pairs of width {d}, temperature {t}: the loss should be "
                            f"{float(want):.4f}, got {float(got):.4f}.{extra}")
    return "It equals the symmetric InfoNCE loss written out pair by pair."


def _reference_one_side(a, b, t):
    logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / t
    return F.cross_entropy(logits, torch.arange(len(a)))


def _check_modality_attention(fn) -> str:
    gen = torch.Generator().manual_seed(7)
    n, m, d = 5, 3, 8
    tokens = torch.randn(n, m, d, generator=gen)
    query = torch.randn(d, generator=gen)
    present = torch.tensor([[1, 1, 1], [1, 0, 1], [1, 0, 0], [0, 1, 1], [1, 1, 0]], dtype=torch.bool)
    got = fn(query, tokens, present)
    if not isinstance(got, torch.Tensor) or got.shape != (n, m):
        raise Incorrect(f"{n} items with {m} modality tokens each should give weights ({n}, {m}), "
                        f"got {shape_of(got)}.")
    if torch.isnan(got).any():
        raise Incorrect("some weights are NaN: mask with -inf before the softmax (every item here "
                        "has at least one modality).")
    if (got[~present].abs() > 1e-6).any():
        raise Incorrect("a missing modality received weight: give it -inf before the softmax, so "
                        "an item without a picture is not scored on a zero picture.")
    # the reference: torch's attention with the query as the one query row and a bool mask;
    # its output is the weighted sum of the values, so use the identity as values to read weights
    q = query.expand(n, 1, d)
    eye = torch.eye(m).expand(n, m, m)
    want = F.scaled_dot_product_attention(q, tokens, eye, attn_mask=present[:, None, :])[:, 0]
    if not torch.allclose(got, want, atol=1e-5):
        unscaled = torch.softmax((tokens @ query).masked_fill(~present, -math.inf), -1)
        raise Incorrect("the weights differ from softmax(q·t / sqrt(d)) over the present modalities "
                        f"(max gap {(got - want).abs().max():.3g})."
                        + (" Divide the scores by sqrt(d) before the softmax."
                           if torch.allclose(got, unscaled, atol=1e-5) else
                           " Score each token by its dot product with the query."))
    return "It equals torch's scaled_dot_product_attention with a boolean mask."


q1 = Exercise(name="ch06.q1", title="Write conv_out(size, kernel, stride, padding)",
              var="conv_out", checker=_check_conv_out, notebook=_NB_A,
              hint_text="The kernel's top-left corner can sit at `size + 2*padding - kernel + 1` "
                        "places in a row; a stride keeps every `stride`-th: "
                        "`(size + 2*padding - kernel) // stride + 1`.",
              nudge=("Count how many places the kernel's corner can sit along one side of the "
                     "padded input, then keep every stride-th of them."))
q2 = Exercise(name="ch06.q2", title="Write clip_loss(a, b, temperature): symmetric InfoNCE",
              var="clip_loss", checker=_check_info_nce, notebook=_NB_A,
              hint_text="`logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / "
                        "temperature`; targets `torch.arange(n)`; average "
                        "`F.cross_entropy(logits, targets)` and the same on `logits.T`.",
              nudge=("Each image should be most similar to its own text among all texts in the "
                     "batch, and each text to its own image: two classification problems over the "
                     "batch, averaged. Compare directions, not lengths."))
q3 = Exercise(name="ch06.q3", title="Write modality_weights(query, tokens, present)",
              var="modality_weights", checker=_check_modality_attention, notebook=_NB_B,
              hint_text="`scores = (tokens @ query) / math.sqrt(d)`, shape (n, m); "
                        "`scores.masked_fill(~present, float('-inf'))`; softmax over dim=-1.",
              nudge=("Attention over modalities: score each modality's token against the query "
                     "(scaled by the square root of the dimension), give missing modalities no "
                     "weight, and normalise each row to sum to 1."))


def _probe_colour_accuracy(sizes=(64, 32)) -> tuple[float, ...]:
    """The linear probe on frozen EfficientNet-Lite0 features, as 06a section 3 fits it: trained
    on the items whose text states colour and pattern, tested on the others against the hidden
    truth; its colour accuracy with the icons resized to each of ``sizes`` pixels."""
    x, ids = M.load_item_images(progress=False)
    truth = M.item_labels(ids)
    facts = W.reason_world().facts
    stated = M.stated_labels(facts, ids, "colour")
    said = (stated.notna() & M.stated_labels(facts, ids, "pattern").notna()).to_numpy().copy()
    encoder = pretrained.image_encoder()
    out = []
    for size in sizes:
        feats = M.image_features(encoder, x, size=size, progress=False)
        out.append(M.linear_probe(feats[said], stated[said].astype(int).to_numpy(), feats[~said],
                                  truth["colour"][~said])["accuracy"])
    return tuple(float(a) for a in out)


q4 = Vary(name="ch06.q4", notebook=_NB_A, var="vary_size",
          title="Vary and explain: the frozen encoder on icons at 32 pixels",
          measure=_probe_colour_accuracy,
          quantity="the linear probe's colour accuracy on the items whose text is silent",
          expect="down",
          why=Choice(
              "What explains how the probe's colour accuracy on the silent items changed when "
              "the icons were resized from 64 to 32 pixels before the frozen encoder?",
              {"a": "Fewer pixels average the fill over a coarser grid, so colour, a global "
                    "statistic, reaches the encoder with less pattern noise on top of it and the "
                    "probe separates the colours more cleanly.",
               "b": "A smaller image gives the encoder fewer positions to describe, so its "
                    "feature vector is shorter and the probe, with fewer weights to fit on 987 "
                    "icons, overfits them less.",
               "c": "The encoder halves the image five times: a 32-pixel icon reaches its last "
                    "layers as a single position instead of 2 x 2, through filters learned on "
                    "objects in 224-pixel photos, so less of the icon survives into the "
                    "features and the classes separate less cleanly.",
               "d": "A smaller image gives a shorter feature vector, so the probe has fewer "
                    "features to tell ten colours apart with."},
              "c",
              {"a": "The accuracy the cell printed fell, so a cleaner colour signal is not what "
                    "happened; and the encoder does not compute a colour average, its filters "
                    "read local patches.",
               "b": "The encoder pools its last map over all positions: the feature vector has "
                    "1,280 numbers at every size, so the probe fits as many weights as before.",
               "c": "Right: a pretrained encoder works best near the scale it was trained at; "
                    "resizing down costs what the features can say.",
               "d": "The feature vector has 1,280 numbers at every size (the encoder pools its "
                    "last map over all positions); what changes is what those numbers saw."}),
          hint_text="Set `PROBE_SIZE = 32`, run that cell and the next one, copy the colour "
                    "accuracy it prints into `value`, and compare it with the 64-pixel row of "
                    "the table above.",
          nudge=("How many times does the encoder halve its input before pooling, and what is "
                 "left of a 32-pixel icon after that? Check whether the feature vector's length "
                 "changes with the size."))


def _keen_early_fusion_gain(tastes=(4.0, 1.6)) -> tuple[float, ...]:
    """06b's keen-shop comparison: the mean per-user gain in cold NDCG@10 of early fusion (text
    and Lite0 image vectors) over the text vectors alone, mean pooling, on ShopWorld regenerated
    with each ``colour_taste_max`` (2,000 users, no dirt)."""
    catalogue = pp.clean_shopworld(write=False)["catalogue"]
    texts = I.item_texts(catalogue)
    text_emb = I.encode_items(texts)
    x, ids = M.load_item_images(progress=False)
    feats = M.image_features(pretrained.image_encoder(), x, size=64, progress=False)
    image_emb = F.normalize(M.pca(feats, 128), dim=-1)[ids.get_indexer(texts.index)]
    early = torch.cat([text_emb, image_emb], dim=1) / math.sqrt(2)
    im = pp.build_id_map(catalogue["item_id"])
    out = []
    for taste in tastes:
        world = shopworld.generate(shopworld.WorldConfig(colour_taste_max=taste, images=False,
                                                         dirt=False, n_users=2000), progress=False)
        inter = world.tables["events"]
        inter = inter[inter["event_type"] != "view"]
        cutoff = inter["timestamp"].quantile(0.7)
        train, _, cold = pp.cold_start_split(inter, catalogue, cutoff)
        cold = cold[cold["user_id"].isin(train["user_id"].unique())]
        new = catalogue.loc[catalogue["launch_ts"] >= cutoff, "item_id"]
        um = pp.build_id_map(inter["user_id"])
        per = [I.TextInterestRecommender(e, texts.index, max_len=20).fit(train, um, im)
               .evaluate(cold, candidates=new, per_user=True) for e in (text_emb, early)]
        out.append(float((per[1] - per[0]).mean()))
    return tuple(out)


q5 = Vary(name="ch06.q5", notebook=_NB_B, var="vary_taste",
          title="Vary and explain: the keen shop with milder colour tastes",
          measure=_keen_early_fusion_gain,
          quantity="early fusion's mean gain in cold NDCG@10 over text, in the regenerated shop",
          expect="down",
          why=Choice(
              "What explains how early fusion's gain over text changed when the regenerated "
              "shop drew colour tastes from U(0, 1.6) instead of U(0, 4)?",
              {"a": "With milder tastes colour decides a smaller share of purchases, so the "
                    "picture, the only source of colour for half the items, carries less of what "
                    "the shoppers decide on: there is less for it to add to the text.",
               "b": "With milder tastes the shoppers spread their purchases over more colours, "
                    "so a history holds more distinct colours and the mean of its image vectors "
                    "covers more of the new items: the picture finds more of them.",
               "c": "With milder tastes the category and the aspects decide more of each "
                    "purchase; the image vector encodes the category as well as the text does, so "
                    "the fused vector, counting the category twice, ranks the right kind of item "
                    "higher than text alone.",
               "d": "With milder tastes fewer users have cold test events, so the per-user "
                    "differences are averaged over fewer users and the gain is pulled towards 0."},
              "a",
              {"a": "Right: a modality is worth what it tells about the decision. The share of "
                    "purchases in the buyer's favourite colour falls with the taste, and the "
                    "picture's gain falls with it.",
               "b": "The cell printed a smaller gain, not a larger one; and spreading purchases "
                    "over colours makes a history's colour signal weaker, not stronger.",
               "c": "The cell printed a smaller gain; and counting the category twice is not a "
                    "gain either — the text vector already ranks the right kind of item.",
               "d": "A mean over fewer users is noisier, not pulled towards 0: the number of "
                    "users changes the interval's width, not where the mean lies."}),
          hint_text="Set `TASTE_MAX = 1.6`, run that cell and the next one, copy the gain it "
                    "prints into `value`, and compare it with the gain at 4.0.",
          nudge=("Compare the share of purchases in the buyer's favourite colour at the two "
                 "settings, and ask what the picture knows that the text does not."))


quiz_a = Quiz("ch06.quiz_a", _NB_A, var="quiz_answers_a", where=(
    "Q1: section 1; Q2: section 2; Q3: section 3; Q4: section 4; Q5: section 5; Q6: section 6."),
    questions=[
    Numeric("A batch of 32 RGB images, 64 x 64 pixels, as PyTorch expects it: how many numbers "
            "does the tensor hold?",
            32 * 3 * 64 * 64, "Right: shape (32, 3, 64, 64), channels before height and width.",
            tol=0.5, traps={32 * 64 * 64: "That leaves out the three colour channels."}),
    Choice("How does the chapter's small CNN learn colours and patterns with no human labelling?",
           {"a": "From the shop's own descriptions that state them (about half do); it then reads "
                 "them in pictures whose text is silent.",
            "b": "From ImageNet labels.",
            "c": "It clusters pixels without any labels."},
           "a",
           {"a": "Right: the shop's own words are the labels.",
            "b": "ImageNet's classes are not colours or patterns of these products.",
            "c": "It is trained supervised, on the stated labels."}),
    Choice("A frozen pretrained image encoder with a linear probe did about as well as the CNN trained "
           "here. What is the lesson?",
           {"a": "Pretrained is the default; train your own only when it measurably wins.",
            "b": "Never use a pretrained encoder.",
            "c": "Linear probes are always best."},
           "a",
           {"a": "Right.",
            "b": "It matched the custom model at a fraction of the work.",
            "c": "A probe is as good as the features under it."}),
    Choice("A CLIP-style shared space names an item's colour zero-shot. How?",
           {"a": "It was trained on colour labels.",
            "b": "Pictures and texts are mapped into one space by contrastive training on pairs; "
                 "the colour word whose text vector is closest to the picture's vector wins.",
            "c": "It reads the colour from the file name."},
           "b",
           {"a": "No colour labels: pairs alone.",
            "b": "Right: compare the image with the text of every colour.",
            "c": "It reads pixels."}),
    Choice("Section 5 adds the picture's colour to an item's facts only where the CNN's "
           "probability is at least 0.9. Why the threshold?",
           {"a": "To keep the planner fast: fewer facts mean fewer plans to score.",
            "b": "A fact the guard lets a reason state must be something the shop shows; below "
                 "the threshold it would be a model's guess, and a wrong one would be a "
                 "hallucination about the item.",
            "c": "The realiser was only trained on colours stated with high probability."},
           "b",
           {"a": "The planner's cost hardly depends on how many facts an item has; the threshold "
                 "is about what a reason may claim.",
            "b": "Right: the hallucination rate did not rise, because every added fact was read "
                 "confidently from the shop's own photo.",
            "c": "The realiser was trained on the text's stated facts, which carry no probability "
                 "at all; it says the picture's colour the same way."}),
    Choice("The conditional GAN of section 6 is judged by the section-2 CNN: the share of its "
           "icons the CNN reads as the asked colour. What does that number measure?",
           {"a": "How realistic the icons look to a person.",
            "b": "Whether the generator drew what was asked, as far as that classifier can see: "
                 "a judge that never saw a generated icon, with its own blind spots.",
            "c": "How far the generator's and the critic's losses fell."},
           "b",
           {"a": "A classifier reads colour, a global statistic, even from a blurred shape: it "
                 "says nothing about realism as a person sees it.",
            "b": "Right: a judge measures only what it can see.",
            "c": "The losses measure the training game, not the drawings: their adversarial parts "
                 "need not fall at all, since it is a two-player game, not a minimisation."}),
])

quiz_b = Quiz("ch06.quiz_b", _NB_B, var="quiz_answers_b", where=(
    "Q1: section 2 and exercise 1; Q2: section 2 (VBPR); Q3: section 2 (the protocol); Q4: "
    "section 3; Q5: section 4."), questions=[
    Choice("In attention fusion, an item has no picture. What does the mask do?",
           {"a": "It replaces the missing picture's token with zeros, which the softmax then "
                 "weighs like any other token.",
            "b": "It gives the missing modality's score -inf before the softmax, so its weight is "
                 "exactly 0 and the text token takes all the weight.",
            "c": "It drops the item from the candidates until a picture is uploaded."},
           "b",
           {"a": "A zero token still gets a score (0) and a share of the weight: the item would "
                 "be scored on a picture it does not have.",
            "b": "Right: the same masking as padding in chapter 03's attention.",
            "c": "The item stays a candidate; it is ranked on the modalities it has."}),
    Choice("A brand-new item has no interactions. How does VBPR score it?",
           {"a": "By its ID factors, initialised at random.",
            "b": "By the content term alone — the user's visual factors times the projected "
                 "features, plus the feature bias — since it has no ID factors or item bias "
                 "learned from interactions.",
            "c": "It cannot: VBPR only ranks items seen in training."},
           "b",
           {"a": "Random ID factors would rank new items at random; VBPR leaves them out for an "
                 "item it never saw.",
            "b": "Right: the content term is what makes VBPR a cold-start model.",
            "c": "Its content term scores any item with features, seen or not."}),
    Choice("Why does the chapter compare two models on the same users pair by pair, instead of "
           "comparing their two mean NDCGs?",
           {"a": "Because NDCG is not defined for a single user.",
            "b": "Users differ far more from each other than two models differ on one user; the "
                 "per-user difference removes that shared variation, so its interval is narrower "
                 "than the two means' intervals suggest.",
            "c": "Because the bootstrap only works on differences."},
           "b",
           {"a": "Each user has their own NDCG@10: that is what the per-user table holds.",
            "b": "Right: a paired comparison asks how each user's ranking changed.",
            "c": "The bootstrap resamples users for any statistic; pairing is about which "
                 "variation the interval includes."}),
    Choice("On the cold-start protocol, did fusing image and text beat text alone?",
           {"a": "Yes, always, by a wide margin.",
            "b": "Not surely: none of the fusions was a sure gain over text, and a paired interval "
                 "is how you know.",
            "c": "Images alone beat both."},
           "b",
           {"a": "The paired intervals say otherwise on this protocol.",
            "b": "Right: report the interval, not the point estimate.",
            "c": "Image alone edged text in the mean, but its paired interval straddles zero as "
                 "well: no sure win, over text or over the fusions."}),
    Choice("The same models, pictures and protocol, in the shop regenerated with keener colour "
           "tastes: image alone and the training-free fusions now gain beyond noise. What does that "
           "show?",
           {"a": "The models were broken in the committed shop.",
            "b": "A modality is worth what it tells about the decision: once colour drives the "
                 "purchases, the picture, the only source of colour for half the items, pays.",
            "c": "Fusion always wins if you regenerate the data often enough."},
           "b",
           {"a": "The same training-free models, unchanged, gained in the keen shop: they were not broken.",
            "b": "Right: measure whether the new modality carries the decision's signal before "
                 "building on it.",
            "c": "One regeneration, with one change chosen in advance and named; the committed "
                 "shop's null result stands and is reported beside it."}),

])

progress = progress_of(__name__)

"""PETER's reference code (Li, Zhang & Chen, ACL 2021; github.com/lileipisces/PETER) trained
and scored by itself on the very files the course's PETER reads
(``benchmarks/peter_field_benchmark.py``), one subprocess per seed, so the two sit side by side.

    git clone https://github.com/lileipisces/PETER build/peter-src      # outside git: build/
    nice -n 10 .venv/bin/python benchmarks/peers/peter_reference.py --peter-src build/peter-src \
        --seeds 0 1 2 --epochs 5 --write benchmarks/results/38_peter_reference_cpu.md
    # ~10 minutes a seed on 2 shared CPU cores (about 100 s an epoch); --epochs 5 caps main.py's
    # 100 (with its early stopping) to fit; leave --epochs out to run its default
    .venv/bin/python benchmarks/peers/peter_reference.py --peter-src build/peter-src \
        --seeds 0 1 2 --from-json --write ...  # rebuild the table from build/peter-reference/

Nothing of the reference code is in this repository: it is run from ``--peter-src``, a checkout
made by the reader, with the course's ``.venv`` python (torch 2.x, numpy 2.x); the sha256 of its
five source files (and its commit, when ``--peter-src`` is a git clone or ``--peter-commit`` is
given) go into every result so the run can be matched to a version.

What the script does:

1. ``--data`` (default ``build/peter_export``, the course script's default too) must hold
   ``helpers.data.loaders.export_peter()``'s ``reviews.pickle`` and ``1/{train,validation,
   test}.index``; it is exported when missing. The sha256 of the four files is recorded.
2. Per seed, the reference ``main.py`` runs with its own argument defaults (emsize 512, nhead 2,
   nhid 2048, nlayers 2, dropout 0.2, SGD lr 1.0, clip 1.0, batch 128, vocab 20000, endure_times
   5, rating_reg 0.1, context_reg 1.0, text_reg 1.0, words 15, at most 100 epochs) plus
   ``--peter_mask`` as in its README (``--use-feature`` adds ``--use_feature``: PETER+), ``--seed``
   and, if given, ``--epochs`` (a cap, recorded). Its log goes to
   ``build/peter-reference/seed<k>/train.log``, its ``generated.txt`` beside it.
3. Two things around the reference code, neither an edit of it:

   * ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` in the child's environment: ``main.py`` saves the
     whole model with ``torch.save(model)`` and reloads the best one with ``torch.load(f)``;
     torch >= 2.6 defaults to ``weights_only=True``, which refuses a pickled module. The variable
     restores the old default for that process only (as ``benchmarks/peers/run_peers.py`` does
     for RecBole).
   * ``random.seed(seed)`` before ``main.py`` runs (a ``runpy`` launcher): the reference seeds
     torch only, but shuffles the training batches with Python's ``random.shuffle``, which it
     leaves unseeded, so two runs with one ``--seed`` would differ. Seeding it makes a rerun
     repeat; nothing else changes.

   No line of the reference code needed changing to run on torch 2.13 / numpy 2.x.
4. The numbers are the ones the reference prints itself (``main.py``'s ``generate``: RMSE, MAE,
   BLEU-1/4 from its ``bleu.py``, USR, DIV, FCR, FMR from its ``utils.py``, ROUGE-1/2/L F, P, R
   from its ``rouge.py``), parsed from the log. One figure is derived, and named so: ROUGE-L F1,
   from the reference's own ``rouge.rouge_l_sentence_level`` (its P and R per sentence) on its
   ``generated.txt``, because the reference prints ROUGE-L only as F_beta (beta = P/R) while the
   course's table also has F1; the same pass recomputes F_beta and checks it against the printed
   value, which checks the reading of ``generated.txt``. With ``--write``, the course's own
   ``helpers.metrics.text`` is also run on that ``generated.txt`` and its largest difference from
   each printed figure is reported: a check that both sides' tables measure the same thing.

Writes ``build/peter-reference/seed<k>.json`` per seed and ``build/peter-reference/summary.md``;
``--write`` writes that table, with the run's settings and the notes a reader needs before
comparing it with the course's table, to a results file.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "build/peter-reference"
REF_FILES = ("main.py", "module.py", "utils.py", "bleu.py", "rouge.py")
DATA_FILES = ("reviews.pickle", "1/train.index", "1/validation.index", "1/test.index")
# main.py's argument defaults at the commit measured (1f1d7f6), for the settings table
REF_DEFAULTS = {"emsize": "512", "nhead": "2", "nhid": "2048", "nlayers": "2", "dropout": "0.2",
                "lr": "1.0", "clip": "1.0", "epochs": "100", "batch_size": "128",
                "seed": "1111", "vocab_size": "20000", "endure_times": "5", "rating_reg": "0.1",
                "context_reg": "1.0", "text_reg": "1.0", "words": "15",
                "peter_mask": "False", "use_feature": "False"}
# The launcher: seed Python's random (the reference's batch shuffle), then run main.py as
# __main__ with the remaining arguments; the working directory is --peter-src, so its modules
# (module, utils, bleu, rouge) import as they do under `python main.py`.
LAUNCH = ("import random, runpy, sys; random.seed(int(sys.argv[1])); "
          "sys.argv = ['main.py'] + sys.argv[2:]; runpy.run_path('main.py', run_name='__main__')")
# what the reference prints in generate(), in its order: our name -> its label
PRINTED = {"RMSE": "RMSE", "MAE": "MAE", "BLEU-1": "BLEU-1", "BLEU-4": "BLEU-4", "USR": "USR",
           "DIV": "DIV", "FCR": "FCR", "FMR": "FMR",
           "ROUGE-1 F": "rouge_1/f_score", "ROUGE-1 R": "rouge_1/r_score",
           "ROUGE-1 P": "rouge_1/p_score", "ROUGE-2 F": "rouge_2/f_score",
           "ROUGE-2 R": "rouge_2/r_score", "ROUGE-2 P": "rouge_2/p_score",
           "ROUGE-L F_beta": "rouge_l/f_score", "ROUGE-L R": "rouge_l/r_score",
           "ROUGE-L P": "rouge_l/p_score"}
DERIVED = "ROUGE-L F1 (derived)"
TABLE_ROWS = ["BLEU-1", "BLEU-4", "ROUGE-1 F", "ROUGE-2 F", "ROUGE-L F_beta", DERIVED, "USR",
              "FMR", "FCR", "DIV", "RMSE", "MAE", "ROUGE-1 P", "ROUGE-1 R", "ROUGE-2 P",
              "ROUGE-2 R", "ROUGE-L P", "ROUGE-L R"]
_TS = r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\]: "
_NUM = r"(-?\d+(?:\.\d+)?|nan|inf)"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def machine() -> str:
    """The CPU model and core count, as this machine reports them."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    model = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")),
                 platform.machine())
    return f"{model}, {os.cpu_count()} cores"


def versions(python: str) -> dict:
    """The child python's torch and numpy versions and its torch thread count."""
    code = ("import json, numpy, torch, sys; print(json.dumps({'python': sys.version.split()[0], "
            "'torch': torch.__version__, 'numpy': numpy.__version__, "
            "'torch_threads': torch.get_num_threads()}))")
    return json.loads(subprocess.run([python, "-c", code], check=True, capture_output=True,
                                     text=True).stdout)


def reference_commit(src: Path, given: str | None) -> str:
    if given:
        return given
    try:
        return subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], check=True,
                              capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout; pass --peter-commit)"


def ensure_data(data: Path) -> None:
    """Export ShopWorld in PETER's format when the files are not there yet."""
    if all((data / f).exists() for f in DATA_FILES):
        return
    sys.path.insert(0, str(ROOT))
    from helpers.data import loaders

    loaders.export_peter(data)


def data_facts(data: Path) -> dict:
    """Facts about the export a reader needs for the notes: test records whose user or item is
    not in the training part (an embedding neither side trains), and whether the course's
    tokeniser splits every exported sentence as the reference does (on spaces)."""
    import warnings

    sys.path.insert(0, str(ROOT))
    from helpers.data import loaders
    from helpers.metrics.text import tokenize

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # read_peter's reminder about pickles
        rec = loaders.read_peter(data / "reviews.pickle")
    idx = {p: [int(x) for x in (data / "1" / f"{p}.index").read_text().split()]
           for p in ("train", "test")}
    train, test = rec.iloc[idx["train"]], rec.iloc[idx["test"]]
    new_u, new_i = ~test["user"].isin(set(train["user"])), ~test["item"].isin(set(train["item"]))
    features = rec["feature"].drop_duplicates()
    return {"test": len(test), "test_unseen_user": int(new_u.sum()),
            "test_unseen_item": int(new_i.sum()), "test_unseen_either": int((new_u | new_i).sum()),
            "features": len(features), "multiword_features": int(features.str.contains(" ").sum()),
            "max_words": int(rec["sentence"].str.split().str.len().max()),
            "same_tokens": bool(all(tokenize(t) == t.split() for t in rec["sentence"]))}


def course_metrics_check(results: list[dict]) -> str:
    """The course's ``helpers.metrics.text`` on the reference's own ``generated.txt``: the
    largest difference, over seeds, from each figure the reference printed. Near zero says the
    two metric codes agree on these sentences, so a gap between the two tables is the models'."""
    sys.path.insert(0, str(ROOT))
    from helpers.metrics import text as course

    worst: dict[str, float] = {}
    for r in results:
        lines = (Path(r["log"]).parent / "generated.txt").read_text(encoding="utf-8").split("\n")
        real = [lines[k] for k in range(0, len(lines) - 1, 4)]
        fake = [lines[k + 2] for k in range(0, len(lines) - 1, 4)]
        ro = course.rouge(fake, real)
        ours = {"BLEU-1": 100 * course.bleu(fake, real, 1),
                "BLEU-4": 100 * course.bleu(fake, real, 4),
                "ROUGE-1 F": 100 * ro["rouge1"], "ROUGE-2 F": 100 * ro["rouge2"],
                "ROUGE-L F_beta": 100 * ro["rougeL_fbeta"], DERIVED: 100 * ro["rougeL"],
                "USR": course.unique_sentence_ratio(fake)}
        for k, v in ours.items():
            worst[k] = max(worst.get(k, 0.0), abs(v - r["metrics"][k]))
    return ", ".join(f"{k} {v:.1e}" for k, v in worst.items())


def _stamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f")


def parse_log(text: str) -> dict:
    """Everything the reference printed that the table needs: its arguments, each epoch's
    validation losses, early stopping, the test losses and the metrics of ``generate``."""
    args, inside = {}, False
    for line in text.splitlines():
        if "ARGUMENTS" in line and line.startswith("-"):
            if inside:
                break
            inside = True
        elif inside and line.strip():
            key, _, value = line.partition(" ")
            args[key] = value.strip()
    epochs = [(int(n), _stamp(t)) for t, n in re.findall(_TS + r"epoch (\d+)$", text, re.M)]
    found = re.findall(_TS + r"context ppl " + _NUM + r" \| text ppl " + _NUM + r" \| rating loss "
                       + _NUM + r" \| valid loss " + _NUM + " on validation", text)
    valid = [dict(zip(("context_ppl", "text_ppl", "rating_loss", "valid_loss"), map(float, g[1:])))
             for g in found]
    test = re.search(_TS + r"context ppl " + _NUM + r" \| text ppl " + _NUM + r" \| rating loss "
                     + _NUM + " on test", text)
    metrics = {}
    for name, label in PRINTED.items():
        m = re.search(_TS + re.escape(label) + r"\s+" + _NUM + r"(?:\s|$)", text)
        if m:
            metrics[name] = float(m.group(2))
    usn = re.search(r"USN\s+(\d+)", text)
    lrs = [float(x) for x in re.findall(r"Learning rate set to " + _NUM, text)]
    # an epoch's time: from its "epoch N" line to its validation line (training + validation)
    epoch_s = [(_stamp(g[0]) - t).total_seconds() for (_, t), g in zip(epochs, found)]
    best = min(range(len(valid)), key=lambda k: valid[k]["valid_loss"]) + 1 if valid else None
    return {"args": args, "epochs_run": len(epochs), "validation": valid,
            "best_epoch": best, "stopped_early": "Cannot endure it anymore" in text,
            "endured": len(re.findall(r"Endured \d+ time", text)), "learning_rates": lrs,
            "epoch_seconds": epoch_s,
            "test_losses": ({"context_ppl": float(test.group(2)), "text_ppl": float(test.group(3)),
                             "rating_loss": float(test.group(4))} if test else None),
            "metrics": metrics, "USN": int(usn.group(1)) if usn else None}


def rouge_l_from_generated(src: Path, generated: Path) -> dict:
    """ROUGE-L per test sentence with the reference's own ``rouge.py``: its F_beta (to check
    against the printed one) and F1 = 2PR / (P + R) from its P and R, averaged, in percent.
    ``generated.txt`` holds, per test record, the reference, the top context words, the
    generated sentence and an empty line."""
    spec = importlib.util.spec_from_file_location("peter_reference_rouge", src / "rouge.py")
    rouge = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rouge)
    lines = generated.read_text(encoding="utf-8").split("\n")
    blocks = [lines[k:k + 4] for k in range(0, len(lines) - 1, 4)]
    if not blocks or any(len(b) < 4 or b[3] != "" for b in blocks):
        raise ValueError(f"{generated} is not in main.py's 4-line layout")
    f_beta, f1 = [], []
    for real, _ctx, fake, _ in blocks:
        f, p, r = rouge.rouge_l_sentence_level([fake], [real])
        f_beta.append(f)
        f1.append(2 * p * r / (p + r) if p + r > 0 else 0.0)
    return {"n": len(blocks), "ROUGE-L F_beta (recomputed)": 100 * statistics.fmean(f_beta),
            DERIVED: 100 * statistics.fmean(f1)}


def run_seed(seed: int, a, src: Path, data: Path, prov: dict) -> dict:
    """One seed: main.py in a subprocess, its log parsed, its generated.txt read back."""
    work = OUT / f"seed{seed}"
    work.mkdir(parents=True, exist_ok=True)
    ref_args = ["--data_path", str(data / "reviews.pickle"), "--index_dir", str(data / "1") + "/",
                "--checkpoint", str(work) + "/", "--peter_mask", "--seed", str(seed)]
    if a.use_feature:
        ref_args.append("--use_feature")
    if a.epochs is not None:
        ref_args += ["--epochs", str(a.epochs)]
    cmd = [a.python, "-u", "-c", LAUNCH, str(seed)] + ref_args
    env = dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1", PYTHONUNBUFFERED="1")
    if a.threads:
        env.update(OMP_NUM_THREADS=str(a.threads), MKL_NUM_THREADS=str(a.threads))
    log = work / "train.log"
    print(f"seed {seed}: {' '.join(['main.py'] + ref_args)}  (log: {log})", flush=True)
    t0 = time.perf_counter()
    with open(log, "w", encoding="utf-8") as fh:
        rc = subprocess.run(cmd, cwd=src, env=env, stdout=fh, stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - t0
    text = log.read_text(encoding="utf-8")
    if rc != 0:
        raise RuntimeError(f"main.py failed for seed {seed} (exit {rc}); the end of {log}:\n"
                           + "\n".join(text.splitlines()[-25:]))
    parsed = parse_log(text)
    missing = [k for k in PRINTED if k not in parsed["metrics"]]
    if missing or parsed["test_losses"] is None:
        raise RuntimeError(f"seed {seed}: {missing or 'the test losses'} not found in {log}")
    check = rouge_l_from_generated(src, work / "generated.txt")
    if abs(check["ROUGE-L F_beta (recomputed)"] - parsed["metrics"]["ROUGE-L F_beta"]) > 1e-3:
        raise RuntimeError(f"seed {seed}: ROUGE-L F_beta recomputed from generated.txt "
                           f"({check['ROUGE-L F_beta (recomputed)']:.4f}) differs from the "
                           f"printed {parsed['metrics']['ROUGE-L F_beta']:.4f}")
    parsed["metrics"][DERIVED] = check[DERIVED]
    parsed["rouge_l_check"] = check
    warnings = sorted({ln.strip() for ln in text.splitlines() if "Warning" in ln})
    result = {"seed": seed, "command": cmd, "cwd": str(src),
              "env_added": {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
              | ({"OMP_NUM_THREADS": str(a.threads)} if a.threads else {}),
              "python_random_seeded": True, "wall_s": wall, "log": str(log),
              "warnings_in_log": warnings, **parsed, "provenance": prov}
    (OUT / f"seed{seed}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"seed {seed}: {wall:.0f} s, {parsed['epochs_run']} epochs (best {parsed['best_epoch']}"
          f", early stop {parsed['stopped_early']}); BLEU-1 {parsed['metrics']['BLEU-1']:.2f}",
          flush=True)
    return result


def _mean_sd(values: list[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def table(results: list[dict]) -> str:
    """Metrics (rows) by seed, then mean and sd (ddof 1), then the run's facts per seed."""
    seeds = [r["seed"] for r in results]
    multi = len(results) > 1
    head = "| metric | " + " | ".join(f"seed {s}" for s in seeds) + (" | mean | sd |" if multi
                                                                         else " |")
    rule = "|---|" + "---:|" * (len(seeds) + (2 if multi else 0))
    out = [head, rule]
    for name in TABLE_ROWS:
        vals = [r["metrics"][name] for r in results]
        cells = [f"{v:.4f}" for v in vals]
        if multi:
            m, sd = _mean_sd(vals)
            cells += [f"{m:.4f}", f"{sd:.4f}"]
        out.append(f"| {name} | " + " | ".join(cells) + " |")

    def fact(label, fn, agg=True):
        vals = [fn(r) for r in results]
        cells = [str(v) if not isinstance(v, float) else f"{v:.1f}" for v in vals]
        if multi:
            if agg:
                m, sd = _mean_sd([float(v) for v in vals])
                cells += [f"{m:.1f}", f"{sd:.1f}"]
            else:
                cells += ["", ""]
        out.append(f"| {label} | " + " | ".join(cells) + " |")

    fact("USN (distinct sentences)", lambda r: r["USN"])
    fact("epochs run", lambda r: r["epochs_run"])
    fact("best epoch (validation loss)", lambda r: r["best_epoch"])
    fact("non-improving epochs (each cut the lr x0.25)", lambda r: r["endured"], agg=False)
    fact("stopped early (5th non-improvement)", lambda r: "yes" if r["stopped_early"] else "no",
         agg=False)
    fact("best validation loss (text NLL + rating MSE)",
         lambda r: f"{r['validation'][r['best_epoch'] - 1]['valid_loss']:.4f}", agg=False)
    fact("test text perplexity", lambda r: f"{r['test_losses']['text_ppl']:.4f}", agg=False)
    fact("s per epoch (train + validation)", lambda r: statistics.fmean(r["epoch_seconds"]))
    fact("wall s (whole main.py run)", lambda r: r["wall_s"])
    return "\n".join(out)


NOTES = """\
**Before comparing with `benchmarks/results/38_peter_field_cpu.md`** (the course's PETER on the
same exported files, `benchmarks/peter_field_benchmark.py`): same data, different training
protocols and metric code.

* **Data**: the same `reviews.pickle` and `1/*.index` (sha256 above; the course script exports
  them to the same folder with the same function and seed). The reference builds its word list,
  user list and item list from *all* records (train, validation and test: `utils.DataLoader`),
  keeping the 20000 most frequent words; the course builds its vocabulary and id maps from the
  training part only and maps an unseen user or item to a shared id 0. Of the {test} test
  records, {test_unseen_user} have a user and {test_unseen_item} an item that the training part
  lacks ({test_unseen_either} either): on both sides their embedding is one training never
  updated. The reference reads the exported sentence as it is, split on spaces (the export is
  already lower-cased with punctuation as tokens); the course re-tokenises with its own
  `tokenize` ({tokens}).
* **Model size**: the reference's defaults, d_model (emsize) 512, 2 heads, feed-forward 2048,
  2 layers, dropout 0.2; the course script's PETER has d_model 64 (its docstring).
  Both: user and item as the first two positions, the PETER mask (`--peter_mask`), no feature
  token in the input (the README's PETER, not PETER+), rating head weight 0.1, context head 1.0.
* **Trainer**: reference: SGD, learning rate 1.0, gradient clipping 1.0, batch 128; after every
  epoch, validation loss = text NLL + rating MSE (the context loss is not counted); a better one
  saves the model, a worse or equal one multiplies the learning rate by 0.25 and counts once
  (the count never resets); the 5th such epoch stops training; the best saved model is
  reloaded for the test. The course: Adam, fixed learning rate 1e-3, no clipping, a fixed number
  of epochs chosen among {{5, 10, `--epochs`}} by validation BLEU-1. The context (bag-of-words)
  loss: the reference's targets are the sentence's words and its `<eos>`; the course leaves
  `<eos>` out.
* **Decoding**: both greedy. The reference generates 15 words and cuts at `<eos>` (its
  references are cut at 15 words too; the longest exported sentence has {max_words}); the course
  generates up to 20 words.
* **Metrics**: BLEU-1/4: the reference's `bleu.py` (TensorFlow NMT's corpus BLEU, no
  smoothing) and the course's `helpers.metrics.text.bleu` compute the same quantity (clipped
  counts, corpus brevity penalty). ROUGE-1/2 F: the reference's `rouge.py` counts *distinct*
  n-grams (sets) per sentence and puts 1e-8 in the F1 denominator; the course counts clipped
  n-gram occurrences (as Google's rouge-score does): equal (but for the 1e-8) when no n-gram
  repeats within either sentence, otherwise they differ. ROUGE-L: the reference prints F_beta
  with beta = P/R (the course's `ROUGE-L F_beta (papers)`); `ROUGE-L F1 (derived)` here is
  computed by this script from the reference's own per-sentence P and R on its `generated.txt`
  (the course's `ROUGE-L F1`). USR, FMR, FCR, DIV: the same definitions as the course script's
  token-level ones (`FMR (token)` there): a feature counts only as one whole token, so the
  {multiword_features} multi-word features of the {features}, such as "battery life", are never
  matched; FCR's denominator is all {features}. USR, FMR, FCR are fractions, BLEU and ROUGE
  percent, on both sides.
* **Rating**: the reference also prints RMSE and MAE of its rating head (predictions clipped to
  the data's rating range); the course's table does not report them.
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peter-src", required=True, type=Path,
                    help="a checkout of github.com/lileipisces/PETER (outside git, e.g. build/)")
    ap.add_argument("--peter-commit", default=None, help="its commit, if not a git checkout")
    ap.add_argument("--data", type=Path, default=ROOT / "build/peter_export")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--epochs", type=int, default=None,
                    help="cap on main.py's --epochs (its default: 100, with early stopping)")
    ap.add_argument("--use-feature", action="store_true", help="PETER+ (main.py --use_feature)")
    ap.add_argument("--threads", type=int, default=None,
                    help="OMP/MKL threads for main.py (default: torch's own, all cores)")
    ap.add_argument("--python", default=sys.executable, help="the python that runs main.py")
    ap.add_argument("--write", type=Path, default=None, help="also write the results file here")
    ap.add_argument("--from-json", action="store_true",
                    help="run nothing: rebuild the table (and --write) from the seeds' JSON files")
    a = ap.parse_args()
    if a.from_json:
        results = [json.loads((OUT / f"seed{s}.json").read_text()) for s in a.seeds]
        finish(a, results)
        return
    src, data = a.peter_src.resolve(), a.data.resolve()
    missing = [f for f in REF_FILES if not (src / f).exists()]
    if missing:
        sys.exit(f"{src} lacks {missing}: clone github.com/lileipisces/PETER there first")
    ensure_data(data)
    OUT.mkdir(parents=True, exist_ok=True)
    provenance = {"reference_commit": reference_commit(src, a.peter_commit),
                  "reference_sha256": {f: sha256(src / f) for f in REF_FILES},
                  "data": str(data), "data_sha256": {f: sha256(data / f) for f in DATA_FILES},
                  "split_sizes": {p: len((data / "1" / f"{p}.index").read_text().split())
                                  for p in ("train", "validation", "test")},
                  "machine": machine(), **versions(a.python), "nice": os.nice(0),
                  "date": time.strftime("%Y-%m-%d"),
                  "argv": [os.path.relpath(a.python, ROOT), os.path.relpath(sys.argv[0], ROOT)]
                  + sys.argv[1:]}
    results = [run_seed(s, a, src, data, provenance) for s in a.seeds]
    finish(a, results)


def finish(a, results: list[dict]) -> None:
    text = table(results)
    (OUT / "summary.md").write_text(text + "\n")
    print("\n" + text)
    if a.write:
        a.write.write_text(report(a, results, text))
        print(f"wrote {a.write}")


def report(a, results: list[dict], text: str) -> str:
    """The results file: what ran, where, with which settings, the table and the notes."""
    prov = results[0]["provenance"]
    used = results[0]["args"]
    changed = {k: (v, used.get(k)) for k, v in REF_DEFAULTS.items()
               if used.get(k) != v and k != "seed"}
    nice = prov.get("nice", os.nice(0))
    argv = prov.get("argv") or (
        [os.path.relpath(a.python, ROOT), os.path.relpath(sys.argv[0], ROOT)]
        + [x for x in sys.argv[1:] if x != "--from-json"])
    cmd = (f"nice -n {nice} " if nice else "") + " ".join(argv)
    date = prov.get("date") or time.strftime(
        "%Y-%m-%d", time.localtime((OUT / f"seed{results[0]['seed']}.json").stat().st_mtime))
    sizes = prov["split_sizes"]
    facts = data_facts(Path(prov["data"]))
    walls = [r["wall_s"] for r in results]
    per_epoch = statistics.fmean(x for r in results for x in r["epoch_seconds"])
    variant = ("`--use_feature` (PETER+), " if used.get("use_feature") == "True"
               else "no `--use_feature` (PETER, not PETER+), ")
    lines = [
        f"# PETER's reference code on ShopWorld's PETER export — CPU, seeds "
        f"{', '.join(str(r['seed']) for r in results)}",
        "",
        f"- **Date**: {date}",
        f"- **Machine**: {prov['machine']} (shared with other jobs; run at nice {nice}); "
        f"python {prov['python']}, torch {prov['torch']} (CPU, {prov['torch_threads']} threads), "
        f"numpy {prov['numpy']}",
        f"- **Command**: `{cmd}`",
        f"- **Reference code**: github.com/lileipisces/PETER at commit `{prov['reference_commit']}`"
        f", run unmodified from a checkout under `build/` (sha256 of main.py "
        f"`{prov['reference_sha256']['main.py'][:12]}`, module.py "
        f"`{prov['reference_sha256']['module.py'][:12]}`, utils.py "
        f"`{prov['reference_sha256']['utils.py'][:12]}`; all five in the JSON)",
        f"- **Data**: `helpers.data.loaders.export_peter()`'s files in `build/peter_export` "
        f"(train {sizes['train']}, validation {sizes['validation']}, test {sizes['test']} "
        f"records; sha256 of reviews.pickle `{prov['data_sha256']['reviews.pickle'][:12]}`, "
        f"test.index `{prov['data_sha256']['1/test.index'][:12]}`)",
        f"- **Wall time**: {sum(walls) / 60:.1f} min for {len(results)} seed(s) (main.py runs: "
        + ", ".join(f"{w / 60:.1f}" for w in walls) + f" min); {per_epoch:.0f} s per epoch "
        "(training + validation) on average",
        "",
        "**Settings**: main.py's own defaults (emsize 512, nhead 2, nhid 2048, nlayers 2, dropout "
        "0.2, SGD lr 1.0 with x0.25 on every non-improving epoch, clip 1.0, batch 128, vocab "
        "20000, endure_times 5, rating_reg 0.1, context_reg 1.0, text_reg 1.0, words 15), "
        "`--peter_mask` as in its README, " + variant
        + f"`--seed` {'/'.join(str(r['seed']) for r in results)} (its default is 1111), "
        "CPU. Changed from its defaults: "
        + (", ".join(f"**{k} {u} (default {d})**" for k, (d, u) in changed.items()
                     if k not in ("peter_mask", "use_feature")) or "nothing else") + ".",
    ]
    if used.get("epochs") != REF_DEFAULTS["epochs"]:
        cap = int(used["epochs"])
        lines += ["", f"**Epoch cap**: `--epochs {cap}` instead of 100: one epoch took "
                  f"{per_epoch:.0f} s here (a shared 2-core machine, niced), and the reference's "
                  "early stopping can run for tens of epochs (its own TripAdvisor log stops after "
                  "31), far past this run's ~40-minute budget for three seeds. The rows *best "
                  "epoch* and *stopped early* say whether the cap cut a run short: where the best "
                  "epoch is the last one run and the run did not stop early, the reference would "
                  "have trained on."
                  + (f" With {cap} epochs its stop (the {used['endure_times']}th non-improving "
                     "epoch; the first epoch always improves) cannot happen, so every run ends at "
                     "the cap; the learning-rate cuts (x0.25 per non-improving epoch) still do."
                     if cap <= int(used["endure_times"]) else "")]
    lines += [
        "",
        "**Around the reference code, not in it**: `TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1` in "
        "main.py's environment (it reloads its best model with `torch.load(f)`, a whole pickled "
        "module, which torch >= 2.6 refuses by default), and Python's `random` seeded with the "
        "run's seed before main.py starts (it seeds torch only, and shuffles training batches "
        "with `random.shuffle`). No line of the reference code was changed.",
        "",
        "## Metrics as the reference prints them",
        "",
        "BLEU and ROUGE in percent, USR, FMR, FCR as fractions, DIV as a mean count, RMSE/MAE in "
        "rating points, each from main.py's own output; *ROUGE-L F1 (derived)* is computed by "
        "`peter_reference.py` from the reference's own `rouge.py` per-sentence P and R on its "
        "`generated.txt`. sd: sample standard deviation over seeds (ddof 1).",
        "",
        text,
        "",
        "**Cross-check of the metric code**: the course's `helpers.metrics.text` (`bleu`, "
        "`rouge`, `unique_sentence_ratio`) on the reference's own `generated.txt` differs from "
        "the reference's printed figures by at most (over the seeds): "
        + course_metrics_check(results) + " (the printed values have 4 decimals). On these "
        "sentences the two metric codes agree (ROUGE-1/2 would part only where a sentence "
        "repeats an n-gram: see the notes below), so a gap between this table and the course's "
        "comes from the models and trainers, not from the metric code.",
        "",
        "Per seed, `build/peter-reference/seed<k>.json` holds the full log's figures (every "
        "epoch's validation losses, learning rates, the arguments main.py printed).",
        "",
        "## Differences from the course's protocol",
        "",
        NOTES.format(**facts, tokens=("the same tokens here: checked sentence by sentence"
                                      if facts["same_tokens"] else
                                      "**not** the same tokens for every sentence here")),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

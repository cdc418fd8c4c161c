"""Every public helper refuses bad input with a message that says what was wrong and how to fix
it: NaN/inf, strings where numbers belong, non-integer k/steps, duplicates, unknown or
out-of-range ids, wrong tensor dtypes and shapes, None, empty input. Each case below was a silent
wrong result or an obscure internal error before (issue 11), or guards a public entry point of
the same kind."""
import functools
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from helpers.core import config
from helpers.core.checks import DataError, ParameterError
from helpers.data import loaders, preprocess as pp
from helpers.metrics import ranking as M, text as text_metrics
from helpers.models import attention as A, cf, interest as I, sequential, similarity as S
from helpers.reasons import claims, explainers, lm, untrusted

ev = pd.DataFrame({"user_id": [1, 1, 2, 2, 3], "item_id": [10, 11, 10, 12, 11],
                   "timestamp": [1, 2, 3, 4, 5], "rating": [4., 5., 3., 2., 4.],
                   "event_type": ["purchase"] * 5})
cat = pd.DataFrame({"item_id": [10, 11, 12], "launch_ts": [0, 0, 0]})


@functools.cache
def _raw_catalogue() -> pd.DataFrame:
    return loaders.load_shopworld("raw_catalogue")


def raw_catalogue(**first_category) -> pd.DataFrame:
    """ShopWorld's raw catalogue with columns replaced in every row of its first category."""
    raw = _raw_catalogue().copy()
    category = pp.normalise_category(raw["category"])      # however each row spells it
    rows = category == category.iloc[0]
    for k, v in first_category.items():
        raw.loc[rows, k] = v
    return raw


def mk(**changes):
    """The small log above with some columns replaced."""
    d = ev.copy()
    for k, v in changes.items():
        d[k] = v
    return d


# How-to-fix words: a message must tell the user what to do, not only what broke.
ADVICE = re.compile(r"\b(must|use|pass|drop|fix|repair|convert|choose|call|give|wrap|encode|keep|"
                    r"clean|filter|rebuild|sort|map|lower|re-encode|de-duplicate|round|check|"
                    r"build|run|restore|expected|needs?|should|only|one of)\b", re.I)

# (name, exception, what the message says was wrong (regex), the call)
CASES = [
    ('rmse inf', DataError, 'inf\\ in\\ y_true\\ or\\ y_pred:\\ a\\ model\\ diverged\\ or\\ a\\ r',
     lambda: M.rmse([1,2],[1,np.inf])),
    ('rmse strings', DataError, 'y_true\\ and\\ y_pred\\ must\\ hold\\ numbers\\ \\(ratings\\);\\ c',
     lambda: M.rmse(["a"],[1])),
    ('mae 2d', DataError, 'y_true\\ and\\ y_pred\\ must\\ be\\ 1\\-D\\ and\\ the\\ same\\ lengt',
     lambda: M.mae([[1]],[[1]])),
    ('ndcg k float', ParameterError, 'k\\ must\\ be\\ a\\ positive\\ integer,\\ got\\ float\\ 2\\.0;\\ e\\.g',
     lambda: M.ndcg_at_k(np.array([[1,2]]),[{1}],2.0)),
    ('ndcg relevant not sets', DataError, 'relevant\\ must\\ hold\\ one\\ collection\\ \\(a\\ set\\)\\ of\\ rel',
     lambda: M.ndcg_at_k(np.array([[1,2]]),[1],2)),
    ('hits top 1d', DataError, 'top\\ must\\ be\\ 2\\-D\\ \\(users\\ x\\ ranks\\),\\ got\\ shape\\ \\(2,\\)',
     lambda: M.hits_at_k(np.array([1,2]),[{1}],2)),
    ('coverage n_items 0', ParameterError, 'n_items\\ must\\ be\\ a\\ positive\\ integer,\\ got\\ int\\ 0;\\ e',
     lambda: M.catalogue_coverage(np.array([[1]]),0)),
    ('rank nan', DataError, '1\\ scores\\ are\\ NaN\\ \\(e\\.g\\.\\ row\\ 0\\):\\ a\\ model\\ produced\\ ',
     lambda: M.rank_from_scores(np.array([[np.nan,1.0]]),1)),
    ('rank strings', DataError, 'scores\\ must\\ be\\ a\\ numeric\\ \\(users\\ x\\ items\\)\\ array,\\ ',
     lambda: M.rank_from_scores([["a","b"]],1)),
    ('rank exclude shape', DataError, 'exclude\\ has\\ shape\\ \\(2,\\ 2\\)\\ but\\ scores\\ \\(2,\\ 3\\):\\ the\\ ',
     lambda: M.rank_from_scores(np.ones((2,3)),1, exclude=np.ones((2,2),bool))),
    ('sampled nan', DataError, '1\\ scores\\ are\\ NaN\\ \\(e\\.g\\.\\ row\\ 0\\):\\ a\\ model\\ produced\\ ',
     lambda: M.sampled_metrics(np.array([[np.nan]+[1.0]*200]),[0],10)),
    ('sampled test float', DataError, 'test_items\\ must\\ be\\ integer\\ item\\ indices\\ in\\ \\[0,\\ 1',
     lambda: M.sampled_metrics(np.ones((1,200)),[0.5],10)),
    ('sampled neg 0', ParameterError, 'n_negatives\\ must\\ be\\ a\\ positive\\ integer,\\ got\\ int\\ ',
     lambda: M.sampled_metrics(np.ones((1,200)),[0],10,n_negatives=0)),
    ('eval_ranking dup', DataError, '1\\ recommendations\\ repeat\\ an\\ item\\ for\\ the\\ same\\ us',
     lambda: M.evaluate_ranking(pd.DataFrame({"user_id":[1,1],"item_id":[5,5],"rank":[1,2]}), pd.DataFrame({"user_id":[1],"item_id":[5]}),2)),
    ('eval_ranking k 0', ParameterError, 'k\\ must\\ be\\ a\\ positive\\ integer,\\ got\\ int\\ 0;\\ e\\.g\\.\\ k=',
     lambda: M.evaluate_ranking(pd.DataFrame({"user_id":[1],"item_id":[5],"rank":[1]}), pd.DataFrame({"user_id":[1],"item_id":[5]}),0)),
    ('bleu none', DataError, 'generated\\ text\\ 0\\ is\\ a\\ NoneType,\\ not\\ a\\ string\\ \\(a\\ ',
     lambda: text_metrics.bleu([None],["a"])),
    ('bleu len', DataError, '1\\ generated\\ texts\\ but\\ 2\\ references;\\ each\\ reason\\ ',
     lambda: text_metrics.bleu(["a"],["a","b"])),
    ('bleu max_order 0', ValueError, 'max_order\\ must\\ be\\ >=\\ 1,\\ got\\ 0',
     lambda: text_metrics.bleu(["a"],["a"],max_order=0)),
    ('rouge empty', DataError, 'no\\ generated\\ texts\\ to\\ score',
     lambda: text_metrics.rouge([],[])),
    ('usr str', DataError, 'pass\\ lists\\ of\\ texts,\\ not\\ one\\ string\\ \\(a\\ string\\ wo',
     lambda: text_metrics.unique_sentence_ratio("abc")),
    ('fcr n 0', ParameterError, 'n_features\\ must\\ be\\ a\\ positive\\ integer,\\ got\\ int\\ 0',
     lambda: text_metrics.feature_coverage_ratio([{"a"}],0)),
    ('fcr n float', ParameterError, 'n_features\\ must\\ be\\ a\\ positive\\ integer,\\ got\\ float',
     lambda: text_metrics.feature_coverage_ratio([{"a"}],2.5)),
    ('fmr str', DataError, 'generated_features\\ must\\ be\\ a\\ list\\ of\\ feature\\ col',
     lambda: text_metrics.feature_matching_ratio("ab","ab")),
    ('faith empty', DataError, 'no\\ judged\\ reasons',
     lambda: text_metrics.faithfulness([])),
    ('cos list', TypeError, 'a\\ must\\ be\\ a\\ torch\\.Tensor,\\ got\\ list;\\ use\\ torch\\.as',
     lambda: S.cosine_similarity([[1.0]],torch.ones(1,1))),
    ('cos nan', ValueError, 'a\\ contains\\ NaN\\ or\\ inf;\\ check\\ the\\ encoder\\ that\\ pr',
     lambda: S.cosine_similarity(torch.tensor([[np.nan,1.0]]))),
    ('cos int', TypeError, 'a\\ must\\ be\\ a\\ float\\ tensor,\\ got\\ torch\\.int64;\\ call\\ ',
     lambda: S.cosine_similarity(torch.ones(2,2,dtype=torch.long))),
    ('cos 3d', ValueError, 'a\\ must\\ have\\ shape\\ \\(n,\\ d\\)\\ or\\ \\(d,\\),\\ got\\ \\(2,\\ 2,\\ 2\\)\\.',
     lambda: S.cosine_similarity(torch.ones(2,2,2))),
    ('cos empty', ValueError, 'a\\ is\\ empty\\ \\(shape\\ \\(0,\\ 3\\)\\);\\ give\\ at\\ least\\ one\\ vec',
     lambda: S.cosine_similarity(torch.ones(0,3))),
    ('topk nan', ValueError, '1\\ scores\\ are\\ NaN:\\ an\\ embedding\\ or\\ model\\ produced',
     lambda: S.top_k(torch.tensor([[np.nan,1.0]]),1)),
    ('topk k big', ValueError, 'k\\ must\\ be\\ an\\ integer\\ between\\ 1\\ and\\ the\\ number\\ of',
     lambda: S.top_k(torch.ones(1,3),4)),
    ('topk k float', ValueError, 'k\\ must\\ be\\ an\\ integer\\ between\\ 1\\ and\\ the\\ number\\ of',
     lambda: S.top_k(torch.ones(1,3),1.0)),
    ('topk exclude int', ValueError, 'exclude\\ must\\ be\\ a\\ bool\\ tensor\\ of\\ shape\\ \\(1,\\ 3\\),\\ g',
     lambda: S.top_k(torch.ones(1,3),1,exclude=torch.zeros(1,3))),
    ('sdpa long', TypeError, 'q\\ must\\ be\\ a\\ float\\ tensor,\\ got\\ torch\\.int64:\\ atten',
     lambda: A.scaled_dot_product_attention(torch.ones(1,2,2,dtype=torch.long),torch.ones(1,2,2,dtype=torch.long),torch.ones(1,2,2,dtype=torch.long))),
    ('sdpa mask float', TypeError, 'mask\\ must\\ be\\ a\\ bool\\ tensor\\ \\(True\\ =\\ may\\ attend\\),\\ ',
     lambda: A.scaled_dot_product_attention(torch.ones(1,2,2),torch.ones(1,2,2),torch.ones(1,2,2),mask=torch.ones(2,2))),
    ('sdpa dk mismatch', ValueError, 'q\\ and\\ k\\ must\\ share\\ their\\ last\\ dim\\ \\(d_k\\):\\ 2\\ vs\\ 3',
     lambda: A.scaled_dot_product_attention(torch.ones(1,2,2),torch.ones(1,2,3),torch.ones(1,2,2))),
    ('sdpa mask shape', ValueError, 'mask\\ of\\ shape\\ \\(3,\\ 3\\)\\ does\\ not\\ broadcast\\ to\\ the\\ a',
     lambda: A.scaled_dot_product_attention(torch.ones(1,2,2),torch.ones(1,2,2),torch.ones(1,2,2),mask=torch.ones(3,3,dtype=torch.bool))),
    ('cfg n_head 0', ValueError, 'AttentionConfig\\.n_head\\ must\\ be\\ a\\ positive\\ intege',
     lambda: A.AttentionConfig(n_head=0)),
    ('cfg d_model 10 heads 3', ValueError, 'd_model\\ \\(10\\)\\ must\\ be\\ divisible\\ by\\ n_head\\ \\(3\\)',
     lambda: A.AttentionConfig(d_model=10,n_head=3)),
    ('cfg dropout 1.5', ValueError, 'AttentionConfig\\.dropout\\ must\\ be\\ in\\ \\[0,\\ 1\\),\\ got\\ 1',
     lambda: A.AttentionConfig(dropout=1.5)),
    ('causal 0', ParameterError, 't\\ must\\ be\\ a\\ positive\\ integer,\\ got\\ int\\ 0',
     lambda: A.causal_mask(0)),
    ('causal float', ParameterError, 't\\ must\\ be\\ a\\ positive\\ integer,\\ got\\ float\\ 2\\.5',
     lambda: A.causal_mask(2.5)),
    ('padding mask int', ValueError, 'is_real\\ must\\ be\\ a\\ \\(batch,\\ time\\)\\ bool\\ tensor',
     lambda: A.padding_mask(torch.ones(2,3))),
    ('sinus odd', ValueError, 'd\\ must\\ be\\ even,\\ got\\ 3',
     lambda: A.sinusoidal_positions(4,3)),
    ('sasrec rec unknown history item', DataError, 'Unknown\\ history\\ item',
     lambda: sequential.SASRecRecommender(n_epochs=1).fit(ev).use_history(mk(item_id=[10, 11, 99, 10, 11]))),
    ('sasrec float seq', TypeError, 'seq\\ must\\ hold\\ integer\\ item\\ ids\\ \\(int64\\),\\ got\\ torc',
     lambda: A.SASRec(5, max_len=4)(torch.ones(1,3))),
    ('sasrec long seq', ValueError, 'seq\\ must\\ be\\ a\\ \\(batch,\\ t\\ <=\\ 4\\)\\ tensor,\\ got\\ \\(1,\\ 6\\)',
     lambda: A.SASRec(5, max_len=4)(torch.ones(1,6,dtype=torch.long))),
    ('sasrec n_items 0', ParameterError, 'SASRec\\ n_items\\ must\\ be\\ a\\ positive\\ integer,\\ got\\ int\\ 0',
     lambda: A.SASRec(0)),
    ('mha wrong width', ValueError, 'x\\ must\\ be\\ \\(batch,\\ time,\\ 16\\),\\ got\\ \\(1,\\ 3,\\ 8\\)',
     lambda: A.MultiHeadAttention(A.AttentionConfig(16,4))(torch.ones(1,3,8))),
    ('course_path None', TypeError, 'a\\ course\\ path\\ must\\ be\\ a\\ non\\-empty\\ string\\ or\\ path',
     lambda: config.course_path(None)),
    ('profile 3', TypeError, "profile\\ must\\ be\\ a\\ string\\ such\\ as\\ 'quick',\\ got\\ in",
     lambda: config.get_profile(3)),
    ('seed float', ValueError, 'seed\\ must\\ be\\ a\\ non\\-negative\\ integer,\\ got\\ 1\\.5',
     lambda: config.seed_everything(1.5)),
    ('device bad', ValueError, "Unknown\\ device\\ 'tpu':\\ use\\ 'cpu',\\ 'cuda',\\ 'cuda:N",
     lambda: config.get_device("tpu")),
    ('leave_last_out n_test 1.5', ParameterError, 'n_test\\ must\\ be\\ an\\ integer,\\ got\\ float\\ 1\\.5\\.\\ Pass\\ a',
     lambda: pp.leave_last_out(ev, n_test=1.5)),
    ('leave_last_out str ts', DataError, 'timestamp\\ in\\ the\\ interactions\\ must\\ be\\ numeric\\ \\(e',
     lambda: pp.leave_last_out(mk(timestamp=["1","2","10","9","3"]))),
    ('leave_last_out nan ts', DataError, '1\\ rows\\ of\\ the\\ interactions\\ have\\ no\\ timestamp\\ \\(Na',
     lambda: pp.leave_last_out(mk(timestamp=[1,2,np.nan,4,5]))),
    ('leave_last_out nan user', DataError, '1\\ rows\\ of\\ the\\ interactions\\ have\\ no\\ user_id\\ \\(NaN/',
     lambda: pp.leave_last_out(mk(user_id=[1,1,np.nan,2,3]))),
    ('leave_last_out not df', DataError, 'the\\ interactions\\ must\\ be\\ a\\ pandas\\ DataFrame,\\ got',
     lambda: pp.leave_last_out([1,2])),
    ('temporal nan', DataError, '1\\ rows\\ of\\ the\\ data\\ have\\ no\\ timestamp\\ \\(NaN/NaT\\),\\ ',
     lambda: pp.temporal_split(mk(timestamp=[1,2,np.nan,4,5]),[3])),
    ('temporal str boundary', DataError, "boundaries\\ must\\ be\\ a\\ list\\ of\\ times,\\ got\\ '3';\\ e\\.g",
     lambda: pp.temporal_split(ev,"3")),
    ('temporal unsorted', DataError, 'boundaries\\ must\\ increase\\ strictly,\\ got\\ \\[3,\\ 2\\]:\\ s',
     lambda: pp.temporal_split(ev,[3,2])),
    ('random_split ratios', DataError, 'ratios\\ must\\ be\\ non\\-negative\\ and\\ sum\\ to\\ 1,\\ got\\ \\(0',
     lambda: pp.random_split(ev,(0.5,0.6))),
    ('random_split seed str', ParameterError, "seed\\ must\\ be\\ an\\ integer,\\ got\\ str\\ 'a'\\.\\ Pass\\ a\\ who",
     lambda: pp.random_split(ev,seed="a")),
    ('random_split nan ratio', DataError, 'ratios\\ must\\ be\\ finite\\ numbers\\ such\\ as\\ \\(0\\.8,\\ 0\\.1,',
     lambda: pp.random_split(ev,(np.nan,1.0))),
    ('cold cutoff str', DataError, 'cutoff\\ must\\ be\\ a\\ time\\ comparable\\ with\\ timestamp,',
     lambda: pp.cold_start_split(ev,cat,"5")),
    ('cold unknown item', DataError, '1\\ events\\ are\\ for\\ items\\ the\\ catalogue\\ does\\ not\\ ha',
     lambda: pp.cold_start_split(mk(item_id=[10,11,10,12,99]),cat,3)),
    ('leak str time', DataError, 'timestamp\\ in\\ train\\ must\\ be\\ numeric\\ \\(e\\.g\\.\\ Unix\\ se',
     lambda: pp.check_no_leakage(mk(timestamp=list("12345")),ev)),
    ('idmap nan', DataError, '1\\ IDs\\ are\\ missing\\ \\(NaN\\);\\ drop\\ or\\ fix\\ those\\ rows\\ ',
     lambda: pp.build_id_map([1,np.nan])),
    ('idmap empty', DataError, 'Cannot\\ build\\ an\\ ID\\ map\\ from\\ no\\ IDs\\.',
     lambda: pp.build_id_map([])),
    ('idmap encode unknown', DataError, 'Unknown\\ ID\\(s\\)\\ \\[3\\]:\\ they\\ are\\ not\\ in\\ this\\ ID\\ map\\ \\(',
     lambda: pp.build_id_map([1,2]).encode([3])),
    ('idmap decode oob', DataError, 'indices\\ must\\ lie\\ in\\ \\[0,\\ 1\\],\\ got\\ values\\ from\\ 5\\ to',
     lambda: pp.build_id_map([1,2]).decode([5])),
    ('idmap decode float', DataError, 'indices\\ must\\ be\\ integers\\ \\(row/column\\ positions\\),',
     lambda: pp.build_id_map([1,2]).decode([0.5])),
    ('idmap dup', DataError, 'IdMap\\ IDs\\ must\\ be\\ unique,\\ but\\ \\[1\\]\\ repeat;\\ build\\ ',
     lambda: pp.IdMap(np.array([1,1]))),
    ('interaction kind', DataError, "kind\\ must\\ be\\ 'implicit'\\ or\\ 'explicit',\\ got\\ 'weir",
     lambda: pp.interaction_matrix(ev,pp.build_id_map(ev.user_id),pp.build_id_map(ev.item_id),kind="weird")),
    ('interaction explicit dup', DataError, 'Some\\ \\(user,\\ item\\)\\ pairs\\ are\\ rated\\ more\\ than\\ once',
     lambda: pp.interaction_matrix(pd.concat([ev,ev]),pp.build_id_map(ev.user_id),pp.build_id_map(ev.item_id),kind="explicit")),
    ('clean_events five', DataError, "1\\ ratings\\ are\\ not\\ numbers\\ \\(e\\.g\\.\\ \\['five'\\]\\ in\\ rows",
     lambda: pp.clean_events(mk(rating=["five",None,None,None,None]).assign(event_type=["purchase","view","view","view","view"]),cat)),
    ('clean_events nan type', DataError, '1\\ raw\\ events\\ have\\ no\\ event_type\\ \\(e\\.g\\.\\ rows\\ \\[1\\]\\);',
     lambda: pp.clean_events(mk(event_type=["purchase",None,"view","view","view"], rating=[4,None,None,None,None]),cat)),
    ('clean_events nan user', DataError, '1\\ rows\\ of\\ the\\ raw\\ events\\ have\\ no\\ user_id\\ \\(NaN/No',
     lambda: pp.clean_events(mk(user_id=[1,np.nan,2,2,3]),cat)),
    ('clean_events float ts', DataError, '0\\ infinite\\ and\\ 1\\ fractional\\ timestamp\\ values\\ \\(e\\.',
     lambda: pp.clean_events(mk(timestamp=[1.5,2,3,4,5]),cat)),
    ('clean_events str ts', DataError, 'timestamp\\ must\\ be\\ numeric\\ Unix\\ seconds,\\ got\\ dtyp',
     lambda: pp.clean_events(mk(timestamp=list("12345")),cat)),
    ('clean_events rating 7', DataError, '0\\ non\\-purchase\\ events\\ carry\\ a\\ rating\\ and\\ 1\\ ratin',
     lambda: pp.clean_events(mk(rating=[7.,5,3,2,4]),cat)),
    ('clean_catalogue missing col', DataError, "the\\ raw\\ catalogue\\ is\\ missing\\ column\\(s\\)\\ \\['categor",
     lambda: pp.clean_catalogue(cat)),
    ('mf inf rating', DataError, '1\\ values\\ of\\ rating\\ in\\ the\\ training\\ data\\ are\\ infi',
     lambda: cf.BiasedMF(4).fit(mk(rating=[np.inf,5,3,2,4]))),
    ('mf str rating', DataError, 'rating\\ in\\ the\\ training\\ data\\ must\\ be\\ numeric,\\ got',
     lambda: cf.BiasedMF(4).fit(mk(rating=["4","5","3","2","4"]))),
    ('mf n_factors 0', ParameterError, 'n_factors\\ must\\ be\\ >=\\ 1,\\ got\\ 0\\.',
     lambda: cf.BiasedMF(0).fit(ev)),
    ('mf solver', ParameterError, "solver\\ must\\ be\\ one\\ of\\ \\['adam',\\ 'als'\\],\\ got\\ 'sgd'",
     lambda: cf.BiasedMF(4, solver="sgd").fit(ev)),
    ('mf epochs float', ParameterError, 'n_epochs\\ must\\ be\\ an\\ integer,\\ got\\ float\\ 2\\.5\\.\\ Pass',
     lambda: cf.BiasedMF(4, n_epochs=2.5).fit(ev)),
    ('knn explicit dup', DataError, '5\\ \\(user,\\ item\\)\\ pairs\\ are\\ rated\\ more\\ than\\ once\\ \\(e',
     lambda: cf.KNN(explicit=True,similarity="cosine").fit(pd.concat([ev,ev.assign(rating=5.0)]))),
    ('knn k 0', ParameterError, 'k\\ \\(neighbours\\)\\ must\\ be\\ >=\\ 1,\\ got\\ 0\\.',
     lambda: cf.KNN(k=0).fit(ev)),
    ('knn shrink neg', ParameterError, 'shrink\\ must\\ be\\ >=\\ 0,\\ got\\ \\-1',
     lambda: cf.KNN(shrink=-1).fit(ev)),
    ('bpr epochs 0', ParameterError, 'n_epochs\\ must\\ be\\ >=\\ 1,\\ got\\ 0\\.',
     lambda: cf.BPR(4,n_epochs=0).fit(ev)),
    ('bpr lr nan', ParameterError, 'lr\\ must\\ be\\ finite,\\ got\\ nan\\.',
     lambda: cf.BPR(4,lr=float("nan")).fit(ev)),
    ('recommend k 2.5', ParameterError, 'k\\ must\\ be\\ an\\ integer,\\ got\\ float\\ 2\\.5\\.\\ Pass\\ a\\ whol',
     lambda: cf.MostPopular().fit(ev).recommend([1],k=2.5)),
    ('recommend unfitted', DataError, 'MostPopular\\ is\\ not\\ fitted\\ yet:\\ call\\ \\.fit\\(train\\)\\ ',
     lambda: cf.MostPopular().recommend([1])),
    ('evaluate unknown user', DataError, 'Unknown\\ user\\(s\\)\\ \\[99\\]:\\ they\\ are\\ not\\ in\\ this\\ ID\\ ma',
     lambda: cf.MostPopular().fit(ev).evaluate(pd.DataFrame({"user_id":[99],"item_id":[10]}))),
    ('evaluate nan item', DataError, '1\\ rows\\ of\\ the\\ test\\ data\\ have\\ no\\ item_id\\ \\(NaN/Non',
     lambda: cf.MostPopular().fit(ev).evaluate(pd.DataFrame({"user_id":[1],"item_id":[np.nan]}))),
    ('predict len', DataError, 'users\\ and\\ items\\ must\\ pair\\ up,\\ got\\ \\(2,\\)\\ and\\ \\(1,\\)',
     lambda: cf.Biases().fit(ev).predict([1,2],[10])),
    ('fit float ids', DataError, '1\\ of\\ the\\ user_id\\ values\\ of\\ the\\ training\\ data\\ are\\ not',
     lambda: cf.MostPopular().fit(mk(user_id=[1.5,1,2,2,3]))),
    ('biases reg neg', ParameterError, 'reg_user\\ must\\ be\\ >=\\ 0,\\ got\\ \\-1\\.',
     lambda: cf.Biases(reg_user=-1).fit(ev)),
    ('ibs temperature 0', ValueError, 'temperature\\ must\\ be\\ a\\ finite\\ number\\ >\\ 0\\ \\(e\\.g\\.\\ 0\\.',
     lambda: I.in_batch_softmax_loss(torch.ones(2,3),torch.ones(2,3),temperature=0)),
    ('ibs shapes', ValueError, 'user_vec\\ and\\ item_vec\\ must\\ both\\ be\\ \\(batch,\\ d\\),\\ g',
     lambda: I.in_batch_softmax_loss(torch.ones(2,3),torch.ones(3,3))),
    ('mean_pool seqs float', ValueError, 'seqs\\ must\\ be\\ a\\ \\(n_users,\\ t\\)\\ long\\ tensor\\ of\\ item\\ ',
     lambda: I.mean_pool(torch.ones(5,3),torch.ones(2,3))),
    ('mean_pool id beyond', ValueError, 'seqs\\ holds\\ ids\\ outside\\ 0\\.\\.5\\ \\(item\\ index\\ \\+\\ 1;\\ 0\\ p',
     lambda: I.mean_pool(torch.ones(5,3),torch.tensor([[0,9]]))),
    ('attention_pool temp 0', ValueError, 'temperature\\ must\\ be\\ >\\ 0,\\ got\\ 0',
     lambda: I.attention_pool(torch.ones(5,3),torch.tensor([[1,2]]),torch.ones(1,3),temperature=0)),
    ('mask_items prob 2', ValueError, 'mask_prob\\ must\\ be\\ in\\ \\(0,\\ 1\\),\\ got\\ 2\\.0',
     lambda: I.mask_items(torch.tensor([[1,2]]),2.0,9)),
    ('aspect_precision top 0', ParameterError, 'top\\ must\\ be\\ >=\\ 1,\\ got\\ 0\\.',
     lambda: I.aspect_precision(pd.DataFrame({"user_id":[1]}),pd.DataFrame({"user_id":[1]}),top=0)),
    ('item_texts missing', DataError, "the\\ catalogue\\ is\\ missing\\ column\\(s\\)\\ \\['title',\\ 'de",
     lambda: I.item_texts(cat)),
    ('build_prompt str', ValueError, 'profile_aspects\\ must\\ be\\ a\\ list\\ of\\ aspect\\ names\\ s',
     lambda: lm.build_prompt("comfort",{"title":"x"})),
    ('build_prompt reviews str', ValueError, 'reviews\\ must\\ be\\ a\\ list\\ of\\ strings\\ \\(or\\ None\\),\\ got',
     lambda: lm.build_prompt(["comfort"],{"title":"x"},"great")),
    ('explainer float ids', ValueError, 'users\\ must\\ be\\ whole\\-number\\ IDs;\\ got\\ \\[1\\.5\\]\\ \\(NaN,\\ ',
     lambda: explainers.TemplateExplainer({}, None).explain([1.5],[2])),
    ('explainer str ids', ValueError, 'users\\ must\\ be\\ integer\\ IDs,\\ got\\ dtype\\ <U1\\ \\(e\\.g\\.\\ \\[',
     lambda: explainers.TemplateExplainer({}, None).explain(["a"],[2])),
    ('collate short labels', ValueError, 'example\\ 0:\\ input_ids\\ \\(3\\)\\ and\\ labels\\ \\(2\\)\\ must\\ be\\ ',
     lambda: lm.collate([{"input_ids":[1,2,3],"labels":[-100,2]}],0)),
    ('top_k_filter 0', ValueError, 'k\\ must\\ be\\ >=\\ 1,\\ got\\ 0',
     lambda: lm.top_k_filter(torch.ones(1,3),0)),
    ('top_p 0', ValueError, 'p\\ must\\ be\\ in\\ \\(0,\\ 1\\],\\ got\\ 0',
     lambda: lm.top_p_filter(torch.ones(1,3),0)),
    ('clean_untrusted none', TypeError, 'expected\\ text,\\ got\\ NoneType',
     lambda: untrusted.clean_untrusted(None)),
    ('extract_claims none', TypeError, 'a\\ reason\\ must\\ be\\ a\\ string,\\ got\\ NoneType',
     lambda: claims.extract_claims(None, claims.lexicon())),
    ('peter_mask 0', ValueError, 'n_words\\ must\\ be\\ >=\\ 1,\\ got\\ 0',
     lambda: explainers.peter_mask(0)),
    ('load_shopworld unknown', DataError, "Unknown\\ ShopWorld\\ table\\ 'nope';\\ choose\\ from\\ \\['ca",
     lambda: loaders.load_shopworld("nope")),
    ('load_image unknown', DataError, 'No\\ image\\ for\\ item_id=999999;\\ ShopWorld\\ item\\ IDs\\ ',
     lambda: loaders.load_image(999999)),
    ('load_image float', DataError, 'No\\ image\\ for\\ item_id=1\\.5;\\ ShopWorld\\ item\\ IDs\\ run',
     lambda: loaders.load_image(1.5)),
    ('load_movielens src', DataError, "source\\ must\\ be\\ 'auto',\\ 'recbole'\\ or\\ 'grouplens',",
     lambda: loaders.load_movielens("kaggle")),
    ('hf_dataset unknown', DataError, "Unknown\\ ShopWorld\\ table\\ 'nope';\\ choose\\ from\\ \\['ca",
     lambda: loaders.hf_dataset("nope")),
    ('read_peter missing', DataError, 'nonexistent\\.pickle does not exist',
     lambda: loaders.read_peter("/nonexistent.pickle")),
    ('user_sequences', ParameterError, 'max_len\\ must\\ be\\ >=\\ 1,\\ got\\ 0\\.',
     lambda: sequential.user_sequences(ev, np.array([0,0,1,1,2]), np.array([0,1,0,2,1]), 3, max_len=0)),
    ('sasrec rec epochs 0', ParameterError, 'n_epochs\\ must\\ be\\ >=\\ 1,\\ got\\ 0\\.',
     lambda: sequential.SASRecRecommender(n_epochs=0).fit(ev)),
    ('sasrec rec max_len float', ValueError, 'max_len must be an integer, got float 2\\.5',
     lambda: sequential.SASRecRecommender(max_len=2.5).fit(ev)),
    ('twotower batch 0', ParameterError, 'batch_size\\ must\\ be\\ >=\\ 1,\\ got\\ 0\\.',
     lambda: I.TwoTowerRecommender(torch.ones(3,4), [10,11,12], batch_size=0).fit(ev)),
    ('textinterest emb ids mismatch', ValueError, '3\\ item\\ IDs\\ for\\ 2\\ embeddings;\\ pass\\ the\\ index\\ of\\ t',
     lambda: I.TextInterestRecommender(torch.ones(2,4), [10,11,12]).fit(ev)),
    ('textinterest pooling', ValueError, "pooling\\ must\\ be\\ 'mean'\\ or\\ 'attention',\\ got\\ 'max'",
     lambda: I.TextInterestRecommender(torch.ones(3,4), [10,11,12], pooling="max").fit(ev)),
    ('textinterest nan emb', ValueError, 'item_embeddings\\ must\\ be\\ finite\\ floats\\ \\(no\\ NaN/in',
     lambda: I.TextInterestRecommender(torch.full((3,4),float("nan")), [10,11,12]).fit(ev)),
    ('bert4rec mask_prob', ValueError, 'mask_prob must be <= 0\\.999, got 1\\.5',
     lambda: I.BERT4RecRecommender(mask_prob=1.5).fit(ev)),
    # the classes of bad input the architecture review found still getting through
    ('catalogue inf price', DataError, 'values\\ of\\ price\\ in\\ the\\ catalogue\\ are\\ infinite',
     lambda: pp.clean_catalogue(raw_catalogue(price=np.inf))),
    ('catalogue category with no price', DataError, 'no\\ median\\ to\\ impute',
     lambda: pp.clean_catalogue(raw_catalogue(price=np.nan))),
    ('sasrec text times', DataError, "timestamp\\ in\\ the\\ interactions\\ must\\ be\\ numeric",
     lambda: sequential.SASRecRecommender(n_epochs=1).fit(mk(timestamp=["10", "9", "3", "4", "5"]))),
    ('user_sequences text times', DataError, "text\\ timestamps\\ sort\\ as\\ text",
     lambda: sequential.user_sequences(mk(timestamp=["10", "9", "3", "4", "5"]), np.array([0, 0, 1, 1, 2]),
                                       np.array([0, 1, 0, 2, 1]), 3, max_len=4)),
    ('id map mixed kinds', DataError, "IDs\\ mix\\ kinds\\ \\['number',\\ 'str'\\]",
     lambda: pp.build_id_map([1, "1", 2])),
    ('fit mixed-kind ids', DataError, "user_id\\ values\\ of\\ the\\ training\\ data\\ mix\\ kinds",
     lambda: cf.MostPopular().fit(mk(user_id=[1, "1", 2, 2, 3]))),
    ('aspects a string', DataError, 'aspects\\ must\\ be\\ a\\ non\\-empty\\ list',
     lambda: I.marketed_aspects(cat.assign(description=["a", "b", "c"]), "comfort")),
]


@pytest.mark.parametrize("name,exc,what,call", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_with_what_and_how(name, exc, what, call):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(exc) as info:
            call()
    message = str(info.value)
    assert re.search(what, message), f"{name}: {message!r}"
    assert ADVICE.search(message), f"{name}: the message does not say how to fix it: {message!r}"
    assert "Traceback" not in message and len(message) < 600


def test_inputs_are_not_altered_by_the_checks():
    """Validation never repairs the caller's data in place."""
    before = ev.copy()
    pp.leave_last_out(ev)
    cf.Biases().fit(ev)
    pp.clean_events(ev, cat)
    pd.testing.assert_frame_equal(ev, before)


def test_rank_from_scores_pads_with_minus_one_instead_of_excluded_items():
    scores = np.array([[0.9, 0.8, 0.7], [0.1, 0.2, 0.3]])
    exclude = np.array([[True, True, False], [False, False, False]])
    top = M.rank_from_scores(scores, 3, exclude=exclude)
    assert top.tolist() == [[2, -1, -1], [2, 1, 0]]
    # and ranking metrics never count the padding
    assert M.hit_rate_at_k(top, [{0}, {1}], 3) == 0.5
    assert M.catalogue_coverage(top, 3) == 1.0


def test_recommend_returns_short_lists_never_seen_items():
    m = cf.MostPopular().fit(mk())
    recs = m.recommend([1], k=3)                  # user 1 saw 10 and 11: only 12 is left
    assert recs["item_id"].tolist() == [12]


def test_sampled_metrics_no_longer_counts_a_nan_test_score_as_a_hit():
    s = np.ones((1, 200))
    s[0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        M.sampled_metrics(s, [0], 10)


def test_explicit_knn_refuses_repeated_ratings_instead_of_summing_them():
    twice = pd.concat([ev, ev.assign(rating=5.0)])
    with pytest.raises(DataError, match="rated more than once"):
        cf.KNN("item", explicit=True).fit(twice)


# ---------------------------------------------------------------- the sweep (issue 39, item 7)
# Every entry point that takes a table of interactions, fed each class of bad value in each
# column it reads: infinite, missing or text-typed numbers, text-typed or missing times, IDs that
# mix kinds, are missing, fractional or True/False, and an empty table. Each must be refused with
# a DataError that says how to fix it; a column an entry point does not read may hold anything.
def _sweep_log() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    d = pd.DataFrame({"user_id": rng.integers(1, 8, 60), "item_id": rng.integers(100, 120, 60),
                      "timestamp": np.arange(60), "rating": rng.integers(1, 6, 60).astype(float)})
    return d.drop_duplicates(["user_id", "item_id"]).reset_index(drop=True)


def _spoil(d: pd.DataFrame, col: str, how: str) -> pd.DataFrame:
    d = d.copy()
    if how == "empty":
        return d.iloc[:0]
    if how == "text":
        d[col] = d[col].astype(str)
    elif how == "bool":
        d[col] = d[col] > d[col].median()
    else:
        d[col] = d[col].astype(object if how == "mixed" else float)
        d.loc[0, col] = {"inf": np.inf, "nan": np.nan, "mixed": "u1", "fraction": 3.5}[how]
    return d


SPOILS = {"rating": ["inf", "nan", "text"], "timestamp": ["text", "nan", "inf"],
          "user_id": ["mixed", "nan", "fraction", "bool"],
          "item_id": ["mixed", "nan", "fraction", "bool"]}
SMALL = dict(n_epochs=1, device="cpu")
# (entry point, the columns it reads, the call)
ENTRY_POINTS = [
    ("GlobalMean.fit", {"user_id", "item_id", "rating"}, lambda d: cf.GlobalMean().fit(d)),
    ("Biases.fit", {"user_id", "item_id", "rating"}, lambda d: cf.Biases().fit(d)),
    ("BiasedMF.fit", {"user_id", "item_id", "rating"}, lambda d: cf.BiasedMF(4, **SMALL).fit(d)),
    ("BayesianMF.fit", {"user_id", "item_id", "rating"},
     lambda d: cf.BayesianMF(4, n_samples=2, burn_in=1).fit(d)),
    ("KNN explicit.fit", {"user_id", "item_id", "rating"},
     lambda d: cf.KNN("user", 5, explicit=True).fit(d)),
    ("KNN.fit", {"user_id", "item_id"}, lambda d: cf.KNN("item", 5).fit(d)),
    ("MostPopular.fit", {"user_id", "item_id"}, lambda d: cf.MostPopular().fit(d)),
    ("BPR.fit", {"user_id", "item_id"}, lambda d: cf.BPR(4, **SMALL).fit(d)),
    ("EASE.fit", {"user_id", "item_id"}, lambda d: cf.EASE().fit(d)),
    ("ImplicitALS.fit", {"user_id", "item_id"}, lambda d: cf.ImplicitALS(4, n_iter=1).fit(d)),
    ("SASRecRecommender.fit", {"user_id", "item_id", "timestamp"},
     lambda d: sequential.SASRecRecommender(max_len=5, **SMALL).fit(d)),
    ("BERT4RecRecommender.fit", {"user_id", "item_id", "timestamp"},
     lambda d: I.BERT4RecRecommender(max_len=5, **SMALL).fit(d)),
    ("leave_last_out", {"user_id", "item_id", "timestamp"}, lambda d: pp.leave_last_out(d)),
    ("per_user_split", {"user_id", "item_id"}, lambda d: pp.per_user_split(d)),
    ("temporal_split", {"timestamp"}, lambda d: pp.temporal_split(d, [20, 40])),
    ("first_users", {"user_id"}, lambda d: pp.first_users(d, 3)),
    ("build_id_map", {"user_id"}, lambda d: pp.build_id_map(d["user_id"])),
    ("interaction_matrix explicit", {"user_id", "item_id", "rating"},
     lambda d: pp.interaction_matrix(d, pp.build_id_map(_sweep_log()["user_id"]),
                                     pp.build_id_map(_sweep_log()["item_id"]), kind="explicit")),
]
SWEEP = [(name, col, how, call) for name, reads, call in ENTRY_POINTS
         for col in sorted(reads) for how in SPOILS[col]] + \
        [(name, "*", "empty", call) for name, _, call in ENTRY_POINTS]


@pytest.mark.parametrize("name,reads,call", ENTRY_POINTS, ids=[e[0] for e in ENTRY_POINTS])
def test_the_sweep_entry_points_take_a_clean_log(name, reads, call):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        call(_sweep_log())                  # no false alarm: the spoiled copies below are the test


@pytest.mark.parametrize("name,col,how,call", SWEEP,
                         ids=[f"{n}-{c}-{h}" for n, c, h, _ in SWEEP])
def test_every_entry_point_refuses_each_class_of_bad_value(name, col, how, call):
    d = _sweep_log()
    spoiled = _spoil(d, col, how)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DataError) as err:
            call(spoiled)
    assert ADVICE.search(str(err.value)), f"{name}: the message says no fix: {err.value}"
    pd.testing.assert_frame_equal(d, _sweep_log())        # the caller's frame is untouched


def test_the_sweep_can_fail():
    """An entry point that reads a column without checking it is caught."""
    def unchecked(d):
        return d["rating"].to_numpy(float).mean()
    with pytest.raises(BaseException):  # noqa: B017 - pytest.raises(DataError) itself fails
        with pytest.raises(DataError):
            unchecked(_spoil(_sweep_log(), "rating", "inf"))

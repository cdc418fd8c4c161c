"""Chapter 10: the job that outgrows one machine — every shopper scored and explained every
night — run on Ray.

    root = scale.big_world(100_000)                  # a 100,000-shopper ShopWorld, made once, cached
    snap = scale.Snapshot.fit(root)                  # what a worker needs: factors, seen items, facts
    page = scale.explain_users(snap, users)          # the job in one process: top 10 + checked reason
    with scale.local_ray(num_cpus=2) as address:     # Ray on this machine, offline
        out, seconds = scale.run_on_ray(snap, users, workers=2)

The job is chapter 02's implicit ALS (top ``k`` unseen items per shopper, the same ranking and
tie-breaking as :meth:`~helpers.models.cf.ImplicitALS.recommend`) and chapter 05's template explainer
behind the closed-world guard (every reason checked against what the shop states). It is a pure
function of a :class:`Snapshot` and a batch of shopper IDs, so the same function runs in one
process, in a pool of Ray actors on this machine, or on a cluster: :func:`run_on_ray` only
needs Ray to be connected, and :func:`local_ray` vs ``ray.init(address=...)`` is the one line
that differs.

Offline: a Ray started by :func:`local_ray` or :func:`start_cluster` reaches no other host.
Usage statistics are off and their "disabled" notice goes to a closed loopback port; the
cloud-metadata probe Ray's usage module runs anyway (169.254.169.254, metadata.google.internal)
goes through a proxy set to that same closed port, with loopback and the address Ray gives this
node exempt so Ray's own gRPC traffic is untouched; token authentication stays on. Ray's C++ core still asks the kernel which
interface would route to 8.8.8.8 (a UDP ``connect``, which sends no packet). Connecting to a
cluster somewhere else (``ray.init(address=...)``) is the user's opt-in to the network, and
none of this is applied to it.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.core import config
from helpers.core.checks import DataError, ParameterError, require_int, require_number
from helpers.data import loaders, preprocess as pp, shopworld
from helpers.metrics.ranking import rank_from_scores
from helpers.models import cf, interest as I
from helpers.reasons import explainers, guard as G
from helpers.reasons.claims import FALLBACK_PREFIX, item_facts, lexicon

__all__ = ["Snapshot", "big_world", "explain_users", "NightlyJob", "local_ray", "start_cluster",
           "run_on_ray", "serial_share", "OFFLINE_ENV", "COLUMNS", "FALLBACK_REASON"]

COLUMNS = ["user_id", "rank", "item_id", "score", "reason", "fallback"]
"""The job's output: one row per (shopper, slot)."""

_CLOSED = "http://127.0.0.1:9"          # the discard port: nothing listens, a connect fails at once
OFFLINE_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_USAGE_STATS_REPORT_URL": _CLOSED + "/",
    "http_proxy": _CLOSED, "https_proxy": _CLOSED, "HTTP_PROXY": _CLOSED, "HTTPS_PROXY": _CLOSED,
    "no_proxy": "127.0.0.1,localhost", "NO_PROXY": "127.0.0.1,localhost",
}
"""What Ray's processes on this machine run with (see the module docstring): they inherit it
from the process that starts them, and it is restored in this process afterwards."""


def _offline_env(host: str | None = None) -> dict:
    """:data:`OFFLINE_ENV`, with ``host`` (this machine's address, where Ray placed its node) also
    exempt from the closed proxy: Ray's gRPC honours ``http_proxy``, and its own traffic to this
    machine must not be sent there."""
    if host in (None, "127.0.0.1", "localhost"):
        return dict(OFFLINE_ENV)
    exempt = f"127.0.0.1,localhost,{host}"
    return {**OFFLINE_ENV, "no_proxy": exempt, "NO_PROXY": exempt}


# ----------------------------------------------------------------------------- the data
def big_world(n_users: int = 100_000, seed: int = 0, progress: bool = True,
              root: str | Path | None = None) -> Path:
    """A ShopWorld with ``n_users`` shoppers (the course's 2,000 items, no images), generated
    once into ``root`` (default: the course cache) and reused while its manifest checks out.
    About 50 s and 2 GB of memory for 100,000 shoppers on 2 cores; 64 MB on disk (half of it
    the raw, dirty copy of the log that chapter 01 would clean)."""

    require_int("n_users", n_users, 1)
    require_int("seed", seed, 0)
    out = Path(root) if root is not None else config.cache_dir() / f"shopworld-{n_users}u-seed{seed}"
    if (out / "MANIFEST.sha256").exists():
        try:
            loaders.verify_shopworld(out)
            return out
        except DataError:
            shutil.rmtree(out)                    # damaged or half-written: make it again
    world = shopworld.generate(shopworld.WorldConfig(n_users=n_users, seed=seed, images=False),
                               progress=progress)
    tmp = out.with_name(f"{out.name}.{os.getpid()}.partial")  # this process's own
    shutil.rmtree(tmp, ignore_errors=True)
    shopworld.write_world(world, tmp)
    try:
        tmp.rename(out)                           # a crash mid-write never leaves a "world"
    except OSError:                               # another process made the same world first
        shutil.rmtree(tmp, ignore_errors=True)
        loaders.verify_shopworld(out)
    return out


@dataclass
class Snapshot:
    """Everything one worker needs to score and explain any shopper, and nothing else: the
    ALS factors, each shopper's seen items (never recommended again), the items' stated facts
    and each shopper's inferred aspects. Plain arrays and dicts, so Ray ships it to every
    worker once (``ray.put``) and a cluster needs no shared disk."""
    user_ids: np.ndarray           # sorted shopper IDs; row r of X is user_ids[r]
    X: np.ndarray                  # (n_users, f) shopper factors
    item_ids: np.ndarray           # item IDs; row j of Y is item_ids[j]
    Y: np.ndarray                  # (n_items, f) item factors
    seen_indptr: np.ndarray        # CSR of the items each shopper met (clicks, carts, buys)
    seen_indices: np.ndarray
    facts: dict                    # item_id -> what the shop states (chapter 05's item_facts)
    profile: pd.DataFrame          # user_id, aspect_1..3 (chapter 04's aspect_profile)
    lex: object                    # chapter 05's lexicon, for the guard

    @classmethod
    def from_model(cls, model, facts: dict, profile: pd.DataFrame, lex) -> "Snapshot":
        """From a fitted :class:`~helpers.models.cf.ImplicitALS` (rows reordered by shopper ID)."""
        if not hasattr(model, "X"):
            raise DataError("the model is not fitted: call .fit(...) before taking a snapshot.")
        ids = np.asarray(model.user_map.ids)
        order = np.argsort(ids, kind="stable")
        seen = model.seen.tocsr()[order]
        return cls(user_ids=ids[order], X=np.ascontiguousarray(model.X[order]),
                   item_ids=np.asarray(model.item_map.ids), Y=np.ascontiguousarray(model.Y),
                   seen_indptr=seen.indptr, seen_indices=seen.indices, facts=facts,
                   profile=profile, lex=lex)

    @classmethod
    def fit(cls, root: str | Path, n_factors: int = 32, n_iter: int = 8, seed: int = 0):
        """Train the night's model on the world in ``root``: implicit ALS on every click, cart
        and purchase of its (clean) log, the facts from its catalogue and reviews, the
        shoppers' top three aspects. Returns ``(snapshot, model)``."""

        catalogue = loaders.load_shopworld("catalogue", root)
        events = loaders.load_shopworld("events", root)
        reviews = loaders.load_shopworld("reviews", root)
        inter = events[events["event_type"] != "view"]
        model = cf.ImplicitALS(n_factors, n_iter=n_iter, seed=seed).fit(
            inter, pp.build_id_map(inter["user_id"]), pp.build_id_map(catalogue["item_id"]))
        profile = I.aspect_profile(events, reviews, catalogue, loaders.vocabulary()["categories"],
                                   top=3)
        return cls.from_model(model, item_facts(catalogue, reviews), profile,
                              lexicon(catalogue)), model

    @property
    def nbytes(self) -> int:
        """The six NumPy arrays' size in bytes (IDs, factors, seen items). The facts (a dict),
        the profile (a DataFrame) and the lexicon are left out: ``len(pickle.dumps(snap))`` is
        the size of the whole snapshot, close to what ``ray.put`` stores."""
        return sum(a.nbytes for a in (self.user_ids, self.X, self.item_ids, self.Y,
                                      self.seen_indptr, self.seen_indices))

    def rows_of(self, users) -> np.ndarray:
        """Row numbers of ``users``; unknown or repeated IDs are an error, never dropped."""
        users = np.asarray(users)
        if users.ndim != 1 or len(users) == 0:
            raise DataError(f"users must be a non-empty 1-D list of shopper IDs, got shape "
                            f"{users.shape}.")
        if not np.issubdtype(users.dtype, np.integer):
            raise DataError(f"shopper IDs are integers, got dtype {users.dtype}.")
        if len(np.unique(users)) != len(users):
            raise DataError("users has repeated IDs: score each shopper once (np.unique).")
        rows = np.searchsorted(self.user_ids, users)
        rows = np.minimum(rows, len(self.user_ids) - 1)
        bad = self.user_ids[rows] != users
        if bad.any():
            raise DataError(f"{int(bad.sum())} shopper(s) the snapshot does not know (e.g. "
                            f"{users[bad][:3].tolist()}): the nightly job scores the shoppers "
                            "it was trained on; a new shopper gets chapter 09's live path.")
        return rows


# ----------------------------------------------------------------------------- the job
def explain_users(snap: Snapshot, users, k: int = 10, _explainers=None) -> pd.DataFrame:
    """The nightly job for one batch: each shopper's top ``k`` unseen items by ALS score and
    a reason per slot (template, then the guard; a rejected sentence is replaced by
    :data:`FALLBACK_REASON`, which says nothing about the item, and ``fallback`` marks it).
    Rows in the order of ``users``, ranks 1..k (fewer only for a shopper with fewer unseen
    items). Columns :data:`COLUMNS`."""

    require_int("k", k, 1)
    rows = snap.rows_of(users)
    users = snap.user_ids[rows]
    scores = snap.X[rows] @ snap.Y.T
    # the items each shopper met, straight from the CSR slices of these rows, never offered
    starts, ends = snap.seen_indptr[rows], snap.seen_indptr[rows + 1]
    lengths = ends - starts
    cols = snap.seen_indices[np.concatenate([np.arange(s, e) for s, e in zip(starts, ends)])
                             if lengths.sum() else np.array([], dtype=np.int64)]
    seen = np.zeros(scores.shape, dtype=bool)
    seen[np.repeat(np.arange(len(rows)), lengths), cols] = True
    top = rank_from_scores(scores, min(k, scores.shape[1]), exclude=seen)  # -1: none left
    template, guard = _explainers or _make_explainers(snap)
    out = []
    for u, row, s in zip(users, top, scores):
        u = int(u)
        for rank, j in enumerate(row[row >= 0], start=1):
            item = int(snap.item_ids[j])
            reason, fallback = guard.choose([template.explain_one(u, item)], u, item)
            out.append((u, rank, item, float(s[j]), reason, fallback))
    return pd.DataFrame(out, columns=COLUMNS)


FALLBACK_REASON = FALLBACK_PREFIX + "Recommended because shoppers like you chose it."
"""What the job serves when the guard rejects the template's sentence: marked, and claiming
nothing about the item (the template itself would repeat the rejected claim)."""


class _ClaimFreeFallback:
    """The guard's fallback in the nightly job: :data:`FALLBACK_REASON` for every pair."""

    def fallback_for(self, user: int, item: int) -> str:
        return FALLBACK_REASON


def _make_explainers(snap: Snapshot):

    template = explainers.TemplateExplainer(snap.facts, snap.profile)
    return template, G.ClosedWorldGuard(snap.facts, snap.lex, fallback=_ClaimFreeFallback())


class NightlyJob:
    """The job as Ray Data wants it: a class built once per worker (the explainers are made
    there, from the snapshot), then called on batches of shoppers."""

    def __init__(self, snap, k: int = 10):
        if not isinstance(snap, Snapshot):        # an ObjectRef from ray.put
            snap = _ray().get(snap)
        self.snap, self.k = snap, k
        self.explainers = _make_explainers(snap)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        return explain_users(self.snap, batch["user_id"].to_numpy(), self.k, self.explainers)


# ----------------------------------------------------------------------------- Ray
def _ray():
    if "ray" not in sys.modules:
        # Token authentication, which Ray switches on by itself only for a Ray it starts, for
        # joining a cluster too (start_cluster's, like any `ray start` head). Ray reads this
        # once, when it is first imported; a value already set is kept.
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    try:
        import ray
    except ImportError:
        raise ImportError("chapter 10 needs Ray, which the default course does not install: "
                          "run `make scale` (it adds ray==2.60.0 to the course's .venv).") from None
    return ray


@contextlib.contextmanager
def _env(values: dict):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def serial_share(speedup: float, workers: int) -> float:
    """Karp and Flatt's *experimentally determined serial fraction*: the share ``s`` of a job that
    did not get faster with more workers, from the speed-up measured on ``workers`` of them::

        s = (1 / speedup - 1 / workers) / (1 - 1 / workers)

    It inverts Amdahl's law (``speedup = 1 / (s + (1 - s) / workers)``), so Amdahl's law with this
    ``s`` predicts other worker counts. Clipped to [0, 1]: a speed-up above ``workers`` (noise, or
    a cache effect) gives 0, a slow-down gives 1."""
    speedup = require_number("speedup (time on 1 worker / time on `workers`)", speedup, low=0,
                             low_open=True)
    workers = require_int("workers", workers, 2)
    return min(max((1 / speedup - 1 / workers) / (1 - 1 / workers), 0.0), 1.0)


@contextlib.contextmanager
def local_ray(num_cpus: int = 2, address: str | None = None):
    """Ray for the ``with`` block: a fresh instance on this machine (``address=None``, offline,
    ``num_cpus`` cores), or a connection to a running cluster's ``address`` (``host:port``, as
    printed by ``ray start --head``), from a machine that is part of that cluster. Ray Client
    addresses (``ray://host:10001``, for a driver outside the cluster) are refused: run the
    driver on a cluster node (or submit it with ``ray job submit``). Yields the address Ray is
    at; shuts down (disconnects, for a cluster) at the end."""
    if address is not None and (not isinstance(address, str) or ":" not in address):
        raise ParameterError(f"address must be 'host:port' (as `ray start --head` prints it) "
                             f"or None for a Ray on this machine, got {address!r}.")
    if isinstance(address, str) and address.startswith("ray://"):
        raise ParameterError(f"local_ray joins a cluster as one of its machines ('host:port'), "
                             f"not through Ray Client ({address!r}): run this on a machine of "
                             "the cluster, or submit the script with `ray job submit`.")
    ray = _ray()
    require_int("num_cpus", num_cpus, 1)
    if ray.is_initialized():
        raise RuntimeError("Ray is already running in this process: call ray.shutdown() first.")
    quiet = dict(log_to_driver=False, logging_level="ERROR")
    host = None if address is None else address.rsplit(":", 1)[0]
    local = host is None or host in _this_machine()
    with _env(_offline_env(host) if local else {}):
        if address is None:   # "local": a new instance, never a cluster found on disk
            ctx = ray.init(address="local", num_cpus=num_cpus, _node_ip_address="127.0.0.1",
                           include_dashboard=False, **quiet)
        else:
            for attempt in range(3):              # a head just started may not have its node
                try:                              # registered yet ("No node info found")
                    ctx = ray.init(address=address, **quiet)
                    break
                except ConnectionError:
                    if attempt == 2:
                        raise
                    ray.shutdown()
                    time.sleep(5)
    try:
        yield ctx.address_info.get("address", address)
    finally:
        ray.shutdown()


def _quiet_ray_data() -> None:
    """Ray Data's own notices of each run (plan, start, finish, "progress bars disabled") off,
    its errors kept. Ray Data sets up its logging when a dataset first runs, so run_on_ray calls
    this before each run."""
    import logging

    ray = _ray()
    ctx = ray.data.DataContext.get_current()
    ctx.print_on_execution_start = False
    ctx.enable_progress_bars = False                  # run_on_ray shows its own bar
    for handler in logging.getLogger("ray.data").handlers:
        handler.setLevel(max(handler.level, logging.ERROR))


def _this_machine() -> set[str]:
    """The host names by which Ray on this machine is reached: loopback, and the address Ray
    itself picks for this node (the one it rewrites 127.0.0.1 into when connecting)."""
    return {"127.0.0.1", "localhost", _ray().util.get_node_ip_address()}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def start_cluster(num_cpus: int = 2, timeout: float = 120.0):
    """A one-node Ray *cluster* on this machine, started the way a real head node is
    (``ray start --head``: its own processes, a port, token authentication), reaching no other
    host. It listens where Ray places this node — the machine's network address if it has one
    (another machine holding the token could join it), else 127.0.0.1 — because Ray sends a
    driver that asks for 127.0.0.1 there. Yields the address, which :func:`local_ray` (or
    ``ray.init``) connects to as to any cluster. At the end only this cluster's processes are
    stopped (``ray stop`` would stop every Ray of this user). About 10 s to start, 10 s to stop."""
    import signal

    ray = _ray()
    require_int("num_cpus", num_cpus, 1)
    port = _free_port()
    exe = [sys.executable, "-c", "from ray.scripts.scripts import main; main()"]
    # the head listens on the address Ray picks for this node (127.0.0.1 when the machine has
    # no network), because a driver asked for 127.0.0.1 is sent there by Ray
    host = ray.util.get_node_ip_address()
    address = f"{host}:{port}"
    with _env(_offline_env(host)):
        # token authentication, as Ray does by default: the head and everyone who connects
        # read ~/.ray/auth_token, made here if missing (the command prints it: not kept)
        subprocess.run(exe + ["get-auth-token", "--generate"], capture_output=True, timeout=120)
        # --block: the command stays up as the parent of the cluster's processes, in a process
        # group of its own, so stopping that group stops this cluster and nothing else
        head = subprocess.Popen(
            exe + ["start", "--head", "--block", f"--port={port}", f"--num-cpus={num_cpus}",
                   f"--node-ip-address={host}", "--include-dashboard=false",
                   "--disable-usage-stats"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            start_new_session=True)
    try:
        _wait_for_port(host, port, head, timeout)
        yield address
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=10)                 # `ray stop` gives the same grace, then kills
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        # `ray start` notes the cluster for later ray.init() calls; forget it if it is ours
        note = Path(os.environ.get("RAY_TMPDIR", "/tmp")) / "ray" / "ray_current_cluster"
        with contextlib.suppress(OSError):
            if note.read_text().strip() == address:
                note.unlink()


def _wait_for_port(host: str, port: int, head: subprocess.Popen, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if head.poll() is not None:
            raise RuntimeError(f"`ray start --head` exited with code {head.returncode}:\n"
                               f"{head.stderr.read()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.5)
    raise RuntimeError(f"Ray's head did not open port {port} within {timeout:.0f} s.")


def run_on_ray(snap: Snapshot, users, workers: int, batch_size: int = 2_000, k: int = 10,
               progress: bool = True):
    """The job over ``users`` on a running Ray (see :func:`local_ray`): Ray Data splits the
    shoppers into batches, a pool of ``workers`` actors (one CPU each) each builds a
    :class:`NightlyJob` once and scores batch after batch. Returns ``(frame, seconds)``:
    the rows sorted by (user, rank) — Ray does not keep batch order — and the wall time from
    the dataset's creation to the last row back, actor start-up included. ``progress`` shows a
    bar of shoppers done as their rows arrive."""
    from tqdm.auto import tqdm

    ray = _ray()
    require_int("workers", workers, 1)
    require_int("batch_size", batch_size, 1)
    if not ray.is_initialized():
        raise RuntimeError("Ray is not running: use `with scale.local_ray(): ...` (this "
                           "machine) or ray.init(address=...) (a cluster) first.")
    users = np.asarray(users)
    snap.rows_of(users)                           # fail here, not inside a worker
    t0 = time.perf_counter()
    ref = ray.put(snap)                           # shipped once, shared by every worker
    parts = [pd.DataFrame({"user_id": users[i:i + batch_size]})
             for i in range(0, len(users), batch_size)]
    _quiet_ray_data()
    ds = ray.data.from_pandas(parts).map_batches(
        NightlyJob, fn_constructor_args=(ref, k), batch_size=batch_size, batch_format="pandas",
        compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=1)
    frames = []
    with tqdm(total=len(users), desc=f"Ray, {workers} worker(s)", unit="shopper",
              disable=not progress) as bar:
        for block in ds.iter_batches(batch_size=None, batch_format="pandas"):
            frames.append(block)
            bar.update(block["user_id"].nunique())
    out = pd.concat(frames, ignore_index=True)
    seconds = time.perf_counter() - t0
    out = out.sort_values(["user_id", "rank"], kind="stable").reset_index(drop=True)
    # Ray hands back Arrow-backed columns; the same NumPy types as explain_users
    return out[COLUMNS].astype(_DTYPES), seconds


_DTYPES = {"user_id": "int64", "rank": "int64", "item_id": "int64", "score": "float64",
           "reason": str, "fallback": "bool"}

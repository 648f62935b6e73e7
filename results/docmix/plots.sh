#!/bin/bash
# Writes rates.md and rates.png from the metrics files committed here:
#   bash results/docmix/plots.sh
cd "$(dirname "$0")"
python ../../plot.py rates */*.jsonl --out rates.png --table rates.md --reference-flops 6.538e16 \
 --title "docmix, 2500 steps of 32 x 1024 tokens; min_lr = rate / 10"

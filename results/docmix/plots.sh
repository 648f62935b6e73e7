#!/bin/bash
# Writes rates.md, rates.png, isoflop.png and frontier.png from the metrics files committed here:
#   bash results/docmix/plots.sh
cd "$(dirname "$0")"
python ../../plot.py rates */*.jsonl --out rates.png --table rates.md --reference-flops 6.538e16 \
 --title "docmix, 2500 steps of 32 x 1024 tokens; min_lr = rate / 10"
# The 12-layer shape at equal FLOPs, dense and wider with MST's three levers; and the families against FLOPs.
# Each family at its best rate (--best-rate):
python ../../plot.py isoflop --best-rate --out . \
 --budget 0.078x 0078x/dense_12x128_*.jsonl 0078x/mst_192_*restore07*.jsonl \
 --budget 0.30x 030x/dense_12x352_*.jsonl 030x/mst_*restore07*.jsonl \
 --title "docmix, 12 layers; MST with the three levers; each family at its best peak rate"
python ../../plot.py frontier --best-rate --out . --reference "dense 12x352=030x/dense_12x352_lr1.7e-3_s1337.jsonl" \
 --family "dense, 12 layers" 0078x/dense_12x128_*.jsonl 030x/dense_12x352_*.jsonl \
 --family "dense, 6 layers" 0078x/dense_6x152_*.jsonl 030x/dense_6x448_*.jsonl \
 --family "MST with the three levers, 12 layers" 0078x/mst_192_*restore07*.jsonl 030x/mst_448_*restore07*.jsonl \
 --family "MST, 12 layers" 0078x/mst_192_lr*.jsonl 030x/mst_448_lr*.jsonl \
 --title "docmix, each family at its best peak rate"

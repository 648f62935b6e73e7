#!/bin/bash
# Draws frontier.png and isoflop.png from the metrics files committed here: bash results/docmix/plots.sh
cd "$(dirname "$0")"
python ../../plot.py frontier --out . --reference "dense 2500=124m/dense_2500.jsonl" \
 --title "docmix, 12 layers, 2500 steps of 32 x 1024 tokens; every run: the rate held to 90%, then a cosine" \
 --family "dense 124M, fewer steps" "500=124m/dense_500.jsonl" "722=124m/dense_722.jsonl" "1500=124m/dense_1500.jsonl" "2500=124m/dense_2500.jsonl" \
 --family "dense, narrower (352: 2 seeds)" "256 wide=124m/dense_256wide.jsonl" "352 wide=124m/dense_352wide_s1337.jsonl" "=124m/dense_352wide_s2.jsonl" \
 --family "MST, 448 wide, peak 0.31 (2 seeds)" "=124m/mst_448wide_s1337.jsonl" "=124m/mst_448wide_s2.jsonl" \
 --family "MST, GPT-2 124M, peak 0.8 (2 seeds)" "=124m/mst_768wide_s1337.jsonl" "=124m/mst_768wide_s2.jsonl"
python ../../plot.py isoflop --out . --title "docmix, 12 layers, 2500 steps of 32 x 1024 tokens, the same rate schedule" \
 --budget "0.30x dense GPT-2 124M (1.96e16 FLOPs)" 124m/dense_352wide_s1337.jsonl 124m/dense_352wide_s2.jsonl \
   124m/mst_448wide_s1337.jsonl 124m/mst_448wide_s2.jsonl 124m/mst_512wide.jsonl 124m/mst_576wide.jsonl \
   124m/mst_640wide.jsonl 124m/mst_768wide_s1337.jsonl 124m/mst_768wide_s2.jsonl

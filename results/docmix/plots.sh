#!/bin/bash
# Draws frontier.png, isoflop.png and regime.png from the metrics files committed here:
#   bash results/docmix/plots.sh
cd "$(dirname "$0")"
python ../../plot.py frontier --out . --reference "dense 2500=124m/dense_2500.jsonl" \
 --title "docmix, 12 layers, 2500 steps of 32 x 1024 tokens; every run: the rate held to 90%, then a cosine" \
 --family "dense 124M, fewer steps" "500=124m/dense_500.jsonl" "722=124m/dense_722.jsonl" "1500=124m/dense_1500.jsonl" "2500=124m/dense_2500.jsonl" \
 --family "dense, narrower (216, 352: 2 seeds)" "216 wide=124m/dense_216wide_s1337.jsonl" "=124m/dense_216wide_s2.jsonl" \
   "256 wide=124m/dense_256wide.jsonl" "352 wide=124m/dense_352wide_s1337.jsonl" "=124m/dense_352wide_s2.jsonl" \
   "560 wide=124m/dense_560wide.jsonl" \
 --family "MST, the best width at each budget (448: 2 seeds)" "256/0.19=124m/mst_256wide_015x.jsonl" \
   "448/0.31=124m/mst_448wide_s1337.jsonl" "=124m/mst_448wide_s2.jsonl" "640/0.18=124m/mst_640wide_06x.jsonl" \
 --family "MST, GPT-2 124M, peak 0.8 (2 seeds)" "=124m/mst_768wide_s1337.jsonl" "=124m/mst_768wide_s2.jsonl"
python ../../plot.py isoflop --out . --title "docmix, 12 layers, 2500 steps of 32 x 1024 tokens, the same rate schedule" \
 --budget "0.15x dense GPT-2 124M (9.94e15 FLOPs)" 124m/dense_216wide_s1337.jsonl 124m/dense_216wide_s2.jsonl \
   124m/mst_256wide_015x.jsonl 124m/mst_352wide_015x.jsonl 124m/mst_448wide_015x.jsonl \
 --budget "0.30x (1.96e16 FLOPs)" 124m/dense_352wide_s1337.jsonl 124m/dense_352wide_s2.jsonl \
   124m/mst_448wide_s1337.jsonl 124m/mst_448wide_s2.jsonl 124m/mst_512wide_s1337.jsonl 124m/mst_512wide_s2.jsonl \
   124m/mst_576wide.jsonl 124m/mst_640wide.jsonl 124m/mst_768wide_s1337.jsonl 124m/mst_768wide_s2.jsonl \
 --budget "0.60x (3.94e16 FLOPs)" 124m/dense_560wide.jsonl 124m/mst_640wide_06x.jsonl 124m/mst_704wide_06x.jsonl
python ../../plot.py regime --out . --title "docmix; each pair: equal counted FLOPs, the same rate schedule, seed 1337" \
 --pair "6 layers, 500-2000 steps: MST 288 wide (peak 0.28) vs dense 224" 6layer/mst_288wide_500.jsonl 6layer/dense_224wide_500.jsonl \
 --pair "6 layers, 500-2000 steps: MST 288 wide (peak 0.28) vs dense 224" 6layer/mst_288wide_2000.jsonl 6layer/dense_224wide_2000.jsonl \
 --pair "6 layers, 500-2000 steps: MST 384 wide (peak 0.56) vs dense 224" 6layer/mst_384wide_500.jsonl 6layer/dense_224wide_500.jsonl \
 --pair "6 layers, 500-2000 steps: MST 384 wide (peak 0.56) vs dense 224" 6layer/mst_384wide_2000.jsonl 6layer/dense_224wide_2000.jsonl \
 --pair "12 layers, 2500 steps: best MST vs dense at 0.60x, 0.30x, 0.15x" 124m/mst_640wide_06x.jsonl 124m/dense_560wide.jsonl \
 --pair "12 layers, 2500 steps: best MST vs dense at 0.60x, 0.30x, 0.15x" 124m/mst_448wide_s1337.jsonl 124m/dense_352wide_s1337.jsonl \
 --pair "12 layers, 2500 steps: best MST vs dense at 0.60x, 0.30x, 0.15x" 124m/mst_256wide_015x.jsonl 124m/dense_216wide_s1337.jsonl

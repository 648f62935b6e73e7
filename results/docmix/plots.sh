#!/bin/bash
# Draws frontier.png, isoflop.png and regime.png from the metrics files committed here:
#   bash results/docmix/plots.sh
cd "$(dirname "$0")"
python ../../plot.py frontier --out . --reference "dense 2500=124m/dense_2500.jsonl" \
 --title "docmix, 2500 steps of 32 x 1024 tokens, 12 layers unless named, one rate shape" \
 --family "dense 124M, fewer steps" "500=124m/dense_500.jsonl" "722=124m/dense_722.jsonl" "1500=124m/dense_1500.jsonl" "2500=124m/dense_2500.jsonl" \
 --family "dense, narrower (2 seeds but 256)" "128 wide=124m/dense_128wide_s1337.jsonl" "=124m/dense_128wide_s2.jsonl" \
   "216 wide=124m/dense_216wide_s1337.jsonl" "=124m/dense_216wide_s2.jsonl" "256 wide=124m/dense_256wide.jsonl" \
   "352 wide=124m/dense_352wide_s1337.jsonl" "=124m/dense_352wide_s2.jsonl" \
   "560 wide=124m/dense_560wide.jsonl" "=124m/dense_560wide_s2.jsonl" \
 --family "dense, 6 layers x 152 (2 seeds)" "=124m/dense_6layer_152wide_s1337.jsonl" "=124m/dense_6layer_152wide_s2.jsonl" \
 --family "dense 192 wide, 1496 steps" "192 wide=124m/dense_192wide_1496.jsonl" \
 --family "MST, the best width at each budget (2 seeds)" \
   "192/0.43=124m/mst_192wide_0075x_s1337.jsonl" "=124m/mst_192wide_0075x_s2.jsonl" \
   "256/0.19=124m/mst_256wide_015x.jsonl" "=124m/mst_256wide_015x_s2.jsonl" \
   "448/0.31=124m/mst_448wide_s1337.jsonl" "=124m/mst_448wide_s2.jsonl" \
   "640/0.18=124m/mst_640wide_06x.jsonl" "=124m/mst_640wide_06x_s2.jsonl" \
 --family "MST, GPT-2 124M, peak 0.8 (2 seeds)" "=124m/mst_768wide_s1337.jsonl" "=124m/mst_768wide_s2.jsonl"
python ../../plot.py isoflop --out . --title "docmix, 12 layers, 2500 steps of 32 x 1024 tokens, the same rate schedule" \
 --budget "0.078x dense GPT-2 124M (5.10e15 FLOPs)" 124m/dense_128wide_s1337.jsonl 124m/dense_128wide_s2.jsonl \
   124m/mst_160wide_0075x_s1337.jsonl 124m/mst_160wide_0075x_s2.jsonl 124m/mst_192wide_0075x_s1337.jsonl \
   124m/mst_192wide_0075x_s2.jsonl 124m/mst_224wide_0075x_s1337.jsonl 124m/mst_224wide_0075x_s2.jsonl \
   124m/mst_256wide_0075x.jsonl \
 --budget "0.15x (9.94e15 FLOPs)" 124m/dense_216wide_s1337.jsonl 124m/dense_216wide_s2.jsonl \
   124m/mst_256wide_015x.jsonl 124m/mst_256wide_015x_s2.jsonl 124m/mst_352wide_015x.jsonl \
   124m/mst_352wide_015x_s2.jsonl 124m/mst_448wide_015x.jsonl \
 --budget "0.30x (1.96e16 FLOPs)" 124m/dense_352wide_s1337.jsonl 124m/dense_352wide_s2.jsonl \
   124m/mst_448wide_s1337.jsonl 124m/mst_448wide_s2.jsonl 124m/mst_512wide_s1337.jsonl 124m/mst_512wide_s2.jsonl \
   124m/mst_576wide.jsonl 124m/mst_640wide.jsonl 124m/mst_768wide_s1337.jsonl 124m/mst_768wide_s2.jsonl \
 --budget "0.60x (3.94e16 FLOPs)" 124m/dense_560wide.jsonl 124m/dense_560wide_s2.jsonl 124m/mst_640wide_06x.jsonl \
   124m/mst_640wide_06x_s2.jsonl 124m/mst_704wide_06x.jsonl
six="6 layers, 500-8000 steps: MST 288 wide (peak 0.28) vs dense 224"
twelve="12 layers, 2500 steps: best MST vs dense 12 x 128, 216, 352, 560"
python ../../plot.py regime --out . --title "docmix; each pair: equal counted FLOPs, the same rate schedule, the seeds paired (line: their mean)" \
 --pair "$six" 6layer/mst_288wide_500.jsonl 6layer/dense_224wide_500.jsonl \
 --pair "$six" 6layer/mst_288wide_500_s2.jsonl 6layer/dense_224wide_500_s2.jsonl \
 --pair "$six" 6layer/mst_288wide_2000.jsonl 6layer/dense_224wide_2000.jsonl \
 --pair "$six" 6layer/mst_288wide_2000_s2.jsonl 6layer/dense_224wide_2000_s2.jsonl \
 --pair "$six" 6layer/mst_288wide_8000.jsonl 6layer/dense_224wide_8000.jsonl \
 --pair "6 layers, 500-2000 steps: MST 384 wide (peak 0.56) vs dense 224" 6layer/mst_384wide_500.jsonl 6layer/dense_224wide_500.jsonl \
 --pair "6 layers, 500-2000 steps: MST 384 wide (peak 0.56) vs dense 224" 6layer/mst_384wide_2000.jsonl 6layer/dense_224wide_2000.jsonl \
 --pair "$twelve" 124m/mst_640wide_06x.jsonl 124m/dense_560wide.jsonl \
 --pair "$twelve" 124m/mst_640wide_06x_s2.jsonl 124m/dense_560wide_s2.jsonl \
 --pair "$twelve" 124m/mst_448wide_s1337.jsonl 124m/dense_352wide_s1337.jsonl \
 --pair "$twelve" 124m/mst_448wide_s2.jsonl 124m/dense_352wide_s2.jsonl \
 --pair "$twelve" 124m/mst_256wide_015x.jsonl 124m/dense_216wide_s1337.jsonl \
 --pair "$twelve" 124m/mst_256wide_015x_s2.jsonl 124m/dense_216wide_s2.jsonl \
 --pair "$twelve" 124m/mst_192wide_0075x_s1337.jsonl 124m/dense_128wide_s1337.jsonl \
 --pair "$twelve" 124m/mst_192wide_0075x_s2.jsonl 124m/dense_128wide_s2.jsonl

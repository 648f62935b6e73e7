#!/bin/bash
# Draws frontier.png and regime.png from the metrics files committed here: bash results/docmix/plots.sh
cd "$(dirname "$0")"
python ../../plot.py frontier --out . --reference "dense 2500=124m/dense_2500.jsonl" --title "docmix, GPT-2 124M, 2500 steps of 32 x 1024 tokens" \
 --family "MST, train.py's defaults: peak 0.8, ramp to 3%, to 90% (2 seeds)" "=124m/mst_peak80_ultra90_sparsify03_s1337.jsonl" "=124m/mst_peak80_ultra90_sparsify03_s2.jsonl" \
 --family "MST, peak 0.78 to 92% (2 seeds)" "=124m/mst_peak78_ultra92_sparsify03_s1337.jsonl" "=124m/mst_peak78_ultra92_sparsify03_s2.jsonl" \
 --family "MST, ramp to 5% (2 seeds)" "=124m/mst_peak80_ultra90_sparsify05_s1337.jsonl" "=124m/mst_peak80_ultra90_sparsify05_s2.jsonl" \
 --family "MST, 0.85 from 10% to 85% (2 seeds)" "=124m/mst_hold_lr_peak85_s1337.jsonl" "=124m/mst_hold_lr_peak85_s2.jsonl" \
 --family "MST, the paper's schedule" "=124m/mst_paper.jsonl" \
 --family "dense 124M, fewer steps" "500=124m/dense_500.jsonl" "722=124m/dense_722.jsonl" "1125=124m/dense_1125.jsonl" "1500=124m/dense_1500.jsonl" "2500=124m/dense_2500.jsonl" \
 --family "dense, narrower, 2500 steps (352: 2 seeds)" "256 wide=124m/dense_256wide.jsonl" "352 wide=124m/dense_352wide.jsonl" "=124m/dense_352wide_s2.jsonl" "512 wide=124m/dense_512wide.jsonl"
python ../../plot.py regime --out . --title "MST: train.py's defaults; dense: the same model, fewer steps, equal counted FLOPs" \
 --pair "6x384, 1000 steps" 6x384/regime_v3_mst_1000.jsonl 6x384/regime_v3_dense_309_for_1000.jsonl \
 --pair "6x384, 4000 steps" 6x384/regime_v3_mst_4000_s1337.jsonl 6x384/regime_v3_dense_1180_for_4000_s1337.jsonl \
 --pair "6x384, 4000 steps, seed 2" 6x384/regime_v3_mst_4000_s2.jsonl 6x384/regime_v3_dense_1180_for_4000_s2.jsonl \
 --pair "6x384, 16000 steps" 6x384/regime_v3_mst_16000.jsonl 6x384/regime_v3_dense_4613_for_16000.jsonl \
 --pair "124M, 2500 steps" 124m/mst_peak80_ultra90_sparsify03_s1337.jsonl 124m/dense_722.jsonl \
 --pair "124M, 2500 steps, seed 2" 124m/mst_peak80_ultra90_sparsify03_s2.jsonl 124m/dense_722.jsonl

#!/bin/bash
# Draws the loss curves of the FP8 output layer against the bf16 one from the metrics files committed
# here: bash results/fp8_head/plots.sh. Runs: 300 steps of config/docmix_dense.py and of config/docmix_mst.py
# on GPT-2 124M (--n_embd=768 --n_head=12 --flops_budget=0 --peak_sparsity=0.8), each with --max_iters=300
# --eval_interval=50 --log_interval=10 --eval_iters=20, with --fp8_head=True or without; "rerun" is the same
# seed again (bf16's own run-to-run noise), "seed 2" another seed. mst2500_fp8.jsonl: the whole 2500-step MST
# run with the FP8 head (results/bench_h200.md).
cd "$(dirname "$0")"
for run in dense mst; do
  python ../../plot.py curves --out "$run" --title "docmix, GPT-2 124M, $run, 300 steps: FP8 output layer vs bf16" \
    "bf16=${run}300_bf16.jsonl" "bf16, rerun=${run}300_bf16_rerun.jsonl" "bf16, seed 2=${run}300_bf16_seed2.jsonl" \
    "FP8 head=${run}300_fp8.jsonl"
  rm -f "$run/val_loss_vs_flops.png" "$run/sparsity.png"  # equal FLOPs and schedules: the step plot says it all
done

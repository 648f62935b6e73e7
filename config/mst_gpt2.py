# GPT-2 124M on OpenWebText with Mixed Sparsity Training: train.py's defaults are this run.
#   python prepare.py openwebtext
#   torchrun --standalone --nproc_per_node=8 train.py config/mst_gpt2.py
# 480 sequences of 1024 tokens per step (12 per micro-step x 40 micro-steps, split over the GPUs),
# 600k steps. config/mst_gpt2_paper.py is the paper's own schedule, for comparison.
# On Hopper or Ada GPUs, --fp8_head=True trains the output layer in FP8: 1.09x faster (README, Speed).
# On docmix at 0.078x of dense FLOPs (results/docmix), each family at its tuned rate, this schedule lost
# to a narrower dense model, and won by 0.1 with --density_lr_scaling=True --grown_adam_state=gradient
# --drop_fraction=0.3 --ultra_end=0.7 --restore_end=0.85. Neither is measured at GPT-2 124M's scale and
# peak 0.8, where density-aware rates multiply most layers' rate by 5 or more.
out_dir = "out/mst_gpt2"

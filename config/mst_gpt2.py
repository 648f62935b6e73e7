# GPT-2 124M on OpenWebText with Mixed Sparsity Training: train.py's defaults are this run.
#   python prepare.py openwebtext
#   torchrun --standalone --nproc_per_node=8 train.py config/mst_gpt2.py
# 480 sequences of 1024 tokens per step (12 per micro-step x 40 micro-steps, split over the GPUs),
# 600k steps. config/mst_gpt2_paper.py is the paper's own schedule, for comparison.
# On Hopper or Ada GPUs, --fp8_head=True trains the output layer in FP8: 1.09x faster (README, Speed).
out_dir = "out/mst_gpt2"

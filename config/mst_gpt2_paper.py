# GPT-2 124M on OpenWebText with MST as the paper describes it, before our changes (README,
# "Choices"): a dynamic topology (30% of the live weights swapped every 100 steps, cosine-annealed),
# one learning-rate schedule for the whole run, and sparse attention in the ultra phase only,
# switched back to dense at once when restoration begins.
#   torchrun --standalone --nproc_per_node=8 train.py config/mst_gpt2_paper.py
out_dir = "out/mst_gpt2_paper"
drop_fraction = 0.3
restore_lr = 0.0
hsa_phases = ("ultra",)
hsa_window_follows_sparsity = False

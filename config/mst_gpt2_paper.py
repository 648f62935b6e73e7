# GPT-2 124M on OpenWebText with MST as the paper describes it: a topology that keeps moving (30%
# of the live weights swapped every 100 steps, cosine-annealed) and one learning-rate schedule for
# the whole run. train.py's defaults differ in these two settings only; README, "Does MST deliver?"
# says why.
#   torchrun --standalone --nproc_per_node=8 train.py config/mst_gpt2_paper.py
out_dir = "out/mst_gpt2_paper"
drop_fraction = 0.3
restore_lr = 0.0

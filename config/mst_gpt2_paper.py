# GPT-2 124M on OpenWebText with MST as the paper describes it: a topology that keeps moving (30%
# of the live weights swapped every 100 steps, cosine-annealed), a ramp over the first 10% of the
# run to a peak sparsity of 0.9 held to 80%, and one cosine learning-rate schedule for the whole
# run. train.py's defaults differ in these settings only; the README's "Choices the paper leaves
# open" says why.
#   torchrun --standalone --nproc_per_node=8 train.py config/mst_gpt2_paper.py
out_dir = "out/mst_gpt2_paper"
drop_fraction = 0.3
sparsify_end = 0.1
peak_sparsity = 0.9
ultra_end = 0.8
lr_schedule = "cosine"

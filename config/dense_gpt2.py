# The dense baseline for config/mst_gpt2.py: the same model, data, batch and learning rate.
#   torchrun --standalone --nproc_per_node=8 train.py config/dense_gpt2.py
out_dir = "out/dense_gpt2"
mst = False

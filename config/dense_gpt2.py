# The dense baseline for config/mst_gpt2.py: the same model, data, batch and schedule.
#   torchrun --standalone --nproc_per_node=8 train.py config/dense_gpt2.py
exec(open("config/mst_gpt2.py").read())
out_dir = "out/dense_gpt2"
mst = False

# The dense baseline for config/mst_tiny.py: the same model, data, steps and evaluation.
#   python train.py config/dense_tiny.py
exec(open("config/mst_tiny.py").read())
out_dir = "out/dense_tiny"
mst = False

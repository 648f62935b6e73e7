# The dense baseline for config/mst_tiny.py: the same model, data, steps and evaluation.
#   python train.py config/dense_tiny.py
import os

exec(open(os.path.join(os.path.dirname(__file__), "mst_tiny.py")).read())
out_dir = "out/dense_tiny"
mst = False

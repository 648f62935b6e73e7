# MST on the docmix comparison setup (config/docmix_dense.py), with train.py's MST settings.
#   python train.py config/docmix_mst.py
import os

exec(open(os.path.join(os.path.dirname(__file__), "docmix_dense.py")).read())
out_dir = "out/docmix_mst"
mst = True
update_interval = 50  # 2% of the run, as ΔT = 100 is of a shorter GPT-2 run

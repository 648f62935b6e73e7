# MST on the docmix comparison setup (config/docmix_dense.py), at 0.078x the counted FLOPs of its dense
# GPT-2 124M run (5.0985e15, the count of a dense 12 x 128 model): 192 wide, peak sparsity solved for the
# budget, with the three levers that won there (results/docmix) at their best rate (4.8e-3, bracketed):
# density-aware rates, warm grown weights with a moving topology, and restoration from 70% of the run
# to 85%, so that regrown weights train at the peak rate. Final val loss 2.452 and 2.488 (seeds 1337, 2)
# against 2.569 and 2.583 for the best dense model of equal FLOPs (12 x 128 at 4.8e-3).
#   python train.py config/docmix_mst.py
# Without the levers (the paper's schedule, restoration from 90%) MST 192 wants 2.4e-3 and trails by 0.08.
import os

exec(open(os.path.join(os.path.dirname(__file__), "docmix_dense.py")).read())
out_dir = "out/docmix_mst"
mst = True
update_interval = 50  # 2% of the run, as ΔT = 100 is of a shorter GPT-2 run
n_embd = 192
n_head = 3
flops_budget = 5.0985e15  # 0.078 x the 6.538e16 training FLOPs of config/docmix_dense.py
learning_rate = 4.8e-3
min_lr = 4.8e-4
density_lr_scaling = True
grown_adam_state = "gradient"
drop_fraction = 0.3
ultra_end = 0.7
restore_end = 0.85

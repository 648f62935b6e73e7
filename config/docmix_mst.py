# MST on the docmix comparison setup (config/docmix_dense.py), at 0.078x the counted FLOPs of its dense
# GPT-2 124M run (5.0985e15, the count of a dense 12 x 128 model): 192 wide, peak sparsity solved for the
# budget (0.43), the paper's schedule as train.py runs it, at its best rate there (2.4e-3, bracketed).
# The best dense model of equal FLOPs (12 x 128 at 3.4e-3) is 0.08 ahead; with three levers MST is 0.1
# ahead of it: config/docmix_mst_levers.py (results/docmix). At 0.30x, 448 wide (peak 0.31), MST's best
# rate is 1.2e-3 and dense 12 x 352 is 0.07 ahead, as at 0.078x:
#   python train.py config/docmix_mst.py
#   python train.py config/docmix_mst.py --flops_budget=1.9614e16 --n_embd=448 --n_head=7 \
#     --learning_rate=1.2e-3 --min_lr=1.2e-4
import os

exec(open(os.path.join(os.path.dirname(__file__), "docmix_dense.py")).read())
out_dir = "out/docmix_mst"
mst = True
update_interval = 50  # 2% of the run, as ΔT = 100 is of a shorter GPT-2 run
n_embd = 192
n_head = 3
flops_budget = 5.0985e15  # 0.078 x the 6.538e16 training FLOPs of config/docmix_dense.py
learning_rate = 2.4e-3
min_lr = 2.4e-4

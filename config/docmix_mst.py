# MST on the docmix comparison setup (config/docmix_dense.py) at 0.30x the counted FLOPs of its dense
# GPT-2 124M run: the best point of the iso-FLOP map in results/docmix, a 448-wide model whose peak
# sparsity (0.31) train.py solves for the budget. It ties the 352-wide dense model of equal FLOPs;
# it does not beat it. MST wins at the smallest budget tried, 0.078x: --n_embd=192 --n_head=3
# --flops_budget=5.0985e15 beats every dense model of equal FLOPs on both seeds.
#   python train.py config/docmix_mst.py
import os

exec(open(os.path.join(os.path.dirname(__file__), "docmix_dense.py")).read())
out_dir = "out/docmix_mst"
mst = True
update_interval = 50  # 2% of the run, as ΔT = 100 is of a shorter GPT-2 run
n_embd = 448
n_head = 7
flops_budget = 0.30 * 6.538e16  # config/docmix_dense.py counts 6.538e16 training FLOPs

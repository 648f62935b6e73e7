# MST on the docmix comparison setup (config/docmix_dense.py), with the defaults a user should
# run at this budget: a short warm-up, a long ultra-sparse phase with sparse attention, and a
# restoration that regrows early.
#   python train.py config/docmix_mst.py
exec(open("config/docmix_dense.py").read())
out_dir = "out/docmix_mst"
mst = True
sparsify_end = 250
ultra_end = 2000
restore_end = 2500
update_interval = 50
sparse_embedding = True  # the tied embedding / lm_head is 31% of the FLOPs: left dense, MST cannot reach 0.3x

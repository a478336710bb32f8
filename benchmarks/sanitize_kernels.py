"""Every Triton kernel once on CUDA, on small ragged inputs with the edge cases (empty and 1-token items, odd D,
padded batches with masks, doc_index, top-k blocks, sparse hash tables), for ``compute-sanitizer`` (memcheck):
an out-of-bounds load or store in any launch fails the device check (benchmarks/gpu_check.sh)."""

import torch

import fusedscore as fs
from fusedscore import kernels as K

assert torch.cuda.is_available(), "needs a CUDA device"
g = torch.Generator().manual_seed(0)
dev = "cuda"


def mv(lengths, dim, dtype):
    return fs.MultiVectors.from_list([torch.randn(n, dim, generator=g).to(dtype) for n in lengths]).to(dev)


launches = 0
for dtype in (torch.float16, torch.bfloat16, torch.float32):
    for dim in (7, 128, 129):
        q, d = mv([32, 0, 1, 130, 5], dim, dtype), mv([0, 1, 63, 64, 65, 300, 7], dim, dtype)
        qi = torch.tensor([0, 2, 3, 3, 4, 1, 0], device=dev)
        ids = torch.tensor([6, 0, 5, 5, 2, 1, 3], device=dev)
        for reduce in ("sum", "mean"):
            K.maxsim(q, d, None, reduce)
            K.maxsim(q, d, qi, reduce)
            K.maxsim(q, d, qi, reduce, ids)
            launches += 3
        K.maxsim_topk(q, d, 3, "sum", block_docs=2)
        qp, qm = q.to_padded()
        dp, dm = d.to_padded()
        K.maxsim_padded(qp.contiguous(), qm, dp.contiguous(), dm)
        K.maxsim_padded(qp.contiguous(), None, dp.contiguous(), d_lengths=d.lengths)
        launches += 3
for dtype in (torch.float32, torch.float16):
    sq = fs.SparseVectors.from_dicts([{1: 1.0, 7: 2.0}, {}, {i: 0.5 for i in range(40)}], vocab_size=50000,
                                     dtype=dtype).to(dev)
    sd = fs.SparseVectors.from_dicts([{7: 1.0}, {}, {i: 1.0 for i in range(0, 200, 3)}], vocab_size=50000,
                                     dtype=dtype).to(dev)
    K.sparse_dot(sq, sd, None)
    K.sparse_dot(sq, sd, torch.tensor([0, 1, 2], device=dev))
    launches += 2
torch.cuda.synchronize()
print("sanitize_kernels: launches", launches, "ok")

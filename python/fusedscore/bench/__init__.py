"""The benchmark harness (``fusedscore bench``): kernels against baselines and installed peers.

- ``cases``: the workloads as data and their seeded synthetic inputs.
- ``timing``: warm-up, median with p20/p80 (perf_counter on CPU, ``triton.testing.do_bench`` on GPU).
- ``machine``: device description, measured matmul FLOP rate and copy bandwidth, the roofline floor.
- ``maxsim`` / ``sparse_dot`` / ``dense_dot``: the implementations timed per op; ``impls``: their contract;
  ``recall``: the MUVERA recall check (FDE candidates against the exact MaxSim top-k).
- ``runner``: runs cases into one JSON-able document; ``report``: text and markdown tables;
  ``plots``: PNG figures; ``cli``: the ``bench`` and ``report`` subcommands.
- ``encoders`` / ``rerank``: encode throughput and end-to-end reranking (``--encoders``, ``--rerank``) against
  the peer libraries installed here. Repo-only benchmarks (Ray, pylate in a child interpreter) live in a
  checkout's ``benchmarks/``.

Importing this package is cheap: peers, scipy, matplotlib and triton load only when a case needs them.
"""

"""`make bench`: every benchmark of the project, each printing its figures."""
from bench import advisor_bench, history_bench, scale_bench, sidecar_bench, snapshot_bench

snapshot_bench.main()
history_bench.main()
advisor_bench.main()
scale_bench.main((50,))
sidecar_bench.main()

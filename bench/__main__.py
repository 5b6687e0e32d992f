"""`make bench`: every benchmark of the project, each printing its figures."""
from bench import advisor_bench, history_bench, sidecar_bench, snapshot_bench

snapshot_bench.main()
history_bench.main()
advisor_bench.main()
sidecar_bench.main()

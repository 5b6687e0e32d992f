"""`make bench`: every benchmark of the project, each printing its figures."""
from bench import snapshot_bench

snapshot_bench.main()

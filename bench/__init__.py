"""OptiSchema's own benchmarks (`make bench`): each module prints its figures."""

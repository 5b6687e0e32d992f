"""`make demo`: OptiSchema end to end on a throwaway cluster and its own workload."""

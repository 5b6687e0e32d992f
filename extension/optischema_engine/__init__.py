"""OptiSchema engine: the what-if index advisor behind optischema.recommend().

Standard library only: it runs inside PostgreSQL through PL/Python and in the
sidecar through psycopg, always behind the narrow `db.Database` interface.
"""
from .advisor import advise
from .model import (Activity, AdviceResult, IndexActivity, Recommendation, Settings, Skipped,
                    TableActivity, WorkloadQuery)

__all__ = ["advise", "Activity", "AdviceResult", "IndexActivity", "Recommendation", "Settings",
           "Skipped", "TableActivity", "WorkloadQuery"]

"""OptiSchema engine: the what-if index advisor behind optischema.recommend().

Standard library only: it runs inside PostgreSQL through PL/Python and in the
sidecar through psycopg, always behind the narrow `db.Database` interface.
"""
# The extension version this engine belongs to: the SQL of that version, and
# only it, imports it (optischema._load_engine()).
__version__ = "0.2.0"

from .advisor import advise
from .model import (Activity, AdviceResult, IndexActivity, Recommendation, Settings, Skipped,
                    TableActivity, WorkloadQuery)

__all__ = ["advise", "Activity", "AdviceResult", "IndexActivity", "Recommendation", "Settings",
           "Skipped", "TableActivity", "WorkloadQuery"]

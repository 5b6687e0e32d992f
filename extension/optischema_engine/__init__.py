"""OptiSchema engine: the what-if index advisor behind optischema.recommend().

The standard library and pglast (libpg_query: PostgreSQL's own parser; inside the
database Debian's python3-pglast, 5.x, in the sidecar PyPI's, up to 7.x: only the API
both have is used): it runs inside PostgreSQL through PL/Python and in the sidecar
through psycopg, always behind the narrow `db.Database` interface.
"""
# The extension version this engine belongs to: the SQL of that version, and
# only it, imports it (optischema._load_engine()).
__version__ = "0.2.0"

from .advisor import advise
from .model import (Activity, AdviceResult, IndexActivity, Recommendation, Settings, Skipped,
                    TableActivity, WorkloadQuery)

__all__ = ["advise", "Activity", "AdviceResult", "IndexActivity", "Recommendation", "Settings",
           "Skipped", "TableActivity", "WorkloadQuery"]

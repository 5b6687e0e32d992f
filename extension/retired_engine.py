"""The engine of OptiSchema @OLDVERSION@, retired by the installation of @EXTVERSION@.

make install puts this file where the SQL of @OLDVERSION@ imports its engine
from. A database whose extension is still at @OLDVERSION@ gets a clear error
that says how to update, never the engine of another version."""
import plpy

plpy.error("OptiSchema's SQL in this database is version @OLDVERSION@, but the installed package is @EXTVERSION@",
           detail="The engine of @OLDVERSION@ was replaced when @EXTVERSION@ was installed; "
                  "the SQL of one version never runs with the engine of another.",
           hint="Run in this database: ALTER EXTENSION optischema UPDATE;",
           sqlstate="55000")

"""The sidecar package ships the plain install scripts (optischema-sidecar install and
upgrade), built at package build time by the script that builds the extension's, from
the same sql/ sources (scripts/build-sql.sh plain). Everything else is in pyproject.toml."""
import os
import re
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildPlainSQL(build_py):
    def run(self) -> None:
        super().run()
        version = re.search(r"default_version = '([^']+)'", (ROOT / "extension/optischema.control").read_text())[1]
        out = Path(self.build_lib).resolve() / "optischema_sidecar" / "sql"
        out.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "EXTVERSION": version, "ENGINE_BASE": "(none: no PL/Python in a plain install)"}
        build = str(ROOT / "scripts" / "build-sql.sh")
        subprocess.run([build, "plain", str(out / f"optischema--{version}.sql")], env=env, check=True)
        # upgrades from the versions that had a plain install (as in the Makefile: not 0.1.0)
        for steps in sorted(s for s in (ROOT / "sql" / "upgrades").glob(f"*--{version}.sql")
                            if not s.name.startswith("0.1.0--")):
            subprocess.run([build, "plain-upgrade", str(out / f"optischema--{steps.name}"), str(steps)],
                           env=env, check=True)


setup(cmdclass={"build_py": BuildPlainSQL})

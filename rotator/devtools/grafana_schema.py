"""Type-check a Grafana dashboard JSON against ``@grafana/schema``'s ``Dashboard`` type with
TypeScript: the schema Grafana itself is generated from, without a Grafana server."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "rotator-dashboard.json"
TSCONFIG = {
    "compilerOptions": {
        "strict": True,
        "noEmit": True,
        "module": "nodenext",
        "moduleResolution": "nodenext",
        "target": "es2022",
        "skipLibCheck": True,
        "typeRoots": [],
    },
    "files": ["check.ts"],
}


def check(schema_dir: Path, dashboard: str) -> tuple[bool, str]:
    """(ok, tsc's output) for ``dashboard`` (JSON text); ``schema_dir`` has node_modules with
    typescript and @grafana/schema."""
    json.loads(dashboard)  # JSON first: tsc would accept a TypeScript-only literal
    with tempfile.TemporaryDirectory(dir=schema_dir) as work:
        Path(work, "check.ts").write_text(
            "import type { Dashboard } from '@grafana/schema';\n"
            f"const dashboard: Dashboard = {dashboard};\nexport default dashboard;\n"
        )
        Path(work, "tsconfig.json").write_text(json.dumps(TSCONFIG))
        tsc = schema_dir.resolve() / "node_modules" / ".bin" / "tsc"
        done = subprocess.run(
            [str(tsc), "-p", work], capture_output=True, text=True, timeout=300, check=False
        )
    return done.returncode == 0, done.stdout + done.stderr


def main() -> None:
    ok, output = check(Path(sys.argv[1]), DASHBOARD.read_text())
    print(output or f"{DASHBOARD.relative_to(REPO)}: a valid Grafana Dashboard")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

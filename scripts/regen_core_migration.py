"""Development aid while the schema is unreleased: rewrite revision 0003 from the models.

Starts a throwaway embedded PostgreSQL, applies 0001-0002, and autogenerates 0003 afresh.
Retire this once a later revision exists.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from whatwut.db.embedded import sqlalchemy_url, start_embedded, stop_embedded
from whatwut.db.migrate import MIGRATIONS_DIR, autogenerate, upgrade_to_head


def main() -> None:
    versions = MIGRATIONS_DIR / "versions"
    later = sorted(p.name for p in versions.glob("0*.py") if p.name[:4] > "0003")
    if later:
        sys.exit(f"revisions after 0003 exist ({later}); write a new revision instead")
    for path in versions.glob("0003_*.py"):
        path.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        url = sqlalchemy_url(start_embedded(Path(tmp)))
        upgrade_to_head(url)
        autogenerate(url, "core helpdesk schema", rev_id="0003")
        stop_embedded(Path(tmp))
    print("rewrote", next(versions.glob("0003_*.py")))


if __name__ == "__main__":
    main()

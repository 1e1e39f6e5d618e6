"""Write docs/api.md from WhatWut's and Wacanda's OpenAPI documents, so the reference cannot drift.

`tests/test_docs.py` fails when the committed file differs from what this prints; run
`.venv/bin/python scripts/gen_api_docs.py` after changing a route.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from wacanda.app import create_app as create_wacanda_app
from wacanda.settings import Settings as WacandaSettings
from whatwut.app import create_app
from whatwut.settings import Settings

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"

INTRO = """# HTTP API

Generated from the app's OpenAPI document by `scripts/gen_api_docs.py` (the live document is
served at `/openapi.json`, with an explorer at `/docs`). Do not edit by hand.

Conventions:

- JSON in and out. Errors are `application/problem+json` (RFC 9457): `type`, `title`, `status`,
  `detail`, and `field` naming the offending input where there is one; validation errors also
  list every problem in `errors`.
- Authentication: `POST /api/v1/auth/login` returns a bearer token; send it as
  `Authorization: Bearer <token>`. Personal access tokens and account API keys work the same way.
  Browsers use the `whatwut_session` cookie, and send `X-CSRF-Token` on unsafe methods.
- Helpdesk resources live under `/api/v1/accounts/{account_id}/…`. Another account's ids answer
  404, exactly like ids that do not exist.
- Lists answer `{"data": [...], "meta": {"next_cursor": str | null}}`; pass `cursor` (or
  `before` for messages) to get the next page.

The second part, [Wacanda](#wacanda-api), is the knowledge base and AI agent's own API
(`wacanda serve`, port 3001 by default; `whatwut serve` starts it on its port + 1).
"""

WACANDA_INTRO = """
---

# Wacanda API

Wacanda is deployed beside WhatWut (or anywhere that reaches it) and talks to it only over HTTP.
Every route needs `Authorization: Bearer <WACANDA_API_KEY>` and acts for the account named by
`X-Account-Id` (ADR 0006), except `/health` and `/webhooks/whatwut`, which WhatWut signs with the
bot's secret instead (ADR 0008). WhatWut proxies the knowledge base to its own users under
`/api/knowledge-base/*`. Errors are `application/problem+json` as above.
"""


def _schema_name(schema: dict[str, Any] | None) -> str:
    if not schema:
        return ""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(_schema_name(s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"list[{_schema_name(schema.get('items'))}]"
    return str(schema.get("type", ""))


def render(spec: dict[str, Any], intro: str = INTRO) -> str:
    lines = [intro]
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            tag = (operation.get("tags") or ["other"])[0]
            by_tag.setdefault(tag, []).append((path, method.upper(), operation))
    for tag in sorted(by_tag):
        lines.append(f"\n## {tag}\n")
        for path, method, operation in sorted(by_tag[tag], key=lambda item: (item[0], item[1])):
            lines.append(f"### `{method} {path}`\n")
            summary = operation.get("summary") or ""
            if summary:
                lines.append(summary + "\n")
            params = [p for p in operation.get("parameters", []) if p["in"] in ("query", "header")]
            if params:
                lines.append("| parameter | in | type | required |")
                lines.append("| --- | --- | --- | --- |")
                for param in params:
                    required = "yes" if param.get("required") else "no"
                    kind = _schema_name(param.get("schema"))
                    lines.append(f"| `{param['name']}` | {param['in']} | {kind} | {required} |")
                lines.append("")
            body = operation.get("requestBody", {}).get("content", {})
            for media, content in body.items():
                lines.append(f"Body ({media}): `{_schema_name(content.get('schema'))}`\n")
            ok = [code for code in operation.get("responses", {}) if code.startswith("2")]
            for code in ok:
                content = operation["responses"][code].get("content", {})
                schema = next(iter(content.values()), {}).get("schema") if content else None
                shown = _schema_name(schema)
                lines.append(f"Returns {code}" + (f": `{shown}`" if shown else "") + "\n")
    return "\n".join(lines).rstrip() + "\n"


def generate() -> str:
    unused = "postgresql://unused@localhost/unused"
    app = create_app(Settings(DATABASE_URL=unused))  # type: ignore[call-arg]
    wacanda = create_wacanda_app(WacandaSettings(DATABASE_URL=unused))  # type: ignore[call-arg]
    return render(app.openapi()) + render(wacanda.openapi(), WACANDA_INTRO)


def main() -> None:
    text = generate()
    if "--check" in sys.argv:
        sys.exit(0 if DOC.read_text() == text else 1)
    DOC.write_text(text)
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()

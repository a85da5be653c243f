"""Odd input typed or piped into the console: bytes that are not UTF-8, a paste by mistake."""

from __future__ import annotations

import asyncio
import io

from bot.console.session import read_lines
from tests.console.driver import Console, audit_log


async def test_a_line_that_is_not_utf8_is_read_and_the_rest_still_runs() -> None:
    source = io.TextIOWrapper(io.BytesIO(b"help\n# caf\xe9\nhealth\n"), encoding="utf-8")
    seen = []
    async with asyncio.timeout(5):
        async for line in read_lines(source, None, io.StringIO()):
            seen.append(line)
    assert seen == ["help\n", "# caf\ufffd\n", "health\n"]


async def test_undecodable_bytes_are_a_refusal_and_audited(console: Console) -> None:
    # stdin in the C locale decodes a stray byte as a surrogate
    reply = await console.run("deploy caf\udce9 v2")
    assert reply.startswith("✘ deploy: 'caf\ufffd' is not a valid service name"), reply
    entries = await audit_log(console.layer.clients.config)
    assert [(e["command"], e["outcome"]) for e in entries] == [("deploy caf\ufffd v2", "refused")]


async def test_a_pasted_huge_line_is_refused_briefly(console: Console) -> None:
    reply = await console.run("x" * 500_000)
    assert reply == "✘ command too long (500000 characters; at most 2000)"
    (entry,) = await audit_log(console.layer.clients.config)
    assert entry["outcome"] == "refused"
    assert len(entry["command"]) == 2000 and entry["command"].endswith("x…")

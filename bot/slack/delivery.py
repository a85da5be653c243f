"""Delivery ids: what makes one Slack delivery the same delivery when it comes again.

The command layer claims each id once in its state file, so a redelivery runs nothing, also
after a restart. bolt runs a redelivered payload again like a new one, and in Socket Mode even
the first delivery carries a retry number, so the ids come from the payload itself:

- an event (a mention, a reaction added or removed): the envelope's `event_id`, which Slack
  keeps across its retries; taking a reaction off and putting it back are new events;
- a slash command or a button click: its `trigger_id`, one per invocation, which a redelivery of
  the same payload repeats.
"""

from __future__ import annotations

from typing import Any


def of_event(body: dict[str, Any]) -> str | None:
    event_id = body.get("event_id")
    return f"event:{event_id}" if event_id else None


def of_trigger(payload: dict[str, Any]) -> str | None:
    trigger = payload.get("trigger_id")
    return f"trigger:{trigger}" if trigger else None

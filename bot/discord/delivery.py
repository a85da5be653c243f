"""Delivery ids: what makes one Discord delivery the same delivery when it comes again.

The command layer claims each id once in its state file, so a repeated delivery runs nothing,
also after a restart:

- an interaction (slash command, button click, autocomplete is never claimed): its id; Discord
  never reuses one, and a repeated INTERACTION_CREATE carries the same id;
- a prefix message command: the message id (an edit of the message is not a new command);
- a reaction: the gateway session and sequence number of its event. A RESUME replays missed
  events with their original sequence numbers, so a replay is recognised, while taking a
  reaction off and putting it back later is a new event with a new number and counts again.
  Votes are idempotent in the approval engine too (a second approve from one person is refused
  and changes nothing), which covers reactions counted while reconciling after a reconnect.
"""

from __future__ import annotations


def of_interaction(interaction_id: int) -> str:
    return f"interaction:{interaction_id}"


def of_message(message_id: int) -> str:
    return f"message:{message_id}"


def of_reaction(session_id: str, sequence: int, message_id: int, added: bool) -> str:
    return f"reaction:{session_id}:{sequence}:{message_id}:{'add' if added else 'remove'}"


def of_reconciled(session_id: str, message_id: int, user_id: int, emoji: str) -> str:
    """A reaction found on a request message after a reconnect (once per session)."""
    return f"reconciled:{session_id}:{message_id}:{user_id}:{emoji}"

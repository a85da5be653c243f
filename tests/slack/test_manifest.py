"""deploy/slack-app-manifest.yaml: valid by the rules of Slack's manifest schema, and exactly
what the bot registers: every command and event it listens to, with the scopes it uses."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.slack.slash import EVENTS, SCOPES, SLASH_COMMANDS
from tests.fakes.slack import FakeSlack
from tests.slack.conftest import ALICE, OPS, Bot
from tests.slack.manifest_rules import Manifest

MANIFEST = Path(__file__).parents[2] / "deploy" / "slack-app-manifest.yaml"


def manifest() -> dict[str, Any]:
    return yaml.safe_load(MANIFEST.read_text())


def test_the_manifest_keeps_the_rules_of_slacks_schema() -> None:
    checked = Manifest.model_validate(manifest())
    assert checked.settings is not None and checked.settings.socket_mode_enabled is True
    assert checked.settings.interactivity is not None
    assert checked.settings.interactivity.is_enabled  # buttons need it


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("display_information", "name"), "h" * 36),  # at most 35
        (("display_information", "background_color"), "blue"),
        (("features", "slash_commands", 0, "command"), "deploy"),  # must start with /
        (("features", "slash_commands", 0, "command"), "/" + "d" * 32),  # at most 32
        (("features", "slash_commands", 0, "description"), ""),
        (("features", "bot_user", "always_online"), "yes"),
        (("settings", "interactivity", "request_url"), "slack.example/events"),
        (("settings", "event_subscriptions", "bot_events"), ["app_mention", "app_mention"]),
        (("settings", "socket_mode"), True),  # no such key
    ],
)
def test_the_rules_refuse_what_slack_would(path: tuple[Any, ...], value: Any) -> None:
    broken = copy.deepcopy(manifest())
    node = broken
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ValidationError):
        Manifest.model_validate(broken)


def test_required_keys_are_required() -> None:
    for drop in (("display_information",), ("features", "slash_commands", 0, "description")):
        broken = copy.deepcopy(manifest())
        node = broken
        for key in drop[:-1]:
            node = node[key]
        del node[drop[-1]]
        with pytest.raises(ValidationError):
            Manifest.model_validate(broken)


def test_the_manifest_lists_exactly_what_the_bot_registers_and_uses() -> None:
    data = manifest()
    commands = data["features"]["slash_commands"]
    assert [(c["command"], c["description"], c["usage_hint"]) for c in commands] == [
        (c.name, c.description, c.usage_hint) for c in SLASH_COMMANDS
    ]
    assert data["settings"]["event_subscriptions"]["bot_events"] == list(EVENTS)
    assert data["oauth_config"]["scopes"]["bot"] == list(SCOPES)


async def test_the_bolt_app_answers_every_command_and_event_of_the_manifest_and_no_other(
    bot: Bot, slack: FakeSlack
) -> None:
    data = manifest()
    for command in data["features"]["slash_commands"]:
        ack = await slack.ack_of(await slack.command(command["command"], "help", user=ALICE))
        assert ack.get("response_type") in ("in_channel", "ephemeral"), (command, ack)
    root = slack.add_message(OPS, ALICE, "hello")
    events = {
        "app_mention": slack.mention_event(ALICE, "help"),
        "reaction_added": slack.reaction_event(ALICE, root, "eyes"),
        "reaction_removed": slack.reaction_event(ALICE, root, "eyes", removed=True),
    }
    for name in data["settings"]["event_subscriptions"]["bot_events"]:
        await slack.ack_of(await slack.event(events[name]))  # an event not listened to: no ack
    app = bot.adapter.app
    assert app is not None
    unknown = [
        slack.command_payload("/kubectl", "get pods", user=ALICE),
        slack.event_body({"type": "message", "user": ALICE, "channel": OPS, "text": "hi"}),
    ]
    for body in unknown:
        answer = await app.async_dispatch(AsyncBoltRequest(body=body, mode="socket_mode"))
        assert answer.status == 404, body
    await bot.idle()

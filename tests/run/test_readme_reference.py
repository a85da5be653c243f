"""The README's operator guide stays true: every setting is listed, and its policy example loads."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import yaml
from pydantic import BaseModel

from bot.settings import BotConfig

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def env_names(model: type[BaseModel], prefix: str = "HOLMBOT_") -> Iterator[str]:
    for name, field in model.model_fields.items():
        section = field.annotation
        if isinstance(section, type) and issubclass(section, BaseModel):
            yield from env_names(section, f"{prefix}{name.upper()}__")
        else:
            yield f"{prefix}{name.upper()}"


def test_every_setting_is_in_the_readme_and_nothing_else() -> None:
    listed = set(re.findall(r"^\| `(HOLMBOT_[A-Z_]+)` \|", README, flags=re.MULTILINE))
    assert listed == set(env_names(BotConfig))


def test_the_policy_example_is_a_valid_config() -> None:
    example = README.split("### Policy example", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    config = BotConfig(**yaml.safe_load(example))
    assert config.access.protected_approval.approvers == ("admin",)
    assert config.protected_services == ["postgres", "gateway"]


def test_the_discord_invite_asks_for_exactly_the_permissions_the_bot_has() -> None:
    from bot.discord.options import PERMISSIONS

    docs = (Path(__file__).resolve().parents[2] / "docs" / "discord.md").read_text()
    for text in (README, docs):
        [asked] = set(re.findall(r"oauth2/authorize\?\S*permissions=(\d+)", text))
        assert int(asked) == PERMISSIONS.value
    section = README.split("### Discord", 1)[1].split("### Settings", 1)[0]
    bits = [int(bit) for bit in re.findall(r"^\s*\| `1 << (\d+)` \|", section, flags=re.MULTILINE)]
    assert sum(1 << bit for bit in bits) == PERMISSIONS.value

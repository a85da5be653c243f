"""The rules of Slack's app manifest schema (slackapi/manifest-schema, manifest.schema 1.0.0)
for the parts holmbot's manifest uses, as models: required keys, lengths, patterns, types, and
no keys the schema does not know (its `additionalProperties: false`). Sections holmbot does not
use are only typed as objects or lists."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

Url = Annotated[str, Field(pattern=r"^https?://", max_length=3000)]
LongUrl = Annotated[str, Field(pattern=r"^https?://", max_length=3500)]
Name50 = Annotated[str, Field(max_length=50)]


class _Rules(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


def _unique(values: list[str] | None) -> list[str] | None:
    if values is not None and len(set(values)) != len(values):
        raise ValueError("items must be unique")
    return values


class DisplayInformation(_Rules):
    name: Annotated[str, Field(min_length=1, max_length=35)]
    description: Annotated[str, Field(min_length=1, max_length=140)] | None = None
    background_color: (
        Annotated[
            str, Field(min_length=4, max_length=7, pattern=r"^#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?$")
        ]
        | None
    ) = None
    long_description: Annotated[str, Field(min_length=175, max_length=4000)] | None = None


class BotUser(_Rules):
    display_name: Annotated[str, Field(min_length=1, max_length=80)]
    always_online: bool | None = None


class SlashCommand(_Rules):
    command: Annotated[str, Field(min_length=2, max_length=32, pattern=r"^/")]
    description: Annotated[str, Field(min_length=1, max_length=2000)]
    url: Url | None = None
    usage_hint: Annotated[str, Field(min_length=1, max_length=1000)] | None = None
    should_escape: bool = False


class Features(_Rules):
    bot_user: BotUser | None = None
    slash_commands: Annotated[list[SlashCommand], Field(min_length=1, max_length=50)] | None = None
    app_home: dict[str, Any] | None = None
    functions: dict[str, Any] | None = None
    shortcuts: list[dict[str, Any]] | None = None
    workflow_steps: list[dict[str, Any]] | None = None
    unfurl_domains: list[str] | None = None
    assistant_view: dict[str, Any] | None = None
    agent_view: dict[str, Any] | None = None


ScopeList = Annotated[list[Name50], Field(max_length=255)]


class Scopes(_Rules):
    user: ScopeList | None = None
    bot: ScopeList | None = None
    user_optional: ScopeList | None = None
    bot_optional: ScopeList | None = None


class OAuthConfig(_Rules):
    redirect_urls: list[str] | None = None
    scopes: Scopes | None = None
    token_management_enabled: bool | None = None
    pkce_enabled: bool | None = None


EventList = Annotated[list[Name50], Field(max_length=100)]


class EventSubscriptions(_Rules):
    request_url: LongUrl | None = None
    user_events: EventList | None = None
    bot_events: EventList | None = None
    metadata_subscriptions: list[dict[str, Any]] | None = None

    _unique_events = field_validator("user_events", "bot_events")(_unique)


class Interactivity(_Rules):
    is_enabled: bool
    request_url: LongUrl | None = None
    message_menu_options_url: LongUrl | None = None


class Settings(_Rules):
    allowed_ip_address_ranges: list[str] | None = None
    event_subscriptions: EventSubscriptions | None = None
    incoming_webhooks: dict[str, Any] | None = None
    interactivity: Interactivity | None = None
    org_deploy_enabled: bool | None = None
    socket_mode_enabled: bool | None = None
    is_hosted: bool | None = None
    token_rotation_enabled: bool | None = None
    siws_links: dict[str, Any] | None = None
    hermes_app_type: str | None = None
    function_runtime: str | None = None
    is_mcp_enabled: bool | None = None


class Manifest(_Rules):
    schema_: str | None = Field(default=None, alias="$schema")
    metadata: dict[str, int] | None = Field(default=None, alias="_metadata")
    display_information: DisplayInformation
    features: Features | None = None
    oauth_config: OAuthConfig | None = None
    settings: Settings | None = None
    mcp_servers: list[dict[str, Any]] | None = None

"""A local Discord: the REST API and the gateway on 127.0.0.1, spoken to by the unmodified
discord.py, recording every call so tests assert what the bot posted, edited and reacted.

REST (`{url}/api/v10/...`), the routes discord.py calls for holmbot: `users/@me`,
`oauth2/applications/@me`, `gateway/bot`, `applications/{app}/guilds/{guild}/commands` (GET,
PUT), `channels/{id}/messages` (POST as JSON or multipart with `payload_json` and `files[n]`,
GET, PATCH), a message's reactions (PUT and DELETE `@me`, GET the users),
`guilds/{id}/members/{id}`, `interactions/{id}/{token}/callback`, and the interaction webhook
(`webhooks/{app}/{token}`: followups, `messages/@original` GET, PATCH, DELETE). Bodies are
checked against Discord's limits (content 2000, 10 embeds, title 256, description 4096, 25
fields of 256/1024, footer 2048, 6000 in all, 5 rows of 5 buttons, custom_id 1-100) and refused
with 400 code 50035 as Discord does. JSON answers carry exactly `Content-Type:
application/json` (discord.py parses nothing else).

Rate limits: every answer carries `X-RateLimit-Limit/-Remaining/-Reset/-Reset-After/-Bucket`
for a per-route, per-channel window (`limit` calls per `window` seconds); going over it, and a
configurable share of message edits (`edit_429_share`), is answered 429 with `Retry-After`, a
`retry_after` body and `Via` (discord.py takes a 429 without `Via` for a Cloudflare ban). Edits
of messages older than `edit_cap_after` seconds are refused with code 30046.

Interactions: answered once (a second answer: 400 code 40060) and within `interaction_deadline`
seconds (later: 404 code 10062); a deferral ("thinking") is a message the `@original` edit
fills in.

Gateway (`ws://127.0.0.1:PORT/gateway`, uncompressed JSON text frames): HELLO (op 10);
heartbeat (op 1) answered with op 11; IDENTIFY (op 2) answered with READY (`session_id`,
`resume_gateway_url`, `application`) and one GUILD_CREATE with the channels, roles and members;
the message content intent (1 << 15) asked for without `content_intent_allowed` closes with
4014, and without the intent a message that does not mention the bot arrives with empty
content. Dispatches are numbered per session and kept, so `drop()` followed by the client's
RESUME (op 6) replays what it missed (and `replay_extra` events it had already seen), then
RESUMED; with `resumable` off a RESUME is answered INVALID_SESSION (op 9, false). While `gate`
is cleared, IDENTIFY and RESUME wait: the bot stays disconnected, and what users do meanwhile
is kept for the session (replayed on RESUME, lost if it cannot resume).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import secrets
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

from sandbox.serving import serve_app

TOKEN = "holmbot-discord-test-token"
APP_ID = 910000000000000001
BOT_ID = APP_ID  # the bot user of an application has the application's id
GUILD_ID = 920000000000000001
DISCORD_EPOCH_MS = 1420070400000
CONTENT_INTENT = 1 << 15
EPHEMERAL = 1 << 6
LOADING = 1 << 7
API = "/api/v10"
JSON = "application/json"
ROUTE_PARAMS = {
    "channels": "{channel_id}",
    "guilds": "{guild_id}",
    "messages": "{message_id}",
    "members": "{user_id}",
    "reactions": "{emoji}",
    "applications": "{application_id}",
    "interactions": "{interaction_id}",
    "webhooks": "{webhook_id}",
    "commands": "{command_id}",
}
LIMITS = {"content": 2000, "title": 256, "description": 4096, "fields": 25, "field_name": 256}
LIMITS |= {"field_value": 1024, "footer": 2048, "embeds": 10, "embed_total": 6000}


def snowflake_at(ms: float, increment: int) -> int:
    return (int(ms) - DISCORD_EPOCH_MS) << 22 | (increment & 0xFFF)


def _iso(when: datetime | None = None) -> str:
    return (when or datetime.now(UTC)).isoformat()


def respond(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON answer with exactly `Content-Type: application/json`."""
    body = b"" if data is None else json.dumps(data).encode()
    return web.Response(body=body, status=status, headers={"Content-Type": JSON, **(headers or {})})


class DiscordError(Exception):
    """Answered as Discord answers errors: `{"code", "message"}` with an HTTP status."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


# --- the guild, its messages and what the bot did -------------------------------------------


@dataclass
class Member:
    id: int
    name: str
    roles: list[int] = field(default_factory=list)
    bot: bool = False

    def user(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "username": self.name,
            "global_name": self.name,
            "discriminator": "0",
            "avatar": None,
            "bot": self.bot,
        }

    def member(self) -> dict[str, Any]:
        return {
            "user": self.user(),
            "roles": [str(role) for role in self.roles],
            "joined_at": _iso(),
            "nick": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "permissions": "0",
        }


@dataclass
class Channel:
    id: int
    name: str
    parent_id: int | None = None  # a thread's channel

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "guild_id": str(GUILD_ID),
            "name": self.name,
            "type": 0,
            "position": 0,
            "permission_overwrites": [],
            "nsfw": False,
            "parent_id": None,
            "topic": None,
            "rate_limit_per_user": 0,
        }
        if self.parent_id is not None:
            data |= {"type": 11, "parent_id": str(self.parent_id), "owner_id": str(BOT_ID)}
            data |= {"message_count": 0, "member_count": 1, "total_message_sent": 0}
            data["thread_metadata"] = {
                "archived": False,
                "auto_archive_duration": 1440,
                "archive_timestamp": _iso(),
                "locked": False,
            }
        return data


@dataclass
class File:
    id: int
    filename: str
    content: bytes


@dataclass
class Message:
    """A message in a channel, with every version it had."""

    id: int
    channel_id: int
    author_id: int
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    files: list[File] = field(default_factory=list)
    reference: int | None = None  # the message this one replies to
    mentions: list[int] = field(default_factory=list)
    flags: int = 0
    interaction_id: int | None = None  # the interaction this message answers
    deleted: bool = False
    versions: list[dict[str, Any]] = field(default_factory=list)  # snapshots with `at`
    reactions: dict[str, list[int]] = field(default_factory=dict)  # emoji -> user ids

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def shown(self) -> str:
        """Everything the message shows, as text: content, then each embed."""
        parts = [self.content]
        for embed in self.embeds:
            parts.extend([embed.get("title", ""), embed.get("description", "")])
            for item in embed.get("fields", []):
                parts.append(f"{item['name']}: {item['value']}")
            parts.append((embed.get("footer") or {}).get("text", ""))
        return "\n".join(part for part in parts if part)

    @property
    def buttons(self) -> list[dict[str, Any]]:
        return [button for row in self.components for button in row.get("components", [])]

    @property
    def colour(self) -> int | None:
        return self.embeds[0].get("color") if self.embeds else None

    def snapshot(self) -> dict[str, Any]:
        return {"content": self.content, "embeds": self.embeds, "components": self.components}

    def payload(self, users: dict[int, Member]) -> dict[str, Any]:
        author = users.get(self.author_id) or Member(self.author_id, f"user{self.author_id}")
        data: dict[str, Any] = {
            "id": str(self.id),
            "channel_id": str(self.channel_id),
            "guild_id": str(GUILD_ID),
            "author": author.user(),
            "content": self.content,
            "timestamp": _iso(snowflake_time(self.id)),
            "edited_timestamp": _iso() if len(self.versions) > 1 else None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [users[u].user() for u in self.mentions if u in users],
            "mention_roles": [],
            "attachments": [
                {
                    "id": str(f.id),
                    "filename": f.filename,
                    "size": len(f.content),
                    "url": f"https://cdn.example/{f.id}/{f.filename}",
                    "proxy_url": f"https://media.example/{f.id}/{f.filename}",
                    "content_type": "text/plain; charset=utf-8",
                }
                for f in self.files
            ],
            "embeds": self.embeds,
            "components": self.components,
            "pinned": False,
            "type": 19 if self.reference else 0,
            "flags": self.flags,
            "reactions": [
                {
                    "emoji": {"id": None, "name": emoji},
                    "count": len(users_),
                    "count_details": {"burst": 0, "normal": len(users_)},
                    "me": BOT_ID in users_,
                    "me_burst": False,
                    "burst_colors": [],
                    "burst_count": 0,
                }
                for emoji, users_ in self.reactions.items()
                if users_
            ],
        }
        if author.id != BOT_ID and author.id in users:
            data["member"] = {k: v for k, v in users[author.id].member().items() if k != "user"}
        if self.reference is not None:
            data["message_reference"] = {
                "message_id": str(self.reference),
                "channel_id": str(self.channel_id),
                "guild_id": str(GUILD_ID),
            }
        return data


def snowflake_time(snowflake: int) -> datetime:
    return datetime.fromtimestamp(((snowflake >> 22) + DISCORD_EPOCH_MS) / 1000, UTC)


@dataclass
class Call:
    """One REST call as the fake took it."""

    method: str
    route: str  # e.g. `PATCH /channels/{channel_id}/messages/{message_id}`
    path: str
    body: Any
    files: list[File]
    status: int
    at: float  # time.monotonic() when it arrived
    code: int | None = None  # Discord's error code, if refused


@dataclass
class Interaction:
    """An interaction the fake delivered, and how the bot answered it."""

    id: int
    token: str
    type: int  # 2 application command, 3 component, 4 autocomplete
    user_id: int
    channel_id: int
    data: dict[str, Any]
    created: float  # time.monotonic()
    payload: dict[str, Any] = field(default_factory=dict)  # as dispatched
    message_id: int | None = None  # the component's message
    answers: list[dict[str, Any]] = field(default_factory=list)  # callback bodies, in order
    answered_at: float | None = None
    original: int | None = None  # the message of the response
    followups: list[int] = field(default_factory=list)

    @property
    def kind(self) -> int | None:
        """The callback type of the first answer (4 message, 5 deferred, 8 autocomplete...)."""
        return self.answers[0]["type"] if self.answers else None

    @property
    def choices(self) -> list[dict[str, Any]]:
        return (self.answers[0].get("data") or {}).get("choices", []) if self.answers else []


@dataclass
class Session:
    """A gateway session: its numbered dispatches and the socket it is on, if any."""

    id: str
    intents: int
    seq: int = 0
    frames: list[dict[str, Any]] = field(default_factory=list)
    ws: web.WebSocketResponse | None = None


# --- the server --------------------------------------------------------------------------


class FakeDiscord:
    """Discord's REST API and gateway for one application, one bot and one guild."""

    def __init__(
        self,
        *,
        content_intent_allowed: bool = True,
        limit: int = 5,
        window: float = 0.25,
        interaction_deadline: float = 3.0,
        seed: int = 7,
    ) -> None:
        self.content_intent_allowed = content_intent_allowed
        self.limit, self.window = limit, window
        self.interaction_deadline = interaction_deadline
        self.edit_429_share = 0.0
        self.retry_after = 0.1
        self.edit_cap_after: float | None = None
        self.resumable = True
        self.gate = asyncio.Event()  # cleared: IDENTIFY and RESUME wait (the bot stays offline)
        self.gate.set()
        self.replay_extra = 0
        self.slow_interaction_fetch = 0.0
        self._random = random.Random(seed)
        self._increment = itertools.count(1)
        self.bot = Member(BOT_ID, "holmbot", bot=True)
        self.members: dict[int, Member] = {BOT_ID: self.bot}
        self.roles: dict[int, str] = {GUILD_ID: "@everyone"}
        self.channels: dict[int, Channel] = {}
        self.messages: dict[int, Message] = {}
        self.calls: list[Call] = []
        self.commands: list[dict[str, Any]] = []
        self.command_syncs = 0
        self.interactions: dict[int, Interaction] = {}
        self.sessions: dict[str, Session] = {}
        self.session: Session | None = None
        self.identifies: list[dict[str, Any]] = []
        self.resumes: list[dict[str, Any]] = []
        self._windows: dict[str, tuple[float, int]] = {}
        self._runner: web.AppRunner | None = None
        self.url = ""

    # --- set-up --------------------------------------------------------------------------

    async def start(self) -> FakeDiscord:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", API + "/{tail:.*}", self._rest)
        self._runner, self.url = await serve_app(app)
        return self

    async def stop(self) -> None:
        for session in self.sessions.values():
            if session.ws is not None:
                await session.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return self.url + API

    @property
    def gateway_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/gateway"

    def snowflake(self) -> int:
        return snowflake_at(time.time() * 1000, next(self._increment))

    def add_member(self, user_id: int, name: str, roles: list[int] | None = None) -> Member:
        member = self.members[user_id] = Member(user_id, name, list(roles or []))
        return member

    def add_role(self, role_id: int, name: str) -> None:
        self.roles[role_id] = name

    def add_channel(self, channel_id: int, name: str, parent_id: int | None = None) -> Channel:
        channel = self.channels[channel_id] = Channel(channel_id, name, parent_id)
        return channel

    # --- what tests read -----------------------------------------------------------------

    def posted(self, channel_id: int | None = None, *, ephemeral: bool = False) -> list[Message]:
        """The bot's messages (in a channel), oldest first; ephemeral ones only if asked."""
        return [
            m
            for m in self.messages.values()
            if m.author_id == BOT_ID
            and not m.deleted
            and (channel_id is None or m.channel_id == channel_id)
            and m.ephemeral == ephemeral
        ]

    def replies_to(self, message_id: int) -> list[Message]:
        return [m for m in self.posted() if m.reference == message_id]

    def calls_to(self, route: str, status: int | None = None) -> list[Call]:
        """Calls whose route (`METHOD /path/{param}`) is `route`, optionally by status."""
        return [
            c for c in self.calls if c.route == route and (status is None or c.status == status)
        ]

    def answer_message(self, interaction: Interaction) -> Message | None:
        """The message an interaction's response shows (after a deferral: once filled in)."""
        if interaction.original is None:
            return None
        return self.messages.get(interaction.original)

    # --- what users do ---------------------------------------------------------------------

    async def say(self, channel_id: int, user_id: int, content: str) -> Message:
        """A member types a message: MESSAGE_CREATE."""
        message = Message(self.snowflake(), channel_id, user_id, content)
        message.mentions = [BOT_ID] if f"<@{BOT_ID}>" in content else []
        message.versions.append(message.snapshot() | {"at": time.monotonic()})
        self.messages[message.id] = message
        await self.dispatch("MESSAGE_CREATE", message.payload(self.members))
        return message

    def command(self, name: str) -> dict[str, Any]:
        """A synced application command by name (KeyError: not synced)."""
        return next(c for c in self.commands if c["name"] == name)

    async def slash(
        self,
        user_id: int,
        channel_id: int,
        command: str,
        subcommand: str | None = None,
        /,
        **values: Any,
    ) -> Interaction:
        """A member runs a synced slash command with option values: INTERACTION_CREATE."""
        definition = self.command(command)
        data = {"id": definition["id"], "name": command, "type": 1, "guild_id": str(GUILD_ID)}
        data["options"] = self._options(definition, subcommand, values)
        return await self._interact(2, user_id, channel_id, data)

    async def autocomplete(
        self,
        user_id: int,
        channel_id: int,
        command: str,
        focused: str,
        subcommand: str | None = None,
        /,
        **values: Any,
    ) -> Interaction:
        """A member types in an option that autocompletes (type 4, `focused` marks it)."""
        definition = self.command(command)
        data = {"id": definition["id"], "name": command, "type": 1, "guild_id": str(GUILD_ID)}
        data["options"] = self._options(definition, subcommand, values, focused=focused)
        return await self._interact(4, user_id, channel_id, data)

    async def click(self, user_id: int, message: Message, custom_id: str) -> Interaction:
        """A member clicks a button of a message (type 3)."""
        if custom_id not in [b.get("custom_id") for b in message.buttons]:
            raise KeyError(f"no button {custom_id!r} on message {message.id}")
        data = {"custom_id": custom_id, "component_type": 2}
        return await self._interact(3, user_id, message.channel_id, data, message)

    async def react(
        self, user_id: int, message: Message, emoji: str, *, removed: bool = False
    ) -> None:
        """A member adds (or takes off) a reaction: MESSAGE_REACTION_ADD / _REMOVE."""
        users = message.reactions.setdefault(emoji, [])
        if removed:
            users.remove(user_id)
        elif user_id not in users:
            users.append(user_id)
        await self._reaction_event(user_id, message, emoji, removed)

    async def _reaction_event(
        self, user_id: int, message: Message, emoji: str, removed: bool
    ) -> None:
        data: dict[str, Any] = {
            "user_id": str(user_id),
            "channel_id": str(message.channel_id),
            "message_id": str(message.id),
            "guild_id": str(GUILD_ID),
            "emoji": {"id": None, "name": emoji},
            "burst": False,
            "type": 0,
        }
        if not removed:
            data["member"] = self.members[user_id].member()
            data["message_author_id"] = str(message.author_id)
            data["burst_colors"] = []
        await self.dispatch("MESSAGE_REACTION_REMOVE" if removed else "MESSAGE_REACTION_ADD", data)

    def _options(
        self,
        definition: dict[str, Any],
        subcommand: str | None,
        values: dict[str, Any],
        focused: str | None = None,
    ) -> list[dict[str, Any]]:
        options = definition.get("options", [])
        if subcommand is not None:
            sub = next(o for o in options if o["name"] == subcommand)
            inner = self._options(sub, None, values, focused)
            return [{"type": 1, "name": subcommand, "options": inner}]
        types = {o["name"]: o["type"] for o in options}
        given = []
        for name, value in values.items():
            option = {"name": name, "type": types[name], "value": value}
            if name == focused:
                option["focused"] = True
            given.append(option)
        return given

    async def _interact(
        self,
        kind: int,
        user_id: int,
        channel_id: int,
        data: dict[str, Any],
        message: Message | None = None,
    ) -> Interaction:
        interaction = Interaction(
            id=self.snowflake(),
            token=secrets.token_urlsafe(48),
            type=kind,
            user_id=user_id,
            channel_id=channel_id,
            data=data,
            created=time.monotonic(),
            message_id=message.id if message is not None else None,
        )
        self.interactions[interaction.id] = interaction
        payload: dict[str, Any] = {
            "id": str(interaction.id),
            "application_id": str(APP_ID),
            "type": kind,
            "token": interaction.token,
            "version": 1,
            "guild_id": str(GUILD_ID),
            "channel_id": str(channel_id),
            "channel": self.channels[channel_id].payload(),
            "member": self.members[user_id].member(),
            "data": data,
            "app_permissions": "2248473465835073",
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(GUILD_ID)},
            "context": 0,
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        if message is not None:
            payload["message"] = message.payload(self.members)
        interaction.payload = payload
        await self.dispatch("INTERACTION_CREATE", payload)
        return interaction

    async def redeliver(self, item: Interaction | Message) -> None:
        """Dispatch an interaction or a member's message again, as it was (a new number)."""
        if isinstance(item, Interaction):
            await self.dispatch("INTERACTION_CREATE", item.payload)
        else:
            await self.dispatch("MESSAGE_CREATE", item.payload(self.members))

    # --- the gateway ---------------------------------------------------------------------

    async def dispatch(self, event: str, data: dict[str, Any]) -> int:
        """Number an event in the current session and send it (kept if disconnected)."""
        session = self.session
        if session is None:
            raise RuntimeError("no gateway session")
        if event == "MESSAGE_CREATE" and not session.intents & CONTENT_INTENT:
            mentioned = str(BOT_ID) in [u["id"] for u in data.get("mentions", [])]
            if not mentioned and data["author"]["id"] != str(BOT_ID):
                data = {**data, "content": "", "embeds": [], "attachments": []}
        session.seq += 1
        frame = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.frames.append(frame)
        if session.ws is not None and not session.ws.closed:
            await session.ws.send_str(json.dumps(frame))
        return session.seq

    async def drop(self, code: int = 4000) -> None:
        """Close the bot's gateway connection as Discord does on trouble (resumable)."""
        session = self.session
        if session is not None and session.ws is not None:
            ws, session.ws = session.ws, None
            await ws.close(code=code)

    @property
    def connected(self) -> bool:
        return self.session is not None and self.session.ws is not None

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 45000}}))
        async for frame in ws:
            if frame.type is not WSMsgType.TEXT:
                break
            message = json.loads(frame.data)
            op, data = message.get("op"), message.get("d")
            if op == 1:
                await ws.send_str(json.dumps({"op": 11}))
            elif op == 2:
                await self.gate.wait()
                await self._identify(ws, data)
            elif op == 6:
                await self.gate.wait()
                await self._resume(ws, data)
        for session in self.sessions.values():
            if session.ws is ws:
                session.ws = None
        return ws

    async def _identify(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        self.identifies.append(data)
        if data.get("token") != TOKEN:
            await ws.close(code=4004, message=b"Authentication failed.")
            return
        intents = int(data.get("intents", 0))
        if intents & CONTENT_INTENT and not self.content_intent_allowed:
            await ws.close(code=4014, message=b"Disallowed intent(s).")
            return
        session = Session(secrets.token_hex(16), intents, ws=ws)
        self.sessions[session.id] = session
        self.session = session
        ready = {
            "v": 10,
            "user": self.bot.user() | {"verified": True, "mfa_enabled": False, "flags": 0},
            "guilds": [{"id": str(GUILD_ID), "unavailable": True}],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(APP_ID), "flags": self.application_flags},
            "private_channels": [],
            "relationships": [],
        }
        await self.dispatch("READY", ready)
        await self.dispatch("GUILD_CREATE", self.guild_payload())

    async def _resume(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        self.resumes.append(data)
        session = self.sessions.get(data.get("session_id", ""))
        if session is None or not self.resumable or data.get("token") != TOKEN:
            await ws.send_str(json.dumps({"op": 9, "d": False}))
            return
        session.ws = ws
        self.session = session
        seen = int(data.get("seq") or 0) - self.replay_extra
        for frame in [f for f in session.frames if f["s"] > seen]:
            await ws.send_str(json.dumps(frame))
        await self.dispatch("RESUMED", {})

    @property
    def application_flags(self) -> int:
        """GATEWAY_MESSAGE_CONTENT_LIMITED (1 << 19) when the intent is enabled."""
        return (1 << 19) if self.content_intent_allowed else 0

    def guild_payload(self) -> dict[str, Any]:
        return {
            "id": str(GUILD_ID),
            "name": "holmos",
            "icon": None,
            "owner_id": "1",
            "unavailable": False,
            "joined_at": _iso(),
            "large": False,
            "member_count": len(self.members),
            "features": [],
            "emojis": [],
            "stickers": [],
            "roles": [
                {
                    "id": str(role_id),
                    "name": name,
                    "color": 0,
                    "hoist": False,
                    "position": 0 if role_id == GUILD_ID else 1,
                    "permissions": "0",
                    "managed": False,
                    "mentionable": False,
                    "flags": 0,
                }
                for role_id, name in self.roles.items()
            ],
            "channels": [c.payload() for c in self.channels.values() if c.parent_id is None],
            "threads": [c.payload() for c in self.channels.values() if c.parent_id is not None],
            "members": [m.member() for m in self.members.values()],
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "mfa_level": 0,
            "verification_level": 0,
            "explicit_content_filter": 0,
            "default_message_notifications": 0,
            "system_channel_flags": 0,
            "nsfw_level": 0,
            "afk_timeout": 300,
        }

    # --- REST ----------------------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        route = f"{request.method} {route_of(path)}"
        body, files = await _body(request)
        call = Call(request.method, route, path, body, files, 0, time.monotonic())
        self.calls.append(call)
        headers = self._window(route, path)
        try:
            webhook = path.startswith(("/interactions/", "/webhooks/"))
            if not webhook and request.headers.get("Authorization") != f"Bot {TOKEN}":
                raise DiscordError(401, 0, "401: Unauthorized")
            if headers.get("X-RateLimit-Remaining") == "-1" or self._edit_limited(route):
                return self._limited(call, headers)
            answer = await self._route(request.method, path, route, body, files, request.query)
        except DiscordError as error:
            call.status, call.code = error.status, error.code
            return respond({"code": error.code, "message": error.message}, error.status, headers)
        call.status = 204 if answer is None else 200
        if answer is None:
            return web.Response(status=204, headers=headers)
        return respond(answer, headers=headers)

    def _window(self, route: str, path: str) -> dict[str, str]:
        """The rate-limit headers of this call's bucket (route and channel, or interaction);
        Remaining -1 marks a call over the limit."""
        parts = path.split("/")
        major = ""
        if len(parts) > 2 and parts[1] == "channels":
            major = parts[2]
        elif len(parts) > 3 and parts[1] in ("webhooks", "interactions"):
            major = "/".join(parts[2:4])  # one bucket per interaction (id or token), as Discord's
        key = f"{route}:{major}"
        now = time.monotonic()
        started, used = self._windows.get(key, (now, 0))
        if now - started >= self.window:
            started, used = now, 0
        used += 1
        self._windows[key] = (started, used)
        reset_after = max(self.window - (now - started), 0.001)
        remaining = self.limit - used
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(remaining, -1)),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": f"{abs(hash(route)):x}",
        }

    def _edit_limited(self, route: str) -> bool:
        edit = route == "PATCH /channels/{channel_id}/messages/{message_id}"
        return edit and self._random.random() < self.edit_429_share

    def _limited(self, call: Call, headers: dict[str, str]) -> web.Response:
        call.status = 429
        retry = max(self.retry_after, float(headers["X-RateLimit-Reset-After"]))
        headers = headers | {
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Scope": "user",
            "Retry-After": str(max(1, round(retry))),
            "Via": "1.1 google",
        }
        body = {"message": "You are being rate limited.", "retry_after": retry, "global": False}
        return respond(body, 429, headers)

    async def _route(
        self,
        method: str,
        path: str,
        route: str,
        body: Any,
        files: list[File],
        query: Any,
    ) -> Any:
        parts = path.strip("/").split("/")
        handler = ROUTES.get(route)
        if handler is None:
            raise DiscordError(404, 0, f"404: Not Found ({route})")
        return await handler(self, parts, body, files, query)

    # --- REST handlers ---

    async def _me(self, parts: list[str], body: Any, files: list[File], query: Any) -> Any:
        return self.bot.user() | {"verified": True, "mfa_enabled": False, "flags": 0}

    async def _application(self, parts: list[str], *_: Any) -> Any:
        return {
            "id": str(APP_ID),
            "name": "holmbot",
            "icon": None,
            "description": "",
            "rpc_origins": [],
            "bot_public": False,
            "bot_require_code_grant": False,
            "owner": Member(1, "owner").user(),
            "verify_key": "0" * 64,
            "team": None,
            "flags": self.application_flags,
            "summary": "",
        }

    async def _gateway_bot(self, *_: Any) -> Any:
        limit = {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
        return {"url": self.gateway_url, "shards": 1, "session_start_limit": limit}

    async def _get_commands(self, *_: Any) -> Any:
        return self.commands

    async def _put_commands(self, parts: list[str], body: Any, *_: Any) -> Any:
        self.command_syncs += 1
        self.commands = [
            {
                **command,
                "id": str(self.snowflake()),
                "application_id": str(APP_ID),
                "guild_id": str(GUILD_ID),
                "version": str(self.snowflake()),
                "default_member_permissions": None,
            }
            for command in body
        ]
        return self.commands

    def _message(self, channel_id: str, message_id: str) -> Message:
        message = self.messages.get(int(message_id))
        if message is None or message.deleted or message.channel_id != int(channel_id):
            raise DiscordError(404, 10008, "Unknown Message")
        return message

    def _channel(self, channel_id: str) -> Channel:
        channel = self.channels.get(int(channel_id))
        if channel is None:
            raise DiscordError(404, 10003, "Unknown Channel")
        return channel

    async def _create_message(self, parts: list[str], body: Any, files: list[File], *_: Any) -> Any:
        channel = self._channel(parts[1])
        message = self._new_message(channel.id, body, files)
        await self.dispatch("MESSAGE_CREATE", message.payload(self.members))  # the echo
        return message.payload(self.members)

    def _new_message(
        self,
        channel_id: int,
        body: dict[str, Any],
        files: list[File],
        flags: int = 0,
        interaction_id: int | None = None,
        new: bool = True,
    ) -> Message:
        check_message(body, files, new=new)
        reference = (body.get("message_reference") or {}).get("message_id")
        message = Message(
            id=self.snowflake(),
            channel_id=channel_id,
            author_id=BOT_ID,
            content=body.get("content") or "",
            embeds=body.get("embeds") or [],
            components=body.get("components") or [],
            files=files,
            reference=int(reference) if reference else None,
            flags=flags | int(body.get("flags") or 0),
            interaction_id=interaction_id,
        )
        allowed = body.get("allowed_mentions") or {"parse": ["users"]}
        if "users" in allowed.get("parse", []) or allowed.get("users"):
            message.mentions = [user for user in self.members if f"<@{user}>" in message.content]
        message.versions.append(message.snapshot() | {"at": time.monotonic()})
        self.messages[message.id] = message
        return message

    async def _edit_message(self, parts: list[str], body: Any, files: list[File], *_: Any) -> Any:
        message = self._message(parts[1], parts[3])
        if message.author_id != BOT_ID:
            raise DiscordError(403, 50005, "Cannot edit a message authored by another user")
        age = (datetime.now(UTC) - snowflake_time(message.id)).total_seconds()
        if self.edit_cap_after is not None and age > self.edit_cap_after:
            raise DiscordError(
                400, 30046, "Maximum number of edits to messages older than 1 hour reached."
            )
        self._apply_edit(message, body, files)
        return message.payload(self.members)

    def _apply_edit(self, message: Message, body: dict[str, Any], files: list[File]) -> None:
        check_message(body, files, new=False)
        if "content" in body:
            message.content = body["content"] or ""
        if "embeds" in body:
            message.embeds = body["embeds"] or []
        if "components" in body:
            message.components = body["components"] or []
        if "attachments" in body:
            kept = {int(a["id"]) for a in body["attachments"] if int(a["id"]) > 1000}
            message.files = [f for f in message.files if f.id in kept] + files
        if "flags" in body and body["flags"] is not None:
            message.flags = int(body["flags"]) | (message.flags & EPHEMERAL)
        message.flags &= ~LOADING
        message.versions.append(message.snapshot() | {"at": time.monotonic()})

    async def _get_message(self, parts: list[str], *_: Any) -> Any:
        return self._message(parts[1], parts[3]).payload(self.members)

    async def _add_own_reaction(self, parts: list[str], *_: Any) -> Any:
        message = self._message(parts[1], parts[3])
        emoji = urllib.parse.unquote(parts[5])
        users = message.reactions.setdefault(emoji, [])
        if BOT_ID not in users:
            users.append(BOT_ID)
            await self._reaction_event(BOT_ID, message, emoji, removed=False)  # the echo
        return None

    async def _remove_own_reaction(self, parts: list[str], *_: Any) -> Any:
        message = self._message(parts[1], parts[3])
        emoji = urllib.parse.unquote(parts[5])
        if BOT_ID in message.reactions.get(emoji, []):
            message.reactions[emoji].remove(BOT_ID)
            await self._reaction_event(BOT_ID, message, emoji, removed=True)
        return None

    async def _reaction_users(self, parts: list[str], body: Any, files: Any, query: Any) -> Any:
        message = self._message(parts[1], parts[3])
        emoji = urllib.parse.unquote(parts[5])
        after = int(query.get("after", 0))
        limit = int(query.get("limit", 25))
        users = sorted(u for u in message.reactions.get(emoji, []) if u > after)[:limit]
        return [self.members[u].user() for u in users]

    async def _member(self, parts: list[str], *_: Any) -> Any:
        member = self.members.get(int(parts[3]))
        if member is None:
            raise DiscordError(404, 10007, "Unknown Member")
        return member.member()

    async def _get_channel(self, parts: list[str], *_: Any) -> Any:
        return self._channel(parts[1]).payload()

    def _interaction(self, interaction_id: str, token: str) -> Interaction:
        interaction = self.interactions.get(int(interaction_id))
        if interaction is None or interaction.token != token:
            raise DiscordError(404, 10062, "Unknown interaction")
        return interaction

    def _by_token(self, token: str) -> Interaction:
        found = next((i for i in self.interactions.values() if i.token == token), None)
        if found is None:
            raise DiscordError(404, 10015, "Unknown Webhook")
        return found

    async def _callback(self, parts: list[str], body: Any, files: list[File], *_: Any) -> Any:
        interaction = self._interaction(parts[1], parts[2])
        if interaction.answers:
            raise DiscordError(400, 40060, "Interaction has already been acknowledged.")
        if time.monotonic() - interaction.created > self.interaction_deadline:
            raise DiscordError(404, 10062, "Unknown interaction")
        kind, data = body["type"], body.get("data") or {}
        interaction.answers.append(body)
        interaction.answered_at = time.monotonic()
        resource: dict[str, Any] | None = None
        if kind in (4, 5):  # a message, or "thinking" to be filled in
            flags = LOADING if kind == 5 else 0
            message = self._new_message(
                interaction.channel_id,
                data if kind == 4 else {"flags": data.get("flags")},
                files,
                flags=flags,
                interaction_id=interaction.id,
                new=kind == 4,
            )
            interaction.original = message.id
            resource = {"type": kind, "message": message.payload(self.members)}
        elif kind == 7 and interaction.message_id is not None:  # update the clicked message
            self._apply_edit(self.messages[interaction.message_id], data, files)
        answer: dict[str, Any] = {
            "interaction": {
                "id": str(interaction.id),
                "type": interaction.type,
                "response_message_id": str(interaction.original) if interaction.original else None,
                "response_message_loading": kind == 5,
                "response_message_ephemeral": bool(int(data.get("flags") or 0) & EPHEMERAL),
            }
        }
        if resource is not None:
            answer["resource"] = resource
        return answer

    async def _original(self, parts: list[str], *_: Any) -> Any:
        interaction = self._by_token(parts[2])
        if interaction.original is None:
            raise DiscordError(404, 10008, "Unknown Message")
        await asyncio.sleep(self.slow_interaction_fetch)
        return self.messages[interaction.original].payload(self.members)

    async def _edit_original(self, parts: list[str], body: Any, files: list[File], *_: Any) -> Any:
        interaction = self._by_token(parts[2])
        if interaction.original is None:
            raise DiscordError(404, 10008, "Unknown Message")
        message = self.messages[interaction.original]
        self._apply_edit(message, body, files)
        return message.payload(self.members)

    async def _delete_original(self, parts: list[str], *_: Any) -> Any:
        interaction = self._by_token(parts[2])
        if interaction.original is None:
            raise DiscordError(404, 10008, "Unknown Message")
        self.messages[interaction.original].deleted = True
        return None

    async def _followup(self, parts: list[str], body: Any, files: list[File], *_: Any) -> Any:
        interaction = self._by_token(parts[2])
        if not interaction.answers:
            raise DiscordError(404, 10015, "Unknown Webhook")
        message = self._new_message(
            interaction.channel_id, body, files, interaction_id=interaction.id
        )
        interaction.followups.append(message.id)
        return message.payload(self.members)


def route_of(path: str) -> str:
    """`/channels/123/messages/456` -> `/channels/{channel_id}/messages/{message_id}`."""
    parts = path.strip("/").split("/")
    out = []
    for index, part in enumerate(parts):
        before = parts[index - 1] if index else ""
        if before in ROUTE_PARAMS and part not in ("@me", "@original"):
            out.append(ROUTE_PARAMS[before])
        elif index == 2 and parts[0] in ("interactions", "webhooks"):
            out.append("{token}")
        else:
            out.append(part)
    return "/" + "/".join(out)


async def _body(request: web.Request) -> tuple[Any, list[File]]:
    """A request's JSON (from the body or multipart `payload_json`) and its files."""
    if request.content_type.startswith("multipart/"):
        form = await request.post()
        payload = json.loads(str(form.get("payload_json") or "{}"))
        files = []
        for name, value in form.items():
            if name.startswith("files[") and hasattr(value, "file"):
                files.append(File(int(name[6:-1]), value.filename, value.file.read()))
        return payload, files
    raw = await request.read()
    return (json.loads(raw) if raw else None), []


def check_message(body: dict[str, Any], files: list[File], *, new: bool) -> None:
    """Discord's limits on a message body (400 code 50035 / 50006 when broken)."""

    def refuse(why: str) -> None:
        raise DiscordError(400, 50035, f"Invalid Form Body: {why}")

    content = body.get("content") or ""
    embeds = body.get("embeds") or []
    if len(content) > LIMITS["content"]:
        refuse(f"content: must be 2000 or fewer in length ({len(content)})")
    if len(embeds) > LIMITS["embeds"]:
        refuse("embeds: at most 10")
    total = 0
    for embed in embeds:
        title, description = embed.get("title") or "", embed.get("description") or ""
        footer = (embed.get("footer") or {}).get("text") or ""
        fields = embed.get("fields") or []
        if len(title) > LIMITS["title"]:
            refuse("embeds.title: must be 256 or fewer in length")
        if len(description) > LIMITS["description"]:
            refuse(f"embeds.description: must be 4096 or fewer in length ({len(description)})")
        if len(fields) > LIMITS["fields"]:
            refuse("embeds.fields: at most 25")
        if len(footer) > LIMITS["footer"]:
            refuse("embeds.footer.text: must be 2048 or fewer in length")
        for item in fields:
            if not item.get("name") or len(item["name"]) > LIMITS["field_name"]:
                refuse("embeds.fields.name: 1 to 256 in length")
            if not item.get("value") or len(item["value"]) > LIMITS["field_value"]:
                refuse("embeds.fields.value: 1 to 1024 in length")
        total += len(title) + len(description) + len(footer)
        total += sum(len(f["name"]) + len(f["value"]) for f in fields)
    if total > LIMITS["embed_total"]:
        refuse(f"embeds: 6000 characters in all at most ({total})")
    components = body.get("components") or []
    if len(components) > 5:
        refuse("components: at most 5 action rows")
    seen: set[str] = set()
    for row in components:
        buttons = row.get("components") or []
        if not 1 <= len(buttons) <= 5:
            refuse("components: an action row holds 1 to 5 buttons")
        for button in buttons:
            custom_id = button.get("custom_id") or ""
            if not 1 <= len(custom_id) <= 100 or custom_id in seen:
                refuse("components.custom_id: 1 to 100 in length and unique")
            if len(button.get("label") or "") > 80:
                refuse("components.label: 80 or fewer in length")
            seen.add(custom_id)
    if new and not (content or embeds or files or components):
        raise DiscordError(400, 50006, "Cannot send an empty message")
    if any(len(f.content) > 10 * 1024 * 1024 for f in files):
        raise DiscordError(413, 40005, "Request entity too large")


Handler = Callable[..., Any]
ROUTES: dict[str, Handler] = {
    "GET /users/@me": FakeDiscord._me,
    "GET /oauth2/applications/@me": FakeDiscord._application,
    "GET /gateway/bot": FakeDiscord._gateway_bot,
    "GET /applications/{application_id}/guilds/{guild_id}/commands": FakeDiscord._get_commands,
    "PUT /applications/{application_id}/guilds/{guild_id}/commands": FakeDiscord._put_commands,
    "POST /channels/{channel_id}/messages": FakeDiscord._create_message,
    "GET /channels/{channel_id}": FakeDiscord._get_channel,
    "GET /channels/{channel_id}/messages/{message_id}": FakeDiscord._get_message,
    "PATCH /channels/{channel_id}/messages/{message_id}": FakeDiscord._edit_message,
    "PUT /channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me": (
        FakeDiscord._add_own_reaction
    ),
    "DELETE /channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me": (
        FakeDiscord._remove_own_reaction
    ),
    "GET /channels/{channel_id}/messages/{message_id}/reactions/{emoji}": (
        FakeDiscord._reaction_users
    ),
    "GET /guilds/{guild_id}/members/{user_id}": FakeDiscord._member,
    "POST /interactions/{interaction_id}/{token}/callback": FakeDiscord._callback,
    "POST /webhooks/{webhook_id}/{token}": FakeDiscord._followup,
    "GET /webhooks/{webhook_id}/{token}/messages/@original": FakeDiscord._original,
    "PATCH /webhooks/{webhook_id}/{token}/messages/@original": FakeDiscord._edit_original,
    "DELETE /webhooks/{webhook_id}/{token}/messages/@original": FakeDiscord._delete_original,
}

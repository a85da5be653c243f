"""The sandbox's world clock: every simulated duration runs `speed` times faster."""

from __future__ import annotations

import asyncio


class WorldClock:
    """Scales simulated durations (pod start-up, back-offs, deadlines) by a speed factor."""

    def __init__(self, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed

    def real(self, world_seconds: float) -> float:
        """How many real seconds `world_seconds` of simulated time take."""
        return world_seconds / self.speed

    async def sleep(self, world_seconds: float) -> None:
        """Sleep for `world_seconds` of simulated time."""
        await asyncio.sleep(self.real(world_seconds))

"""Running the real kubectl against a sandbox from async tests (without blocking its loop)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path


@dataclass
class KubectlResult:
    code: int
    stdout: str
    stderr: str


async def kubectl(kubeconfig: Path, *args: str, timeout: float = 60.0) -> KubectlResult:
    """Run `kubectl ARGS` with `KUBECONFIG=kubeconfig`; the sandbox keeps serving meanwhile."""
    process = await asyncio.create_subprocess_exec(
        "kubectl",
        *args,
        env={"KUBECONFIG": str(kubeconfig), "PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": "/tmp"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    return KubectlResult(process.returncode or 0, stdout.decode(), stderr.decode())

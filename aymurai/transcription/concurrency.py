"""Task-group helpers shared by the pipeline stages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from anyio.abc import TaskGroup

from aymurai.errors import GatewayError


def _leaf_exceptions(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    leaves: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            leaves.extend(_leaf_exceptions(exc))
        else:
            leaves.append(exc)
    return leaves


@asynccontextmanager
async def open_task_group() -> AsyncIterator[TaskGroup]:
    """An anyio task group that re-raises its failure as itself, not wrapped in a group.

    The first stage to fail cancels its siblings; the handlers above then see the real error
    (e.g. `UpstreamTimeoutError`) instead of an `ExceptionGroup` of one.
    """
    try:
        async with anyio.create_task_group() as group:
            yield group
    except BaseExceptionGroup as exc_group:
        leaves = [
            leaf
            for leaf in _leaf_exceptions(exc_group)
            if not isinstance(leaf, anyio.get_cancelled_exc_class())
        ]
        if len(leaves) == 1:
            # `from leaf.__cause__`, not `from None`: keep the adapter's `from exc` chain (the
            # WebSocket close code behind an UpstreamError, for logs and metrics).
            raise leaves[0] from leaves[0].__cause__
        # One upstream failure often surfaces in two stages at once (the sender and the reader
        # both see the socket close); they describe the same event, so report the first.
        if leaves and all(isinstance(leaf, GatewayError) for leaf in leaves):
            raise leaves[0] from leaves[0].__cause__
        raise

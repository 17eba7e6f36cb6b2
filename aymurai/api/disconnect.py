"""Waiting on a job for a client that may leave: the blocking endpoints' one shared wait.

A blocking request (the deprecated `POST /asr/transcribe`, OpenAI's `stream=false`) has read its
whole body before it waits, so the next ASGI message can only be the disconnect. We watch for it
beside the wait, so a client that leaves releases its job (and the WLK session) at once instead
of holding it until the job ends (issue 8).
"""

from __future__ import annotations

import anyio
from starlette.requests import Request

from aymurai.transcription.jobs import Done, Failed, TranscriptionJob


async def result_unless_client_leaves(
    request: Request, job: TranscriptionJob
) -> Done | Failed | None:
    """The job's result, or None as soon as the client disconnects."""
    result: Done | Failed | None = None
    async with anyio.create_task_group() as group:

        async def cancel_on_disconnect() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass
            group.cancel_scope.cancel()

        group.start_soon(cancel_on_disconnect)
        result = await job.wait_for_result()
        group.cancel_scope.cancel()
    return result

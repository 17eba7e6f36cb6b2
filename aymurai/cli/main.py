"""`aymurai-asr`: command-line entry point (argparse) and exit codes.

Commands: `transcribe FILE` (create a job with the resource API and follow it to its end),
`follow ID` (follow an existing job), `status ID` and `cancel ID`. Following resumes a dropped
connection with `Last-Event-ID` (see `jobs.py`), saying so in one line on stderr each time.

The final result goes to `--output` or stdout; everything else (the live view, the resume and error
lines) goes to stderr, so `aymurai-asr transcribe a.wav > a.srt` shows progress and still writes a
clean file. The output file is written only after the `done` event: a failed run leaves no partial
file. Jobs run at the gateway whether or not we watch, so Ctrl-C leaves the job running and says
how to follow or cancel it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import httpx
from rich.console import Console

from aymurai.cli.jobs import (
    DEFAULT_RETRIES,
    JobFollower,
    Reconnect,
    cancel_transcription,
    create_transcription,
    get_transcription,
    outcome,
)
from aymurai.cli.live import format_duration, make_view
from aymurai.cli.stream import ClientError, Done
from aymurai.transcription.formats import FORMATS, Format, render
from aymurai.transcription.schemas import ASRDocument, Transcription

PROG = "aymurai-asr"
DEFAULT_URL = "http://127.0.0.1:8899"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_FILE = 3
EXIT_REJECTED = 4
EXIT_BUSY = 5
EXIT_TRANSCRIPTION = 6
EXIT_CONNECTION = 7
EXIT_CANCELLED = 8
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = f"""\
exit codes:
  0    done: the transcript was written (status: the state was printed; cancel: cancelled)
  1    the gateway failed (INTERNAL_ERROR, STORAGE_ERROR) or answered off-contract
       (BAD_RESPONSE)
  2    bad command line
  3    the input cannot be read or the output cannot be written (FILE_ERROR)
  4    the gateway rejected the request (EMPTY_UPLOAD, UPLOAD_TOO_LARGE, AUDIO_TOO_LONG,
       INVALID_AUDIO, MALFORMED_REQUEST, UPLOAD_TIMEOUT, VALIDATION_ERROR, NOT_FOUND,
       ALREADY_FINISHED, UNAUTHENTICATED, FORBIDDEN, any other HTTP 4xx)
  5    the gateway is busy; retry later (QUEUE_FULL, TOO_MANY_UPLOADS, SPOOL_UNAVAILABLE,
       SHUTTING_DOWN, KEY_LIMIT)
  6    the speech recognizer failed (UPSTREAM_UNAVAILABLE, UPSTREAM_SERVICE_ERROR,
       UPSTREAM_PROTOCOL_ERROR, UPSTREAM_TIMEOUT)
  7    the gateway cannot be reached, or the connection broke and every resume failed
       (CONNECTION_FAILED, CONNECTION_LOST, TIMEOUT)
  8    the transcription was cancelled (CANCELLED) or lost in a restart (INTERRUPTED)
  130  interrupted (Ctrl-C); the transcription goes on at the gateway

Errors are reported on stderr as one line: `{PROG}: error: CODE: detail (HTTP status, request_id)`.
A dropped connection is resumed (--retries times in a row at most), with one line on stderr each
time. The gateway URL may also be set with the AYMURAI_URL environment variable, the API key with
AYMURAI_API_KEY (safer than --api-key, which other users can see in the process list).
"""

_EXIT_BY_CODE = {
    "EMPTY_UPLOAD": EXIT_REJECTED,
    "UPLOAD_TOO_LARGE": EXIT_REJECTED,
    "AUDIO_TOO_LONG": EXIT_REJECTED,
    "INVALID_AUDIO": EXIT_REJECTED,
    "MALFORMED_REQUEST": EXIT_REJECTED,
    "UPLOAD_TIMEOUT": EXIT_REJECTED,
    "VALIDATION_ERROR": EXIT_REJECTED,
    "QUEUE_FULL": EXIT_BUSY,
    "TOO_MANY_UPLOADS": EXIT_BUSY,
    "SPOOL_UNAVAILABLE": EXIT_BUSY,
    "SHUTTING_DOWN": EXIT_BUSY,
    "KEY_LIMIT": EXIT_BUSY,
    "UNAUTHENTICATED": EXIT_REJECTED,
    "FORBIDDEN": EXIT_REJECTED,
    "UPSTREAM_UNAVAILABLE": EXIT_TRANSCRIPTION,
    "UPSTREAM_SERVICE_ERROR": EXIT_TRANSCRIPTION,
    "UPSTREAM_PROTOCOL_ERROR": EXIT_TRANSCRIPTION,
    "UPSTREAM_TIMEOUT": EXIT_TRANSCRIPTION,
    "CONNECTION_FAILED": EXIT_CONNECTION,
    "CONNECTION_LOST": EXIT_CONNECTION,
    "TIMEOUT": EXIT_CONNECTION,
    "FILE_ERROR": EXIT_FILE,
    "NOT_FOUND": EXIT_REJECTED,
    "ALREADY_FINISHED": EXIT_REJECTED,
    "CANCELLED": EXIT_CANCELLED,
    "INTERRUPTED": EXIT_CANCELLED,
}


def exit_code_for(error: ClientError) -> int:
    """The documented exit code for an error code; unknown 4xx are rejections, the rest failures."""
    if error.code in _EXIT_BY_CODE:
        return _EXIT_BY_CODE[error.code]
    if error.status_code is not None and 400 <= error.status_code < 500:
        return EXIT_REJECTED
    return EXIT_FAILED


def _url_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get("AYMURAI_URL") or DEFAULT_URL,
        help=f"gateway base URL (default: $AYMURAI_URL or {DEFAULT_URL})",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("AYMURAI_API_KEY") or None,
        help="API key, sent as `Authorization: Bearer` (default: $AYMURAI_API_KEY)",
    )


def _follow_options(parser: argparse.ArgumentParser) -> None:
    """The options of the commands that follow a job to its end and print the result."""
    _url_option(parser)
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="result format (default: from the --output suffix, else txt)",
    )
    parser.add_argument(
        "--output", "-o", type=Path, default=None, help="write the result here instead of stdout"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="resume when the gateway sends nothing for this long (default: %(default)s)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=DEFAULT_RETRIES,
        metavar="N",
        help=(
            "reconnects in a row that may fail before giving up, after the gateway's retry "
            "delay doubled each time (default: %(default)s; 0: never resume)"
        ),
    )
    parser.add_argument(
        "--quiet", "-q", action="store_true", help="no live view, even in a terminal"
    )


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    description: str,
) -> argparse.ArgumentParser:
    return commands.add_parser(
        name,
        help=summary,
        description=description,
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Transcribe audio through an aymurai gateway, showing the transcript live.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    transcribe = _command(
        commands,
        "transcribe",
        "transcribe an audio or video file",
        "Upload FILE to the gateway and print the transcript. The transcription runs at the "
        "gateway even if this command stops; a dropped connection is resumed. In a terminal, a "
        "live view on stderr shows progress, the queue position and the transcript as it grows; "
        "otherwise nothing but the final result is printed.",
    )
    transcribe.add_argument("file", metavar="FILE", type=Path, help="audio or video file")
    transcribe.add_argument(
        "--no-cache",
        dest="use_cache",
        action="store_false",
        help="transcribe again even if the gateway already has this audio",
    )
    _follow_options(transcribe)
    follow = _command(
        commands,
        "follow",
        "follow a transcription to its end and print the transcript",
        "Follow the transcription ID (live if it runs, at once if it ended) and print its "
        "transcript, like transcribe.",
    )
    follow.add_argument("id", metavar="ID", help="transcription id")
    _follow_options(follow)
    status = _command(
        commands,
        "status",
        "print the state of a transcription",
        "Print the state of the transcription ID: status, queue position, progress, error.",
    )
    status.add_argument("id", metavar="ID", help="transcription id")
    status.add_argument(
        "--json", action="store_true", help="print the gateway's Transcription JSON instead"
    )
    _url_option(status)
    cancel = _command(
        commands,
        "cancel",
        "cancel a queued or running transcription",
        "Cancel the transcription ID: the gateway stops it and stores nothing. Everyone "
        "following it gets CANCELLED.",
    )
    cancel.add_argument("id", metavar="ID", help="transcription id")
    _url_option(cancel)
    return parser


def choose_format(requested: str | None, output: Path | None) -> Format:
    if requested is not None:
        return requested  # type: ignore[return-value]  # argparse restricted it to FORMATS
    suffix = output.suffix.lower().lstrip(".") if output is not None else ""
    for fmt in FORMATS:
        if suffix == fmt:
            return fmt
    return "txt"


class InterruptedWhileFollowingError(Exception):
    """Ctrl-C while a job was known: it goes on at the gateway."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(job_id)


def _client(args: argparse.Namespace) -> httpx.Client:
    read = getattr(args, "timeout", 30.0)
    timeout = httpx.Timeout(connect=10.0, read=read, write=read, pool=10.0)
    return httpx.Client(base_url=args.url, timeout=timeout, headers=auth_headers(args.api_key))


def auth_headers(api_key: str | None) -> dict[str, str]:
    """The header that carries an API key (none when keys are off)."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def describe_reconnect(reconnect: Reconnect) -> str:
    """The one line that says a dropped connection is being resumed."""
    resume = f"from event {reconnect.last_event_id}" if reconnect.last_event_id else "from start"
    return (
        f"{PROG}: {reconnect.reason.code}: connection lost; resuming transcription "
        f"{reconnect.job_id} {resume} in {reconnect.delay_seconds:.1f} s "
        f"(attempt {reconnect.attempt} of {reconnect.max_attempts})"
    )


def follow_job(
    args: argparse.Namespace, stderr: Console, client: httpx.Client, job: Transcription
) -> ASRDocument:
    """Follow `job` to its `done` event, showing it live; raise `ClientError` on any failure."""
    finished = outcome(job)
    if finished is not None:
        return finished
    view = make_view(stderr, filename=job.name, quiet=args.quiet)
    # Through the console, so that a live view on the same stderr keeps its region below it.
    follower = JobFollower(
        client,
        job,
        retries=args.retries,
        on_reconnect=lambda reconnect: stderr.print(
            describe_reconnect(reconnect),
            markup=False,
            highlight=False,
            emoji=False,
            soft_wrap=True,
        ),
    )
    try:
        for event in follower:
            view.show(event)
            if isinstance(event, Done):
                return event.document
    except KeyboardInterrupt as exc:
        raise InterruptedWhileFollowingError(job.id) from exc
    finally:
        view.close()
    raise AssertionError("unreachable: the follower raises when it ends without done")


def transcribe(args: argparse.Namespace, stderr: Console) -> ASRDocument:
    """Create a job for the file and follow it to its `done` event."""
    path: Path = args.file
    try:
        audio = path.open("rb")
    except OSError as exc:
        raise ClientError("FILE_ERROR", f"cannot read {path}: {exc.strerror or exc}") from exc
    with _client(args) as client:
        with audio:
            job = create_transcription(client, audio, filename=path.name, use_cache=args.use_cache)
        return follow_job(args, stderr, client, job)


def follow(args: argparse.Namespace, stderr: Console) -> ASRDocument:
    with _client(args) as client:
        return follow_job(args, stderr, client, get_transcription(client, args.id))


def describe_status(job: Transcription) -> str:
    """`status` output: one `field  value` line each, for people (`--json` is for scripts)."""
    progress = f"{format_duration(job.current_time)} / {format_duration(job.total_time)}"
    if job.total_time:
        progress += f" ({min(job.current_time / job.total_time, 1.0):.0%})"
    rows = [
        ("id", job.id),
        ("name", job.name),
        ("status", job.status),
        ("position", str(job.position) if job.position is not None else "-"),
        ("progress", progress),
        ("document", str(job.document_id)),
        ("created", job.created_at.isoformat()),
        ("updated", job.updated_at.isoformat()),
        ("error", f"{job.error.code}: {job.error.detail}" if job.error else "-"),
    ]
    if job.document is not None:
        rows.append(("paragraphs", str(len(job.document.document))))
    return "".join(f"{name:<11}{value}\n" for name, value in rows)


def run_command(args: argparse.Namespace, stderr: Console) -> None:
    if args.command in ("transcribe", "follow"):
        document = (
            transcribe(args, stderr) if args.command == "transcribe" else follow(args, stderr)
        )
        write_result(render(document, choose_format(args.format, args.output)), args.output)
    elif args.command == "status":
        with _client(args) as client:
            job = get_transcription(client, args.id)
        write_result(
            job.model_dump_json(indent=2) + "\n" if args.json else describe_status(job), None
        )
    elif args.command == "cancel":
        with _client(args) as client:
            cancel_transcription(client, args.id)
        sys.stderr.write(f"{PROG}: cancelled {args.id}\n")


def write_result(text: str, output: Path | None) -> None:
    if output is None:
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError as exc:
            # The reader went away (`| head`): no traceback, and no second error at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise ClientError(
                "FILE_ERROR", "stdout was closed before the result was written"
            ) from exc
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ClientError("FILE_ERROR", f"cannot write {output}: {exc.strerror or exc}") from exc


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stderr = Console(stderr=True, highlight=False)
    try:
        run_command(args, stderr)
    except ClientError as error:
        sys.stderr.write(f"{PROG}: error: {error.describe()}\n")
        return exit_code_for(error)
    except InterruptedWhileFollowingError as interrupted:
        job_id = interrupted.job_id
        sys.stderr.write(
            f"{PROG}: interrupted; transcription {job_id} goes on at the gateway "
            f"({PROG} follow {job_id}, {PROG} cancel {job_id})\n"
        )
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return EXIT_INTERRUPTED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

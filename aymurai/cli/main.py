"""`aymurai-asr`: command-line entry point (argparse) and exit codes.

The final result goes to `--output` or stdout; everything else (the live view, the one error line)
goes to stderr, so `aymurai-asr transcribe a.wav > a.srt` shows progress and still writes a clean
file. The output file is written only after the `done` event: a failed run leaves no partial file.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import httpx
from rich.console import Console

from aymurai.cli.formats import FORMATS, Format, render
from aymurai.cli.live import make_view
from aymurai.cli.stream import ClientError, Done, open_transcription
from aymurai.transcription.schemas import ASRDocument

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
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = f"""\
exit codes:
  0    the transcript was written
  1    the gateway failed (INTERNAL_ERROR) or answered off-contract (BAD_RESPONSE)
  2    bad command line
  3    the input cannot be read or the output cannot be written (FILE_ERROR)
  4    the gateway rejected the upload (EMPTY_UPLOAD, UPLOAD_TOO_LARGE, AUDIO_TOO_LONG,
       INVALID_AUDIO, MALFORMED_REQUEST, UPLOAD_TIMEOUT, VALIDATION_ERROR, UNAUTHENTICATED,
       FORBIDDEN, any other HTTP 4xx)
  5    the gateway is busy; retry later (QUEUE_FULL, TOO_MANY_UPLOADS, SPOOL_UNAVAILABLE,
       SHUTTING_DOWN, KEY_LIMIT)
  6    the speech recognizer failed (UPSTREAM_UNAVAILABLE, UPSTREAM_SERVICE_ERROR,
       UPSTREAM_PROTOCOL_ERROR, UPSTREAM_TIMEOUT)
  7    the gateway cannot be reached or the connection broke (CONNECTION_FAILED,
       CONNECTION_LOST, TIMEOUT)
  130  interrupted (Ctrl-C)

Errors are reported on stderr as one line: `{PROG}: error: CODE: detail (HTTP status, request_id)`.
The gateway URL may also be set with the AYMURAI_URL environment variable, the API key with
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
}


def exit_code_for(error: ClientError) -> int:
    """The documented exit code for an error code; unknown 4xx are rejections, the rest failures."""
    if error.code in _EXIT_BY_CODE:
        return _EXIT_BY_CODE[error.code]
    if error.status_code is not None and 400 <= error.status_code < 500:
        return EXIT_REJECTED
    return EXIT_FAILED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Transcribe audio through an aymurai gateway, showing the transcript live.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    transcribe = commands.add_parser(
        "transcribe",
        help="transcribe an audio or video file",
        description=(
            "Upload FILE to the gateway and print the transcript. In a terminal, a live view on "
            "stderr shows progress, the queue position and the transcript as it grows; otherwise "
            "nothing but the final result is printed."
        ),
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    transcribe.add_argument("file", metavar="FILE", type=Path, help="audio or video file")
    transcribe.add_argument(
        "--url",
        default=os.environ.get("AYMURAI_URL") or DEFAULT_URL,
        help=f"gateway base URL (default: $AYMURAI_URL or {DEFAULT_URL})",
    )
    transcribe.add_argument(
        "--api-key",
        default=os.environ.get("AYMURAI_API_KEY") or None,
        help="API key, sent as `Authorization: Bearer` (default: $AYMURAI_API_KEY)",
    )
    transcribe.add_argument(
        "--no-cache",
        dest="use_cache",
        action="store_false",
        help="transcribe again even if the gateway already has this audio",
    )
    transcribe.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="result format (default: from the --output suffix, else txt)",
    )
    transcribe.add_argument(
        "--output", "-o", type=Path, default=None, help="write the result here instead of stdout"
    )
    transcribe.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="give up when the gateway sends nothing for this long (default: %(default)s)",
    )
    transcribe.add_argument(
        "--quiet", "-q", action="store_true", help="no live view, even in a terminal"
    )
    return parser


def auth_headers(api_key: str | None) -> dict[str, str]:
    """The header that carries an API key (none when keys are off)."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def choose_format(requested: str | None, output: Path | None) -> Format:
    if requested is not None:
        return requested  # type: ignore[return-value]  # argparse restricted it to FORMATS
    suffix = output.suffix.lower().lstrip(".") if output is not None else ""
    for fmt in FORMATS:
        if suffix == fmt:
            return fmt
    return "txt"


def transcribe(args: argparse.Namespace, stderr: Console) -> ASRDocument:
    """Run one transcription to its `done` event; raise `ClientError` on any failure."""
    path: Path = args.file
    try:
        audio = path.open("rb")
    except OSError as exc:
        raise ClientError("FILE_ERROR", f"cannot read {path}: {exc.strerror or exc}") from exc
    timeout = httpx.Timeout(connect=10.0, read=args.timeout, write=args.timeout, pool=10.0)
    view = make_view(stderr, filename=path.name, quiet=args.quiet)
    try:
        with (
            audio,
            httpx.Client(
                base_url=args.url, timeout=timeout, headers=auth_headers(args.api_key)
            ) as client,
            open_transcription(
                client, audio, filename=path.name, use_cache=args.use_cache
            ) as stream,
        ):
            for event in stream:
                view.show(event)
                if isinstance(event, Done):
                    return event.document
    finally:
        view.close()
    raise AssertionError("unreachable: the stream raises when it ends without done")


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
    fmt = choose_format(args.format, args.output)
    try:
        document = transcribe(args, stderr)
        write_result(render(document, fmt), args.output)
    except ClientError as error:
        sys.stderr.write(f"{PROG}: error: {error.describe()}\n")
        return exit_code_for(error)
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return EXIT_INTERRUPTED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

"""The client commands ``generate``, ``status``, ``list``, ``webhook-secret`` against a running server.

They are the whole ``scenechain-client`` command (``main``, this package's console script) and
also sub-commands of the server's ``scenechain`` command (``add_client_commands``).

URL and token come from ``--url``/``--token``, else ``SCENECHAIN_URL``/``SCENECHAIN_TOKEN``, else
``~/.config/scenechain/config.toml`` (``url = "..."``, ``token = "..."``; ``--config`` or
``SCENECHAIN_CONFIG`` names another file). ``generate`` shows a live progress bar per scene and
stage, driven by the server's event stream (or by polling the status when the server has none),
then the scores, warnings and, with ``--out``, the files written.

Exit codes: 0 completed; 1 failed, cancelled, timed out or an API error; 2 bad configuration.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from scenechain.client import (
    APIError,
    Client,
    ConnectionFailed,
    EventsUnavailable,
    ScenechainError,
    WaitTimeout,
    resolve_connection,
)
from scenechain.events import GenerationEvent
from scenechain.protocol import FINISHED_STATUSES, GenerationStatus

ADVANCED_STEPS: tuple[str, ...] = ("enhancing", "generating", "scoring", "done")
SIMPLE_STEPS: tuple[str, ...] = ("generating", "done")


def make_client(args: argparse.Namespace) -> Client:
    """The client for the parsed flags (tests replace this to inject a transport)."""
    url, token = resolve_connection(args.url, args.token, args.config)
    if not token:
        raise ScenechainError(
            'no token: pass --token, set SCENECHAIN_TOKEN, or put token = "..." in the config file '
            "(a dev server mints one with `scenechain token USER`)"
        )
    return Client(url, token, timeout=args.http_timeout)


def _add_connection_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("server")
    group.add_argument(
        "--url", default=None, help="Server URL (default: $SCENECHAIN_URL, config, http://127.0.0.1:8000)."
    )
    group.add_argument(
        "--token", default=None, help="Bearer token (default: $SCENECHAIN_TOKEN or the config file)."
    )
    group.add_argument(
        "--config", default=None, help="Config file (default: ~/.config/scenechain/config.toml)."
    )
    group.add_argument("--http-timeout", type=float, default=30.0, help="Seconds per HTTP request.")
    group.add_argument("--json", action="store_true", help="Print JSON instead of tables.")


def add_client_commands(subparsers: Any) -> None:
    """Add ``generate``, ``status`` and ``list`` to a ``parser.add_subparsers()`` object; each sets
    ``handler`` (a function of the parsed args returning the exit code)."""
    gen = subparsers.add_parser(
        "generate", help="Storyboard a brief on a running server, with live progress."
    )
    gen.add_argument("prompt", help="The ad brief.")
    gen.add_argument(
        "--advanced", action="store_true", help="Enhance prompts, generate variations, score them."
    )
    gen.add_argument(
        "--variations", type=int, default=None, metavar="N", help="Variations per scene (advanced)."
    )
    gen.add_argument(
        "--threshold", type=float, default=None, metavar="X", help="Quality threshold 0-100 (advanced)."
    )
    gen.add_argument(
        "--iterations", type=int, default=None, metavar="K", help="Enhancer iteration cap (advanced)."
    )
    gen.add_argument("--scenes", type=int, default=None, metavar="S", help="Scenes in the storyboard.")
    gen.add_argument("--seed", type=int, default=None, metavar="N", help="Base seed (reproducible runs).")
    gen.add_argument("--negative-prompt", default=None, help="What to keep out of the images.")
    gen.add_argument("--out", default=None, metavar="DIR", help="Download images, status and exports here.")
    gen.add_argument(
        "--all-variations", action="store_true", help="With --out: every variation, not just the best."
    )
    gen.add_argument(
        "--webhook", default=None, metavar="URL", help="Deliver signed webhooks of this generation to URL."
    )
    gen.add_argument(
        "--webhook-events",
        default=None,
        metavar="E[,E...]",
        help="Webhook events: started, scene_completed, completed, failed, cancelled "
        "(default: completed, failed, cancelled).",
    )
    gen.add_argument(
        "--wait",
        type=int,
        default=None,
        metavar="N",
        help="Ask the server to answer with the finished storyboard if it is done within N s (1-60; "
        "Prefer: wait); otherwise progress is followed as usual.",
    )
    gen.add_argument(
        "--deadline",
        default=None,
        metavar="DURATION",
        help="Cancel the job if unfinished after DURATION ('90', '90s', '5m', '2h'; Cancel-After).",
    )
    gen.add_argument(
        "--reference",
        default=None,
        metavar="IMAGE",
        help="Product image (PNG/JPEG/WebP) scene 1 starts from.",
    )
    gen.add_argument(
        "--reference-strength",
        type=float,
        default=None,
        metavar="X",
        help="How far scene 1 may move from --reference (0 keeps it, 1 ignores it).",
    )
    gen.add_argument("--no-wait", action="store_true", help="Print the id and return at once.")
    gen.add_argument("--timeout", type=float, default=1800.0, help="Seconds to wait for the storyboard.")
    gen.add_argument(
        "--poll", type=float, default=1.0, help="Status poll period when there is no event stream."
    )
    _add_connection_args(gen)
    gen.set_defaults(handler=cmd_generate)

    status = subparsers.add_parser("status", help="Status, scores and warnings of a generation.")
    status.add_argument("id", help="Generation id.")
    status.add_argument("--out", default=None, metavar="DIR", help="Also download its files here.")
    _add_connection_args(status)
    status.set_defaults(handler=cmd_status)

    listing = subparsers.add_parser("list", help="Your generations, newest first.")
    listing.add_argument("--limit", type=int, default=20, help="Rows per page (1-100).")
    listing.add_argument("--offset", type=int, default=0, help="Rows to skip.")
    _add_connection_args(listing)
    listing.set_defaults(handler=cmd_list)

    secret = subparsers.add_parser(
        "webhook-secret", help="Your webhook signing secret (verify deliveries with it)."
    )
    secret.add_argument("--rotate", action="store_true", help="Replace the secret first.")
    _add_connection_args(secret)
    secret.set_defaults(handler=cmd_webhook_secret)


def _console(args: argparse.Namespace) -> Console:
    return getattr(args, "console", None) or Console(stderr=False, highlight=False)


def _guarded(
    command: Callable[[argparse.Namespace, Client, Console], int],
) -> Callable[[argparse.Namespace], int]:
    """Runs a command with a client; API/connection errors become a red message and exit code 1."""

    def handler(args: argparse.Namespace) -> int:
        console = _console(args)
        try:
            client = make_client(args)
        except ScenechainError as exc:
            console.print(f"[red]error:[/red] {exc}")
            return 2
        try:
            with client:
                return command(args, client, console)
        except APIError as exc:
            hint = f" (retry after {exc.retry_after:g}s)" if exc.retry_after is not None else ""
            console.print(f"[red]error {exc.status_code}:[/red] {exc.message}{hint}")
            return 1
        except (ScenechainError, ValueError) as exc:
            console.print(f"[red]error:[/red] {exc}")
            return 1

    handler.__name__ = command.__name__
    handler.__doc__ = command.__doc__
    return handler


# -- live progress -------------------------------------------------------------------------------


class ProgressView:
    """A rich progress display: one bar for the storyboard, one per scene (its stage steps)."""

    def __init__(self, console: Console, scenes_total: int, advanced: bool) -> None:
        self.console = console
        self.steps = ADVANCED_STEPS if advanced else SIMPLE_STEPS
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description:<12}"),
            BarColumn(bar_width=24),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self.overall = self.progress.add_task("storyboard", total=scenes_total, detail="queued")
        self.scenes: dict[int, TaskID] = {}
        self.scenes_total = scenes_total
        self.warnings_seen: set[str] = set()
        self.finished_status: str | None = None
        for n in range(1, scenes_total + 1):
            self._scene(n)

    def __enter__(self) -> ProgressView:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def _scene(self, n: int) -> TaskID:
        if n not in self.scenes:
            self.scenes[n] = self.progress.add_task(f"scene {n}", total=len(self.steps) - 1, detail="waiting")
        return self.scenes[n]

    def _set_total(self, total: int) -> None:
        if total and total != self.scenes_total:
            self.scenes_total = total
            self.progress.update(self.overall, total=total)
            for n in list(self.scenes):
                if n > total:
                    self.progress.remove_task(self.scenes.pop(n))
            for n in range(1, total + 1):
                self._scene(n)

    def _set_step(self, n: int, stage: str, detail: str | None = None) -> None:
        task = self._scene(n)
        if stage in self.steps:
            self.progress.update(task, completed=self.steps.index(stage), detail=detail or stage)
        else:
            self.progress.update(task, detail=detail or stage)

    def _warn(self, message: str) -> None:
        if message not in self.warnings_seen:
            self.warnings_seen.add(message)
            self.console.print(f"[yellow]warning:[/yellow] {message}")

    def handle(self, event: GenerationEvent) -> None:
        """Update the display from one live event."""
        data, n = event.data, event.scene
        if event.type == "stage":
            stage = str(data.get("stage", ""))
            if n:
                self._set_step(n, stage)
            self.progress.update(self.overall, detail=str(data.get("label") or stage))
        elif event.type == "enhancer_iteration" and n:
            overall = data.get("overall")
            critic = f", critic {float(overall):.0f}" if overall is not None else ""
            self._set_step(n, "enhancing", f"enhancing: rewrite {data.get('iteration')}{critic}")
        elif event.type == "variation_scored" and n:
            overall = (data.get("scores") or {}).get("overall")
            score = f" ({float(overall):.1f})" if overall is not None else ""
            self._set_step(n, "scoring", f"scored variation {data.get('k')}{score}")
        elif event.type == "best_picked" and n:
            overall = data.get("overall")
            score = f" {float(overall):.1f}" if overall is not None else ""
            flag = " [red]BELOW THRESHOLD[/red]" if data.get("below_threshold") else ""
            self._set_step(n, "scoring", f"best: variation {data.get('k')}{score}{flag}")
        elif event.type == "scene_done" and n:
            self._set_total(int(data.get("scenes_total") or self.scenes_total))
            task = self._scene(n)
            current = next(t for t in self.progress.tasks if t.id == task)
            detail = str(current.fields.get("detail", ""))
            self.progress.update(
                task, completed=len(self.steps) - 1, detail=detail if detail.startswith("best") else "done"
            )
            if data.get("scenes_done"):
                self.progress.update(self.overall, completed=int(data["scenes_done"]))
            else:
                self.progress.advance(self.overall)
        elif event.type == "warning":
            self._warn(str(data.get("message", "")))
        elif event.type == "error":
            self.console.print(f"[red]error:[/red] {data.get('message')}")
        elif event.type == "done":
            self.finished_status = str(data.get("status") or "")
            self.progress.update(self.overall, detail=self.finished_status)

    def update_from_status(self, status: GenerationStatus) -> None:
        """Update the display from a polled status document (no event stream)."""
        self._set_total(status.progress.scenes_total)
        done = {scene.index for scene in status.scenes}
        for n in done:
            quality = status.image_quality_scores.get(f"scene_{n}")
            detail = "done"
            if quality is not None and quality.best_overall is not None:
                flag = " [red]BELOW THRESHOLD[/red]" if quality.below_threshold else ""
                detail = f"best: variation {quality.best_index} {quality.best_overall:.1f}{flag}"
            self.progress.update(self._scene(n), completed=len(self.steps) - 1, detail=detail)
        stage = status.progress.stage
        head, sep, tail = stage.partition(":")
        if sep and head.startswith("scene ") and head[6:].strip().isdigit():
            n = int(head[6:].strip())
            if n not in done:
                self._set_step(n, tail.strip())
        self.progress.update(self.overall, completed=len(done), detail=stage)
        for message in status.warnings:
            self._warn(message)
        if status.status in FINISHED_STATUSES:
            self.finished_status = status.status


def follow(client: Client, generation_id: str, view: ProgressView, *, timeout: float, poll: float) -> None:
    """Drive ``view`` from the event stream until done; poll the status when there is no stream."""
    deadline = time.monotonic() + timeout
    try:
        for event in client.events(generation_id):
            view.handle(event)
            if time.monotonic() > deadline:
                return
        return
    except (EventsUnavailable, ConnectionFailed):
        pass  # older server or a broken stream: polling shows the same progress, coarser
    while time.monotonic() < deadline:
        status = client.status(generation_id)
        view.update_from_status(status)
        if status.status in FINISHED_STATUSES:
            return
        time.sleep(poll)


# -- rendering -----------------------------------------------------------------------------------


def render_status(
    console: Console, status: GenerationStatus, shown_warnings: frozenset[str] = frozenset()
) -> None:
    """A summary: header, one row per scene (scores, badge), warnings (except those already shown), error."""
    colour = {"completed": "green", "failed": "red", "cancelled": "yellow"}.get(status.status, "cyan")
    console.print(
        f"[bold]{status.id}[/bold]  [{colour}]{status.status}[/{colour}]  "
        f"{status.progress.scenes_done}/{status.progress.scenes_total} scenes  stage: {status.progress.stage}  "
        f"seed {status.seed}  {'advanced' if status.advanced_image_generation_used else 'simple'}"
    )
    console.print(f"brief: {status.prompt}")
    if status.queue_position is not None:
        console.print(f"queue position: {status.queue_position}")
    if status.eta_s is not None:
        console.print(f"estimated time left: ~{status.eta_s:.0f}s (an estimate from recent jobs)")
    if status.cancel_reason is not None:
        console.print(f"cancelled by: {status.cancel_reason}")
    if status.reference_image_used:
        console.print("scene 1 started from your reference image")
    if status.scenes:
        table = Table(show_header=True, header_style="bold")
        for column in ("scene", "prompt", "best", "overall", "flag"):
            table.add_column(column)
        for scene in status.scenes:
            quality = status.image_quality_scores.get(f"scene_{scene.index}")
            overall = "" if quality is None or quality.best_overall is None else f"{quality.best_overall:.1f}"
            flag = "[red]below threshold[/red]" if quality is not None and quality.below_threshold else ""
            prompt = scene.enhanced_prompt or scene.prompt
            table.add_row(
                str(scene.index),
                prompt if len(prompt) <= 70 else prompt[:69] + "…",
                f"{scene.best_index}/{scene.num_variations}",
                overall,
                flag,
            )
        console.print(table)
    for message in status.warnings:
        if message not in shown_warnings:
            console.print(f"[yellow]warning:[/yellow] {message}")
    if status.error:
        console.print(f"[red]error:[/red] {status.error}")


def _print_json(console: Console, payload: Any) -> None:
    console.print_json(json.dumps(payload, default=str))


def _download(console: Console, client: Client, generation_id: str, out: str, variations: bool) -> None:
    paths = client.download(generation_id, out, variations=variations)
    console.print(f"wrote {len(paths)} file(s) to {out}:")
    for path in paths:
        console.print(f"  {path}")


# -- commands ------------------------------------------------------------------------------------


def _generate(args: argparse.Namespace, client: Client, console: Console) -> int:
    """scenechain generate."""
    events = [name.strip() for name in args.webhook_events.split(",")] if args.webhook_events else None
    answer = client.generate(
        args.prompt,
        wait=args.wait,
        cancel_after=args.deadline,
        advanced=args.advanced or None,
        variations=args.variations,
        threshold=args.threshold,
        iterations=args.iterations,
        scenes=args.scenes,
        seed=args.seed,
        negative_prompt=args.negative_prompt,
        webhook=args.webhook,
        webhook_events=events,
        **_reference_setting(args.reference),
        reference_strength=args.reference_strength,
    )
    if isinstance(answer, GenerationStatus):  # --wait: finished within the wait
        return _finished(args, client, console, answer)
    accepted = answer
    if args.no_wait:
        if args.json:
            _print_json(console, accepted.model_dump(mode="json"))
        else:
            console.print(accepted.id)
        return 0
    console.print(f"submitted [bold]{accepted.id}[/bold] ({accepted.status_url})")
    first = client.status(accepted.id)
    with ProgressView(console, first.progress.scenes_total, first.advanced_image_generation_used) as view:
        view.update_from_status(first)
        if first.status not in FINISHED_STATUSES:
            follow(client, accepted.id, view, timeout=args.timeout, poll=args.poll)
    try:
        status = client.wait(accepted.id, timeout=max(5.0, args.poll * 5), poll=args.poll)
    except WaitTimeout as exc:
        console.print(f"[red]timed out:[/red] {exc}; `scenechain-client status {accepted.id}` shows it later")
        return 1
    return _finished(args, client, console, status, frozenset(view.warnings_seen))


def _reference_setting(value: str | None) -> dict[str, str]:
    """--reference: a file is sent inline (base64); an upload id ('img_...') as it is."""
    if value is None:
        return {}
    if value.startswith("img_") and not Path(value).exists():
        return {"reference_image": value}
    return {"reference": value}


def _finished(
    args: argparse.Namespace,
    client: Client,
    console: Console,
    status: GenerationStatus,
    shown_warnings: frozenset[str] = frozenset(),
) -> int:
    """Print a finished generation (and download it with --out); the exit code of its status."""
    if args.json:
        _print_json(console, status.model_dump(mode="json"))
    else:
        render_status(console, status, shown_warnings)
    if args.out and status.scenes:
        _download(console, client, status.id, args.out, args.all_variations)
    return 0 if status.status == "completed" else 1


def _status(args: argparse.Namespace, client: Client, console: Console) -> int:
    """scenechain status ID."""
    status = client.status(args.id)
    if args.json:
        _print_json(console, status.model_dump(mode="json"))
    else:
        render_status(console, status)
    if args.out and status.scenes:
        _download(console, client, args.id, args.out, False)
    return 0


def _list(args: argparse.Namespace, client: Client, console: Console) -> int:
    """scenechain list."""
    page = client.list(limit=args.limit, offset=args.offset)
    if args.json:
        _print_json(console, page.model_dump(mode="json"))
        return 0
    table = Table(show_header=True, header_style="bold", title=f"{page.total} generation(s)")
    for column in ("id", "status", "scenes", "mode", "created", "brief"):
        table.add_column(column)
    for item in page.items:
        table.add_row(
            item.id,
            item.status,
            f"{item.scenes_done}/{item.scenes_total}",
            "advanced" if item.advanced_image_generation_used else "simple",
            item.created_at.strftime("%Y-%m-%d %H:%M"),
            item.prompt if len(item.prompt) <= 50 else item.prompt[:49] + "…",
        )
    console.print(table)
    if page.offset + len(page.items) < page.total:
        console.print(f"more: --offset {page.offset + len(page.items)}")
    return 0


def _webhook_secret(args: argparse.Namespace, client: Client, console: Console) -> int:
    """scenechain webhook-secret [--rotate]."""
    secret = client.webhook_secret(rotate=args.rotate)
    if args.json:
        _print_json(console, secret.model_dump(mode="json"))
    else:
        console.print(secret.secret)
    return 0


cmd_generate = _guarded(_generate)
cmd_webhook_secret = _guarded(_webhook_secret)
cmd_status = _guarded(_status)
cmd_list = _guarded(_list)


def build_parser() -> argparse.ArgumentParser:
    """The ``scenechain-client`` parser: the client commands alone (no server code)."""
    parser = argparse.ArgumentParser(
        prog="scenechain-client", description="Talk to a running scenechain server."
    )
    add_client_commands(parser.add_subparsers(dest="command", required=True))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``scenechain-client`` script (and ``python -m scenechain.cli``)."""
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())

"""The screens stacked over the dashboard: help, confirmation, dead-letter filter and a
dead letter's detail (with its replay and archive actions)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Input, Label, Static

from policies import GarrisonError
from runtime.store import DeadReason
from runtime.tui._model import clock_time

if TYPE_CHECKING:
    from runtime.tui._reader import Detail, TopReader

HELP = """\
[b]garrison top[/b] — a live view of one queue (read-only until you act)

[b]Dashboard[/b]
  ?        this help               q        quit
  tab      next table              r        refresh now
  s        sort topics by the next column (depth, rate, failures, staleness, topic)
  f        filter dead letters by topic and reason
  enter    open the selected dead letter

[b]Dead letter[/b]
  p        replay: a dry run is shown first, then you confirm
  a        archive (asks first)
  escape   back

Header: depth by state, completed per minute over the window, mean wait from
enqueue to lease, the oldest ready item's wait, pressure per channel (green
normal, yellow elevated, red critical). Sparklines: up to the last 15 minutes.
Figures marked ~ are scaled from a capped sample.
"""


class HelpScreen(ModalScreen[None]):
    """The keys and what the figures mean."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(HELP)

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question; dismisses with True only on ``y``."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm"):
            yield Static(Text(self.question), id="question")
            yield Label("[b]y[/b] yes    [b]n[/b] no")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class FilterScreen(ModalScreen[tuple[str | None, DeadReason | None] | None]):
    """Topic and reason filters of the dead-letter list (empty: no filter)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, topic: str | None, reason: DeadReason | None) -> None:
        super().__init__()
        self.topic = topic
        self.reason = reason

    def compose(self) -> ComposeResult:
        reasons = ", ".join(r.value for r in DeadReason)
        with Vertical(id="filter"):
            yield Label("Topic (empty: all)")
            yield Input(self.topic or "", id="topic")
            yield Label(f"Reason (empty: all; one of {reasons})")
            yield Input(self.reason.value if self.reason else "", id="reason")
            yield Label("", id="filter-error")

    def on_input_submitted(self) -> None:
        topic = self.query_one("#topic", Input).value.strip() or None
        text = self.query_one("#reason", Input).value.strip()
        try:
            reason = DeadReason(text) if text else None
        except ValueError:
            self.query_one("#filter-error", Label).update(
                Text(f"unknown reason {text!r}", style="red")
            )
            return
        self.dismiss((topic, reason))

    def action_cancel(self) -> None:
        self.dismiss(None)


def render_detail(detail: Detail) -> Text:
    """A dead letter as the detail view shows it."""
    d = detail.letter
    out = Text()
    rows = [
        ("id", d.item_id),
        ("topic", d.topic),
        ("key", d.key or "-"),
        ("reason", d.reason.value),
        ("attempts", f"{d.attempts}/{d.max_attempts}"),
        ("dead at", clock_time(d.dead_at) + " UTC"),
        (
            "replays",
            f"{d.replay_count}" + (f" -> {d.replayed_item_id}" if d.replayed_item_id else ""),
        ),
        ("archived", clock_time(d.archived_at) if d.archived_at else "no"),
        ("correlation", d.correlation_id or "-"),
        ("payload", f"{detail.payload_size} bytes, sha256 {d.payload_sha256[:16]}…"),
    ]
    for name, value in rows:
        out.append(f"{name:>12}  ", style="bold")
        out.append(f"{value}\n")
    out.append("\nError\n", style="bold underline")
    out.append(f"{d.error or '-'}\n", style="red")
    out.append("\nAudit trail\n", style="bold underline")
    for e in detail.trail:
        change = f"{e.from_state or ''} -> {e.to_state or ''}" if e.to_state else ""
        attempt = f" attempt {e.attempt}" if e.attempt is not None else ""
        error = f"  {e.error}" if e.error else ""
        out.append(f"  {clock_time(e.at)}  {e.kind:<16} {change}{attempt}{error}\n")
    if detail.trail_capped:
        out.append(f"  … (first {len(detail.trail)} events shown)\n", style="dim")
    out.append("\nPayload preview\n", style="bold underline")
    out.append(detail.preview + "\n")
    # Last: a traceback can be long, and the figures above should not scroll away.
    if d.traceback:
        out.append("\nTraceback\n", style="bold underline")
        out.append(d.traceback.rstrip() + "\n")
    return out


class DetailScreen(Screen[None]):
    """One dead letter: error, traceback, attempts, audit trail, payload preview."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Back"),
        Binding("p", "replay", "Replay (dry run first)"),
        Binding("a", "archive", "Archive"),
        Binding("question_mark", "app.help", "Help"),
    ]

    def __init__(self, reader: TopReader, item_id: str) -> None:
        super().__init__()
        self.reader = reader
        self.item_id = item_id
        self.message = ""

    def compose(self) -> ComposeResult:
        yield Static(Text(f"Dead letter {self.item_id}"), id="detail-title")
        with VerticalScroll():
            yield Static("loading…", id="detail-body")
        yield Static("", id="detail-status")
        yield Footer()

    async def on_mount(self) -> None:
        await self.load()

    async def load(self) -> None:
        """Read the dead letter again and show it."""
        try:
            detail = await self.reader.detail(self.item_id)
        except GarrisonError as exc:
            self.query_one("#detail-body", Static).update(Text(str(exc), style="red"))
            return
        self.query_one("#detail-body", Static).update(render_detail(detail))

    def action_close(self) -> None:
        self.dismiss(None)

    def say(self, message: str) -> None:
        """Show the outcome of an action on the status line."""
        self.message = message
        self.query_one("#detail-status", Static).update(Text(message))

    async def action_replay(self) -> None:
        try:
            outcome = await self.reader.dry_run(self.item_id)
        except GarrisonError as exc:
            self.say(f"dry run failed: {exc}")
            return
        if outcome.status != "would_replay":
            self.say(f"dry run: {outcome.status} ({outcome.detail}); nothing to replay")
            return
        self.say("dry run: would replay")
        question = f"Dry run: {self.item_id} would be replayed once as a new item.\nReplay it now?"
        self.app.push_screen(ConfirmScreen(question), self._replay_confirmed)

    async def _replay_confirmed(self, yes: bool | None) -> None:
        if not yes:
            self.say("replay cancelled")
            return
        try:
            new_id = await self.reader.replay(self.item_id)
        except GarrisonError as exc:
            self.say(f"replay refused: {exc}")
            return
        await self.load()
        self.say(f"replayed as {new_id}")

    def action_archive(self) -> None:
        question = f"Archive dead letter {self.item_id}? (kept until purged)"
        self.app.push_screen(ConfirmScreen(question), self._archive_confirmed)

    async def _archive_confirmed(self, yes: bool | None) -> None:
        if not yes:
            self.say("archive cancelled")
            return
        try:
            await self.reader.archive(self.item_id)
        except GarrisonError as exc:
            self.say(f"archive refused: {exc}")
            return
        await self.load()
        self.say(f"archived {self.item_id}")


__all__ = ["ConfirmScreen", "DetailScreen", "FilterScreen", "HelpScreen", "render_detail"]

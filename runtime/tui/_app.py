"""The ``garrison top`` dashboard: a textual app over one store."""

from __future__ import annotations

import contextlib
from typing import ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Label, Sparkline, Static

from policies import GarrisonError
from runtime.store import DeadLetter, DeadReason, Store
from runtime.tui._config import TopConfig
from runtime.tui._model import History, Snapshot, SortKey, age, next_sort, sort_topics
from runtime.tui._reader import TopReader
from runtime.tui._render import dead_letter_cells, header, topic_cells
from runtime.tui._screens import DetailScreen, FilterScreen, HelpScreen

CSS = """
#figures { height: auto; max-height: 6; padding: 0 1; }
#sparks { height: 2; }
.spark-box { width: 1fr; height: 2; }
.spark-label { height: 1; padding: 0 1; }
Sparkline { height: 1; margin: 0 1; }
#topics, #dead { height: 1fr; border: round $primary-darken-2; }
#topics:focus-within, #dead:focus-within { border: round $accent; }
#status { height: 1; padding: 0 1; color: $text-muted; }
#confirm, #filter, #help { width: 80%; max-width: 90; height: auto; max-height: 90%;
    border: thick $accent; background: $surface; padding: 1 2; }
ConfirmScreen, FilterScreen, HelpScreen { align: center middle; }
#detail-title { height: 1; padding: 0 1; text-style: bold; }
#detail-status { height: 1; padding: 0 1; color: $warning; }
"""

# (label, width): fixed widths keep the columns still while the figures change.
TOPIC_COLUMNS = (
    ("topic", 22),
    ("depth", 8),
    ("rate/min", 9),
    ("failures", 8),
    ("last success", 12),
    ("stale", 8),
)
DEAD_COLUMNS = (
    ("age", 6),
    ("topic", 14),
    ("reason", 17),
    ("tries", 5),
    ("replays", 7),
    ("error", 22),
    ("id", 32),
)


class TopApp(App[None]):
    """A live view of one queue: header figures, sparklines, topics, dead letters.

    It reads the store every ``config.refresh_s`` seconds when ``live`` is on
    (tests turn it off and call :meth:`refresh_now`). Reads never write; replay and
    archive happen only when the operator confirms them. Every history is bounded by
    ``config.history_len``, every list by the config's row caps. ``queue`` and ``source``
    (the database's path) only label the header: the store handle decides what is read.
    A store error during a refresh is shown on the status line and the next refresh tries
    again; quitting cancels a refresh in flight (the store's reads finish on their threads).
    """

    CSS = CSS
    TITLE = "garrison top"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("r", "refresh", "Refresh"),
        Binding("s", "sort", "Sort"),
        Binding("f", "filter", "Filter"),
        Binding("enter", "open", "Open", show=False),
    ]

    def __init__(
        self,
        store: Store,
        config: TopConfig | None = None,
        *,
        queue: str = "default",
        source: str = "",
        live: bool = True,
    ) -> None:
        super().__init__()
        self.config = config or TopConfig()
        self.reader = TopReader(store, self.config)
        self.queue_name = queue
        self.source = source
        self.live = live
        self.throughput = History(self.config.history_len)
        self.depth = History(self.config.history_len)
        self.sort_key = SortKey.DEPTH
        self.topic_filter: str | None = None
        self.reason_filter: DeadReason | None = None
        self.snapshot: Snapshot | None = None
        self.letters: list[DeadLetter] = []
        self.refreshes = 0
        self.error: str | None = None

    def compose(self) -> ComposeResult:
        yield Static("reading…", id="figures")
        with Horizontal(id="sparks"):
            with Vertical(classes="spark-box"):
                yield Label("done/min", id="tp-label", classes="spark-label")
                yield Sparkline([], id="tp-spark", summary_function=max)
            with Vertical(classes="spark-box"):
                yield Label("waiting", id="depth-label", classes="spark-label")
                yield Sparkline([], id="depth-spark", summary_function=max)
        topics: DataTable[str] = DataTable(id="topics", cursor_type="row", zebra_stripes=True)
        topics.border_title = "Topics"
        yield topics
        dead: DataTable[str] = DataTable(id="dead", cursor_type="row", zebra_stripes=True)
        dead.border_title = "Dead letters, newest first"
        yield dead
        yield Static("", id="status")
        yield Footer()

    async def on_mount(self) -> None:
        for table_id, columns in (("#topics", TOPIC_COLUMNS), ("#dead", DEAD_COLUMNS)):
            table = self.query_one(table_id, DataTable)
            for label, width in columns:
                table.add_column(label, width=width, key=label)
        self.query_one("#dead", DataTable).focus()
        if self.live:
            self.set_interval(self.config.refresh_s, self._tick)
            self._tick()

    def _tick(self) -> None:
        # One read at a time: a slow store skips ticks rather than stacking reads.
        self.run_worker(self.refresh_now(), group="refresh", exclusive=True, exit_on_error=False)

    async def refresh_now(self) -> None:
        """Read the store once and redraw. A store error is shown, not raised."""
        try:
            snap = await self.reader.snapshot()
            letters = await self.reader.dead_letters(
                topic=self.topic_filter, reason=self.reason_filter
            )
        except GarrisonError as exc:
            self.error = str(exc)
            self.query_one("#status", Static).update(Text(f"store: {exc}", style="red"))
            return
        self.error = None
        self.refreshes += 1
        self.snapshot, self.letters = snap, letters
        self.throughput.add(snap.throughput_per_min)
        self.depth.add(float(snap.waiting))
        self._draw()

    def _draw(self) -> None:
        snap = self.snapshot
        if snap is None:
            return
        self.query_one("#figures", Static).update(
            header(snap, queue=self.queue_name, source=self.source)
        )
        self.query_one("#tp-spark", Sparkline).data = self.throughput.values()
        self.query_one("#depth-spark", Sparkline).data = self.depth.values()
        # A sparkline stretches what it has over its width: say what span that is.
        span = age(len(self.depth.values()) * self.config.refresh_s)
        self.query_one("#tp-label", Label).update(
            f"done/min {snap.throughput_per_min:.0f}, "
            f"max {max(self.throughput.values(), default=0):.0f} (last {span})"
        )
        self.query_one("#depth-label", Label).update(
            f"waiting {snap.waiting}, max {max(self.depth.values(), default=0):.0f} (last {span})"
        )
        topics = self.query_one("#topics", DataTable)
        topics.border_title = f"Topics ({len(snap.topics)}), by {self.sort_key.value}"
        _fill(topics, [(r.topic, topic_cells(r)) for r in sort_topics(snap.topics, self.sort_key)])
        dead = self.query_one("#dead", DataTable)
        filters = [f"topic={self.topic_filter}"] if self.topic_filter else []
        filters += [f"reason={self.reason_filter.value}"] if self.reason_filter else []
        dead.border_title = f"Dead letters ({len(self.letters)}), newest first" + (
            f", filter {' '.join(filters)}" if filters else ""
        )
        _fill(dead, [(d.item_id, dead_letter_cells(d, snap.now)) for d in self.letters])
        self.query_one("#status", Static).update(
            f"refreshed every {self.config.refresh_s:g}s  (? help, q quit)"
        )

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    async def action_refresh(self) -> None:
        await self.refresh_now()

    def action_sort(self) -> None:
        self.sort_key = next_sort(self.sort_key)
        self._draw()

    def action_filter(self) -> None:
        self.push_screen(FilterScreen(self.topic_filter, self.reason_filter), self._filtered)

    async def _filtered(self, choice: tuple[str | None, DeadReason | None] | None) -> None:
        if choice is None:
            return
        self.topic_filter, self.reason_filter = choice
        await self.refresh_now()

    def action_open(self) -> None:
        dead = self.query_one("#dead", DataTable)
        if not self.letters or dead.cursor_row < 0:
            return
        item_id = self.letters[min(dead.cursor_row, len(self.letters) - 1)].item_id
        self.push_screen(DetailScreen(self.reader, item_id), self._closed_detail)

    async def _closed_detail(self, _: None) -> None:
        await self.refresh_now()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "dead":
            self.action_open()


def _fill(table: DataTable[str], rows: list[tuple[str, tuple[str, ...]]]) -> None:
    """Replace a table's rows. A cursor on the first row stays there (the list follows the
    newest, like ``tail -f``); one moved down stays on its row while rows arrive above."""
    keep = None
    if table.row_count and table.cursor_row > 0:
        # A stale cursor only loses its place.
        with contextlib.suppress(Exception):
            keep = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
    table.clear()
    for key, cells in rows:
        table.add_row(*cells, key=key)
    if keep is not None:
        # The row may be gone: the cursor then stays where it is.
        with contextlib.suppress(Exception):
            table.move_cursor(row=table.get_row_index(keep))

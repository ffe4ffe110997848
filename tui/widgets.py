"""LiveTable: a table for rows that change many times a second.

Textual's DataTable re-renders every visible cell after any update (its render cache is keyed
on a table-wide update count), which at thirty frames a second over a few dozen rows is more
than a frame's time. Here each row is rendered once per change, into one strip (one Rich Text
per row, not a renderable per cell), and a frame draws only strips: the cost of a frame follows
what changed, not the size of the table. Columns grow to fit their widest cell and do not
shrink while rows only update.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.cells import cell_len
from rich.segment import Segment
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

Cells = tuple[object, ...]
GAP = 2  # spaces between columns


@dataclass
class _Column:
    key: str
    label: str
    width: int


def _text(cell: object) -> Text:
    return cell if isinstance(cell, Text) else Text(str(cell))


class LiveTable(ScrollView, can_focus=True):
    DEFAULT_CSS = """
    LiveTable {
        background: $surface;
    }
    LiveTable > .live-table--header {
        text-style: bold;
        color: $text-accent;
    }
    LiveTable > .live-table--cursor {
        background: $block-cursor-blurred-background;
    }
    LiveTable:focus > .live-table--cursor {
        background: $block-cursor-background;
        color: $block-cursor-foreground;
    }
    """
    COMPONENT_CLASSES = {"live-table--header", "live-table--cursor"}
    BINDINGS = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "edge(0)", "First", show=False),
        Binding("end", "edge(1)", "Last", show=False),
        Binding("enter", "select", "Select", show=False),
    ]

    class RowHighlighted(Message):
        def __init__(self, table: LiveTable, key: str) -> None:
            super().__init__()
            self.table = table
            self.key = key

        @property
        def control(self) -> LiveTable:
            return self.table

    class RowSelected(RowHighlighted):
        pass

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._columns: list[_Column] = []
        self._keys: list[str] = []
        self._index: dict[str, int] = {}
        self._cells: dict[str, Cells] = {}
        self._strips: dict[str, Strip] = {}
        # Each cell's segments, padded to its column; None: to render (it changed).
        self._pieces: dict[str, list[list[Segment] | None]] = {}
        self.cursor_row = 0

    # -- building --------------------------------------------------------------------------
    def add_column(self, label: str, key: str) -> None:
        self._columns.append(_Column(key, label, cell_len(label)))

    @property
    def columns(self) -> list[str]:
        return [c.key for c in self._columns]

    @property
    def keys(self) -> list[str]:
        return list(self._keys)

    @property
    def row_count(self) -> int:
        return len(self._keys)

    def clear(self) -> None:
        self._keys.clear()
        self._index.clear()
        self._cells.clear()
        self._strips.clear()
        self._pieces.clear()
        for column in self._columns:
            column.width = cell_len(column.label)
        self.cursor_row = 0
        self._resize()

    def add_row(self, key: str, cells: Cells) -> None:
        self._index[key] = len(self._keys)
        self._keys.append(key)
        self._set(key, cells)
        self._resize()

    def update_row(self, key: str, cells: Cells) -> None:
        """Show `cells` in row `key`; nothing is redrawn when they are what it shows."""
        if self._cells.get(key) == cells:
            return
        self._set(key, cells)
        self._resize()
        line = 1 + self._index[key] - self.scroll_offset.y
        if 1 <= line < self.size.height:  # off screen: drawn when scrolled to
            self.refresh_lines(line)

    def _set(self, key: str, cells: Cells) -> None:
        grew = False
        for column, cell in zip(self._columns, cells, strict=True):
            width = _text(cell).cell_len
            if width > column.width:
                column.width, grew = width, True
        old, self._cells[key] = self._cells.get(key), cells
        if grew:  # every row is laid out again with the wider column
            self._strips.clear()
            self._pieces.clear()
            self.refresh()
            return
        self._strips.pop(key, None)
        pieces = self._pieces.get(key)
        if old is None or pieces is None:
            self._pieces[key] = [None] * len(cells)
            return
        for index, (before, now) in enumerate(zip(old, cells, strict=True)):
            if before != now:
                pieces[index] = None

    def _resize(self) -> None:
        width = sum(c.width for c in self._columns) + GAP * len(self._columns)
        size = Size(width, len(self._keys) + 1)
        if size != self.virtual_size:  # setting it, even unchanged, lays the screen out again
            self.virtual_size = size

    # -- reading ---------------------------------------------------------------------------
    def get_row_index(self, key: str) -> int:
        return self._index[key]

    def get_cell(self, key: str, column: str) -> object:
        return self._cells[key][self.columns.index(column)]

    @property
    def cursor_key(self) -> str | None:
        return self._keys[self.cursor_row] if self._keys else None

    # -- the cursor ------------------------------------------------------------------------
    def move_cursor(self, *, row: int) -> None:
        if not self._keys:
            return
        row = max(0, min(row, len(self._keys) - 1))
        moved = row != self.cursor_row
        self.cursor_row = row
        self.refresh()
        top, height = self.scroll_offset.y, max(1, self.size.height - 1)
        if row < top:
            self.scroll_to(y=row, animate=False)
        elif row >= top + height:
            self.scroll_to(y=row - height + 1, animate=False)
        if moved:
            self.post_message(self.RowHighlighted(self, self._keys[row]))

    def action_cursor(self, step: int) -> None:
        self.move_cursor(row=self.cursor_row + step)

    def action_page(self, direction: int) -> None:
        self.move_cursor(row=self.cursor_row + direction * max(1, self.size.height - 2))

    def action_edge(self, end: int) -> None:
        self.move_cursor(row=len(self._keys) - 1 if end else 0)

    def action_select(self) -> None:
        if self._keys:
            self.post_message(self.RowSelected(self, self._keys[self.cursor_row]))

    def on_click(self, event: events.Click) -> None:
        row = event.y + self.scroll_offset.y - 1
        if 0 <= row < len(self._keys):
            self.move_cursor(row=row)
            if event.chain == 2:
                self.action_select()

    # -- drawing ---------------------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        if y == 0:
            strip = self._render_header()
        else:
            row = scroll_y + y - 1
            if row >= len(self._keys):
                return Strip.blank(width, self.rich_style)
            key = self._keys[row]
            cached = self._strips.get(key)
            if cached is None:
                cached = self._strips[key] = self._render_row(key)
            strip = cached
            if row == self.cursor_row:
                strip = strip.apply_style(self.get_component_rich_style("live-table--cursor"))
        return strip.crop_extend(scroll_x, scroll_x + width, self.rich_style)

    def _render_header(self) -> Strip:
        style = self.get_component_rich_style("live-table--header")
        segments = [
            Segment(column.label.ljust(column.width + GAP), style) for column in self._columns
        ]
        return Strip(segments, sum(c.width + GAP for c in self._columns))

    def _render_row(self, key: str) -> Strip:
        """The row from its cells' segments, rendering only the cells that changed."""
        pieces = self._pieces.setdefault(key, [None] * len(self._columns))
        console = self.app.console
        segments: list[Segment] = []
        for index, (column, cell) in enumerate(zip(self._columns, self._cells[key], strict=True)):
            piece = pieces[index]
            if piece is None:
                text = _text(cell)
                padding = Segment(" " * (column.width - text.cell_len + GAP))
                piece = pieces[index] = [*text.render(console), padding]
            segments.extend(piece)
        return Strip(segments, sum(c.width + GAP for c in self._columns))

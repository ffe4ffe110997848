"""Widgets for what changes many times a second, each drawing only what changed and is on
screen: LiveTable (rows), LiveText (a few lines of text) and EventLog (a stream of lines).

LiveTable: Textual's DataTable re-renders every visible cell after any update (its render
cache is keyed on a table-wide update count), which at thirty frames a second over a few dozen
rows is more than a frame's time. Here each row is rendered once per change, into one strip
(only the cells that changed are rendered again), and a frame draws only strips: the cost of
a frame follows what changed, not the size of the table. A row can be given as a function of
no arguments, called only when the row is drawn or read: rows off screen cost nothing until
they are scrolled to. Columns grow to fit their widest cell and do not shrink while rows only
update; neither that nor new rows lay the screen out again (`set_virtual_size`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from rich.cells import cell_len
from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Static

Cells = tuple[object, ...]
Row = Cells | Callable[[], Cells]  # the cells, or how to get them when the row is drawn
T = TypeVar("T")
GAP = 2  # spaces between columns


@dataclass
class _Column:
    key: str
    label: str
    width: int


def _width(cell: object) -> int:
    return cell.cell_len if isinstance(cell, Text) else cell_len(str(cell))


def set_virtual_size(view: ScrollView, size: Size) -> None:
    """Set a scroll view's virtual size. Textual lays the whole screen out again for it (every
    widget arranged and redrawn): needed only when the view's own size follows its content
    (an `auto` dimension) or a scrollbar comes or goes. Otherwise only the view and its
    scrollbars are drawn again."""
    if size == view.virtual_size:
        return
    if view.styles.auto_dimensions or not view.is_mounted:
        view.virtual_size = size
        return
    scrollbars = (view.show_horizontal_scrollbar, view.show_vertical_scrollbar)
    view.set_reactive(Widget.virtual_size, size)
    view._scroll_update(size)  # scrollbars shown or not, their lengths, the offset clamped
    if (view.show_horizontal_scrollbar, view.show_vertical_scrollbar) != scrollbars:
        view.refresh(layout=True)  # the content region changed size
    else:
        view.refresh()


def _segments(cell: object, console: Console) -> list[Segment]:
    """A cell's segments. `Text.render` drops the text's own style when it has no spans (a
    state's colour): that case, the common one, is done here, and faster."""
    if not isinstance(cell, Text):
        return [Segment(str(cell))]
    if cell.spans:
        return list(cell.render(console))
    return [Segment(cell.plain, console.get_style(cell.style) if cell.style else None)]


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
        self._due: dict[str, Callable[[], Cells]] = {}  # rows changed, their cells not got yet
        self._strips: dict[str, Strip] = {}
        # Each cell's segments and width; None: to render (it changed).
        self._pieces: dict[str, list[tuple[list[Segment], int] | None]] = {}
        self.cursor_row = 0
        # The widget's own style and its parts', read when focus or its style changes (Textual
        # does not cache them); the theme changing it changes the widget's own too.
        self._style = self._header_style = self._cursor_style = Style()
        self._styled_for: tuple[Style, bool] | None = None

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
        self._due.clear()
        self._strips.clear()
        self._pieces.clear()
        for column in self._columns:
            column.width = cell_len(column.label)
        self.cursor_row = 0
        self._resize()

    def add_row(self, key: str, row: Row) -> None:
        self._index[key] = len(self._keys)
        self._keys.append(key)
        self._cells[key] = ("",) * len(self._columns)  # until its cells are got
        self._pieces[key] = [None] * len(self._columns)
        self.update_row(key, row)
        self._resize()

    def update_row(self, key: str, row: Row) -> None:
        """Show `row` in row `key`; nothing is redrawn when its cells are what it shows. A
        function is called at once for a row on screen; for one off screen, when it is
        scrolled to or read, if it ever is."""
        line = 1 + self._index[key] - self.scroll_offset.y
        on_screen = 1 <= line < self.size.height
        if callable(row):
            if not on_screen:
                self._due[key] = row
                return
            row = row()
        self._due.pop(key, None)
        if self._put(key, row) and on_screen:
            self.refresh_lines(line)

    def _settle(self, key: str) -> None:
        """Row `key`'s cells got, if they are due."""
        row = self._due.pop(key, None)
        if row is not None:
            self._put(key, row())

    def _put(self, key: str, cells: Cells) -> bool:
        """`cells` in row `key`; False when they are what it has."""
        if self._cells.get(key) == cells:
            return False
        self._set(key, cells)
        self._resize()
        return True

    def _set(self, key: str, cells: Cells) -> None:
        grew = False
        for column, cell in zip(self._columns, cells, strict=True):
            width = _width(cell)
            if width > column.width:
                column.width, grew = width, True
        old, self._cells[key] = self._cells.get(key), cells
        if grew:  # every row is laid out again with the wider column (its cells are kept)
            self._strips.clear()
            self.refresh()
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
        set_virtual_size(self, Size(width, len(self._keys) + 1))

    # -- reading ---------------------------------------------------------------------------
    def get_row_index(self, key: str) -> int:
        return self._index[key]

    def get_cell(self, key: str, column: str) -> object:
        self._settle(key)
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
    def render_lines(self, crop: Region) -> list[Strip]:
        # The rows on screen got first: a column they widen is laid out before any is drawn.
        top = self.scroll_offset.y
        for key in self._keys[top : top + max(0, self.size.height - 1)]:
            if key in self._due:
                self._settle(key)
        style, focused = self.rich_style, self.has_focus
        if (style, focused) != self._styled_for:  # read once a change: each read costs
            self._styled_for = (style, focused)
            self._style = style
            self._header_style = self.get_component_rich_style("live-table--header")
            self._cursor_style = self.get_component_rich_style("live-table--cursor")
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        if y == 0:
            strip = self._render_header()
        else:
            row = scroll_y + y - 1
            if row >= len(self._keys):
                return Strip.blank(width, self._style)
            key = self._keys[row]
            cached = self._strips.get(key)
            if cached is None:
                cached = self._strips[key] = self._render_row(key)
            strip = cached
            if row == self.cursor_row:
                strip = strip.apply_style(self._cursor_style)
        return strip.crop_extend(scroll_x, scroll_x + width, self._style)

    def _render_header(self) -> Strip:
        style = self._header_style
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
                piece = pieces[index] = (_segments(cell, console), _width(cell))
            cell_segments, width = piece
            segments.extend(cell_segments)
            segments.append(Segment(" " * (column.width - width + GAP)))
        return Strip(segments, sum(c.width + GAP for c in self._columns))


class LiveText(Static):
    """A Static whose text changes every frame: the screen is laid out again (every widget
    redrawn) only when its height may change, not on every update as `Static.update` does."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._unwrapped_lines: int | None = None  # lines shown, when none wraps; None: unknown

    def show(self, text: Text) -> None:
        lines = text.plain.split("\n")
        width = self.content_size.width
        unwrapped = len(lines) if all(cell_len(line) <= width for line in lines) else None
        layout = unwrapped is None or unwrapped != self._unwrapped_lines
        self._unwrapped_lines = unwrapped
        self.update(text, layout=layout)


class EventLog(ScrollView, Generic[T], can_focus=True):
    """The newest `capacity` items of a stream, one line each, following the end.

    Items are kept as they come and made into lines (`line(item)`, its segments) only when
    drawn, each once (its strip is kept while it is on screen): a burst of thousands costs the
    lines on screen, not one line per item. The width grows to the widest line drawn.
    """

    DEFAULT_CSS = """
    EventLog {
        background: $surface;
        color: $foreground;
        overflow-y: scroll;
        &:focus {
            background-tint: $foreground 5%;
        }
    }
    """

    def __init__(self, line: Callable[[T], list[Segment]], *, capacity: int, id: str | None = None):
        super().__init__(id=id)
        self._line = line
        self._items: deque[T] = deque(maxlen=capacity)
        self._dropped = 0  # items ever pushed out at the front: item i is number _dropped + i
        self._strips: dict[int, Strip] = {}  # by number, the lines drawn lately, styled
        self._content_width = 0
        self._width = 0  # of the widest line drawn
        self._style = Style()  # the widget's own, read once a frame (Textual does not cache it)

    @property
    def items(self) -> list[T]:
        return list(self._items)

    def extend(self, items: Iterable[T]) -> None:
        new = list(items)
        if not new:
            return
        self._dropped += max(0, len(self._items) + len(new) - (self._items.maxlen or 0))
        self._items.extend(new)
        self._follow()

    def replace(self, items: Iterable[T]) -> None:
        self._dropped += len(self._items)  # new numbers: no strip drawn before is reused
        self._items.clear()
        self._strips.clear()
        self._items.extend(items)
        self._follow()

    def _follow(self) -> None:
        self._resize()
        self.scroll_to(y=self.max_scroll_y, animate=False)
        self.refresh()  # the lines moved up even when the scroll offset did not change

    def _resize(self) -> None:
        # As wide as the widget while every line fits: no horizontal scrollbar to show.
        width = max(self._width, self.scrollable_content_region.width)
        set_virtual_size(self, Size(width, len(self._items)))

    def shown(self) -> list[str]:
        """The text of the lines on screen, top to bottom."""
        return [
            self.render_line(y).text.rstrip() for y in range(self.scrollable_content_region.height)
        ]

    # -- drawing ---------------------------------------------------------------------------
    def render_lines(self, crop: Region) -> list[Strip]:
        style, region = self.rich_style, self.scrollable_content_region
        if style != self._style or region.width != self._content_width:
            # Focus or a resize, say: the strips were made with the old style or width.
            self._style, self._content_width = style, region.width
            self._strips.clear()
        top = self.scroll_offset.y
        first, last = self._dropped + top, self._dropped + top + region.height
        self._strips = {n: s for n, s in self._strips.items() if first <= n < last}
        for index in range(top, min(top + region.height, len(self._items))):
            if self._dropped + index not in self._strips:
                self._strips[self._dropped + index] = self._render_item(self._items[index])
        at_end = top >= self.max_scroll_y
        self._resize()  # a wider line: drawn again the next frame
        if at_end and top < self.max_scroll_y:  # a horizontal scrollbar came over the last line
            self.scroll_to(y=self.max_scroll_y, animate=False)
        return super().render_lines(crop)

    def _render_item(self, item: T) -> Strip:
        """The item's line, one strip at least as wide as the widget: drawn as it is, without
        the copies that styling, padding and cropping it would make (each strip costs)."""
        style = self._style  # under the line's own: its colour where the line sets none
        segments = [
            Segment(text, style + own if own else style) for text, own, _ in self._line(item)
        ]
        width = sum(cell_len(segment.text) for segment in segments)
        self._width = max(self._width, width)
        if width < self._content_width:
            segments.append(Segment(" " * (self._content_width - width), style))
            width = self._content_width
        return Strip(segments, width)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        if index >= len(self._items):
            return Strip.blank(self._content_width, self._style)
        strip = self._strips.get(self._dropped + index)
        if strip is None:  # drawn outside a frame (`shown`)
            strip = self._render_item(self._items[index])
        if scroll_x == 0 and strip.cell_length == self._content_width:
            return strip
        return strip.crop_extend(scroll_x, scroll_x + self._content_width, self._style)

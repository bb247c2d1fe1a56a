"""A small reader of the bulletin page for tests: a tree from html.parser, its tables and problem lists."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

_VOID = {"meta", "br", "col", "img", "input", "link", "hr", "source", "wbr", "area", "base"}


@dataclass
class Node:
    """An element, its attributes and its children (text as plain strings)."""

    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    def iter(self, tag: str | None = None) -> list[Node]:
        """Every element below (and including) this one, in document order, optionally of one tag."""
        found = [self] if tag is None or self.tag == tag else []
        for child in self.children:
            if isinstance(child, Node):
                found.extend(child.iter(tag))
        return found

    def text(self, *, skip_class: str = "en") -> str:
        """The text inside, without elements of class `skip_class` (the English glosses)."""
        parts = []
        for child in self.children:
            if isinstance(child, str):
                parts.append(child)
            elif skip_class not in child.attrs.get("class", "").split():
                parts.append(child.text(skip_class=skip_class))
        return " ".join("".join(parts).split())

    def by_id(self, ident: str) -> Node:
        """The element with id `ident`."""
        for node in self.iter():
            if node.attrs.get("id") == ident:
                return node
        raise KeyError(ident)


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(html: str) -> Node:
    """The page as a tree."""
    builder = _Builder()
    builder.feed(html)
    builder.close()
    return builder.root


@dataclass(frozen=True)
class Row:
    """One body row of a table: its attributes and the text of its data cells (`td`) in order."""

    attrs: dict[str, str]
    cells: list[str]


def table_rows(page: Node, ident: str) -> list[Row]:
    """The body rows of table `ident`."""
    table = page.by_id(ident)
    return [Row(tr.attrs, [td.text() for td in tr.iter("td")]) for tb in table.iter("tbody") for tr in tb.iter("tr")]


def header_labels(page: Node, ident: str) -> list[str]:
    """The Chinese labels of the header cells of table `ident`, row after row."""
    table = page.by_id(ident)
    return [th.text() for thead in table.iter("thead") for th in thead.iter("th")]


def problems(page: Node) -> dict[str, list[tuple[str, str, list[str]]]]:
    """Per org_code: (check, figure, items) of each listed problem."""
    out: dict[str, list[tuple[str, str, list[str]]]] = {}
    for card in page.by_id("problems").iter("div"):
        if "inst" not in card.attrs.get("class", "").split():
            continue
        listed = []
        for li in card.iter("li"):
            spans = li.iter("span")
            figure = next(s.text() for s in spans if s.attrs.get("class") == "figure")
            items = []
            for group in spans:
                if group.attrs.get("class") == "items":
                    items.extend(chip.text() for chip in group.iter("span")[1:])  # [0] is the group itself
            listed.append((li.attrs["data-check"], figure, items))
        out[card.attrs["data-org-code"]] = listed
    return out

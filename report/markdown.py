"""report.md from the report's blocks."""

from __future__ import annotations

from collections.abc import Sequence

from report.document import Block, Bullets, Heading, Image, Paragraph, Table


def render(blocks: Sequence[Block]) -> str:
    return "\n\n".join(_block(block) for block in blocks) + "\n"


def _block(block: Block) -> str:
    if isinstance(block, Heading):
        return f"{'#' * block.level} {block.text}"
    if isinstance(block, Paragraph):
        return block.text
    if isinstance(block, Bullets):
        return "\n".join(f"- {item}" for item in block.items)
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Image):
        return f"![{block.caption}]({block.path})\n\n*{block.caption}*"
    raise TypeError(f"unknown report block {block!r}")


def _table(table: Table) -> str:
    def row(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    aligns = ["---" if i == 0 else "---:" for i in range(len(table.headers))]
    return "\n".join([row(table.headers), "|" + "|".join(aligns) + "|", *(row(r) for r in table.rows)])


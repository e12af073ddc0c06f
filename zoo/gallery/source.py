"""An app module's source as a page that reads like a keras-io example.

The module docstring becomes the opening prose; the code is cut into the
sections its `# ---- name` comment rules already mark, each highlighted by
Pygments with the file's own line numbers, and listed, with the functions
and classes each defines, in a table of contents.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path

from markupsafe import Markup, escape
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

SECTION_RULE = re.compile(r"^# -{3,}\s*(?P<title>.+?)\s*$")
FORMATTER_STYLE = "friendly"


@dataclass
class Section:
    title: str
    anchor: str
    first_line: int  # 1-based, in the file
    code: str
    names: list[str] = field(default_factory=list)  # public top-level functions and classes, for the contents

    @property
    def html(self) -> Markup:
        formatter = HtmlFormatter(style=FORMATTER_STYLE, linenos="inline", linenostart=self.first_line)
        return Markup(highlight(self.code, PythonLexer(), formatter))


@dataclass
class Literate:
    paragraphs: list[tuple[str, str]]  # ("p", prose markup) | ("pre", text), from the docstring
    sections: list[Section]


def module_path(module: str) -> Path:
    """The file of a module, found without importing it (an app module imports Keras)."""
    return Path(importlib.util.find_spec(module).origin)


def inline_code(text: str) -> Markup:
    """Escaped prose with its `backticked` spans as <code>."""
    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(text))))


def docstring_blocks(docstring: str) -> list[tuple[str, str]]:
    """Prose paragraphs and indented (command) blocks, in order."""
    blocks = []
    for chunk in re.split(r"\n\s*\n", docstring.strip()):
        lines = chunk.splitlines()
        if all(line.startswith("    ") for line in lines):
            blocks.append(("pre", "\n".join(line[4:] for line in lines)))
        else:
            blocks.append(("p", inline_code(" ".join(line.strip() for line in lines))))
    return blocks


def _top_level_names(tree: ast.Module) -> list[tuple[int, str]]:
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return [(node.lineno, node.name) for node in tree.body if isinstance(node, kinds) and not node.name.startswith("_")]


def literate(module: str) -> Literate:
    path = module_path(module)
    text = path.read_text()
    tree = ast.parse(text)
    lines = text.splitlines()
    first = tree.body[0]
    has_docstring = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
    start = first.end_lineno if has_docstring else 0  # the docstring is shown as prose, not code
    rules = [(i, SECTION_RULE.match(line).group("title")) for i, line in enumerate(lines) if SECTION_RULE.match(line)]
    bounds = [(start, "imports and constants")] + rules + [(len(lines), "")]
    sections = []
    for (begin, title), (end, _) in zip(bounds, bounds[1:]):
        code = "\n".join(lines[begin:end]).strip("\n")
        if code:
            offset = next(i for i in range(begin, end) if lines[i].strip())
            sections.append(
                Section(title, f"s{len(sections)}-{re.sub(r'[^a-z0-9]+', '-', title.lower())}", offset + 1, code)
            )
    for lineno, name in _top_level_names(tree):
        owner = [s for s in sections if s.first_line <= lineno]
        if owner:
            owner[-1].names.append(name)
    blocks = docstring_blocks(ast.get_docstring(tree) or "") if has_docstring else []
    return Literate(blocks, sections)


def pygments_css() -> str:
    return HtmlFormatter(style=FORMATTER_STYLE).get_style_defs(".highlight")

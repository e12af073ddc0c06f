"""An app module's source as a page that reads like a keras-io example.

The module docstring becomes the opening prose; the code is cut into the
sections its `# ---- name` comment rules already mark, each highlighted by
Pygments with the file's own line numbers, and listed, with the functions
and classes each defines, in a table of contents.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from markupsafe import Markup, escape
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from zoo.gallery.outputs import module_files

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
    """The page of an app module (or of every module of an app package, each titled by its file)."""
    files = module_files(module)
    sections, blocks = [], []
    for path in files:
        text = path.read_text()
        tree = ast.parse(text)
        lines = text.splitlines()
        first = tree.body[0]
        has_docstring = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
        main = path == files[0]  # its docstring is the page's prose, not repeated as code
        start = first.end_lineno if has_docstring and main else 0
        prefix = "" if main else f"{path.name}: "
        rules = [(i, rule.group("title")) for i, line in enumerate(lines) if (rule := SECTION_RULE.match(line))]
        bounds = [(start, "imports and constants")] + rules + [(len(lines), "")]
        own = []
        for (begin, title), (end, _) in zip(bounds, bounds[1:]):
            code = "\n".join(lines[begin:end]).strip("\n")
            if code:
                offset = next(i for i in range(begin, end) if lines[i].strip())
                anchor = f"s{len(sections) + len(own)}-{re.sub(r'[^a-z0-9]+', '-', (prefix + title).lower())}"
                own.append(Section(prefix + title, anchor, offset + 1, code))
        for lineno, name in _top_level_names(tree):
            owner = [s for s in own if s.first_line <= lineno]
            if owner:
                owner[-1].names.append(name)
        sections += own
        if main and has_docstring:
            blocks = docstring_blocks(ast.get_docstring(tree) or "")
    return Literate(blocks, sections)


def pygments_css() -> str:
    return HtmlFormatter(style=FORMATTER_STYLE).get_style_defs(".highlight")

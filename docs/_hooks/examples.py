"""MkDocs hook: an example script, rendered as a tutorial page.

The scripts in `examples/` are the source of truth; a docs page holds a
marker line

    <!-- example: vae.py -->

which `on_page_markdown` replaces with the script as a tutorial:

- the module docstring's `Title:` as the page heading, `Description:` and
  `What you will see:` as the intro, the rest of the docstring as prose
  (its indented command lines as bash blocks);
- each comment cell `# ## Heading` (at the start of a line, followed by
  `# prose` lines) as a markdown heading and its prose;
- the code between cells as python blocks.

These generated blocks are not in the `.md` sources, so the docs tests do
not run them: the scripts are run by the example tests.
"""

import ast
import pathlib
import re

from mkdocs.exceptions import PluginError

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
MARKER = re.compile(r"^<!-- example: ([\w.-]+\.py) -->[ \t]*$", re.M)
FIELD = re.compile(r"^(Title|Description|What you will see):\s*(.*)$")
CELL = re.compile(r"^# (#{2,6}) (\S.*)$")


def on_page_markdown(markdown, page, config, files, **kwargs):
    return MARKER.sub(lambda match: render(match.group(1)), markdown)


def on_serve(server, config, builder, **kwargs):
    server.watch(str(EXAMPLES))  # `mkdocs serve` reloads on script edits
    return server


def render(name):
    """The tutorial markdown of `examples/<name>`."""
    path = EXAMPLES / name
    if not path.is_file():
        raise PluginError(f"<!-- example: {name} -->: no file {path}")
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    first = tree.body[0] if tree.body else None
    if not (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        raise PluginError(f"examples/{name} has no module docstring")
    fields, body = docstring_parts(first.value.value)
    if "Title" not in fields:
        raise PluginError(f"examples/{name}: its docstring has no 'Title:'")
    parts = [f"# {fields['Title']}", ""]
    if "Description" in fields:
        parts += [fields["Description"], ""]
    if "What you will see" in fields:
        parts += [f"**What you will see:** {fields['What you will see']}", ""]
    parts += prose(body)
    parts += [
        "",
        f"Below is the whole script, `examples/{name}`, cell by cell: its "
        "`# ##` comments are the text between the code blocks.",
        "",
    ]
    lines = source.splitlines()[first.end_lineno :]
    parts += cells(lines)
    return "\n".join(parts) + "\n"


def docstring_parts(docstring):
    """(fields, body lines): the `Title:`-style fields (continuation lines
    indented) and the lines after them."""
    lines = docstring.strip("\n").splitlines()
    fields, current, i = {}, None, 0
    while i < len(lines):
        match = FIELD.match(lines[i])
        if match:
            current = match.group(1)
            fields[current] = match.group(2).strip()
        elif current and lines[i][:1] in (" ", "\t") and lines[i].strip():
            fields[current] += " " + lines[i].strip()
        else:
            break
        i += 1
    return fields, lines[i:]


def prose(lines):
    """Docstring prose as markdown: runs of lines indented by 4 spaces
    after a blank line become bash blocks (the commands)."""
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        after_blank = i == 0 or not lines[i - 1].strip()
        if line.startswith("    ") and after_blank:
            block = []
            while i < len(lines) and (
                lines[i].startswith("    ") or not lines[i].strip()
            ):
                block.append(lines[i][4:])
                i += 1
            while block and not block[-1].strip():
                block.pop()
            out += ["```bash", *block, "```", ""]
            continue
        out.append(line)
        i += 1
    return out


def cells(lines):
    """Code lines -> markdown: `# ## Heading` cells and python blocks."""
    out, code, i = [], [], 0

    def flush():
        while code and not code[0].strip():
            code.pop(0)
        while code and not code[-1].strip():
            code.pop()
        if code:
            out.extend(["```python", *code, "```", ""])
        code.clear()

    while i < len(lines):
        match = CELL.match(lines[i])
        if not match:
            code.append(lines[i])
            i += 1
            continue
        flush()
        out += [f"{match.group(1)} {match.group(2)}", ""]
        i += 1
        while i < len(lines) and (lines[i] == "#" or lines[i].startswith("# ")):
            if CELL.match(lines[i]):
                break
            out.append(lines[i][2:])
            i += 1
        out.append("")
    flush()
    return out

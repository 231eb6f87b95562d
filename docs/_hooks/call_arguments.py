"""Griffe extension: render Keras's `Call arguments:` as a parameter table.

The Google docstring parser knows `Args:` but not Keras's `Call arguments:`
section, which it renders as a collapsible admonition with every entry run
into one paragraph. This extension turns that admonition into a parameters
section titled "Call arguments", rendered like `Args:`.
"""

import re

import griffe

ENTRY = re.compile(r"^(\*{0,2}\w+)\s*:\s*(.*)$")


def _entries(text):
    entries = []
    for line in text.splitlines():
        match = ENTRY.match(line)
        if match and not line.startswith(" "):
            entries.append([match.group(1), match.group(2)])
        elif entries:
            entries[-1][1] += "\n" + line.strip()
    return [
        griffe.DocstringParameter(name, description=description.strip())
        for name, description in entries
    ]


class _Docstring(griffe.Docstring):
    def parse(self, parser=None, **options):
        sections = super().parse(parser, **options)
        for i, section in enumerate(sections):
            title = getattr(section, "title", None) or ""
            if (
                isinstance(section, griffe.DocstringSectionAdmonition)
                and title.lower() == "call arguments"
            ):
                sections[i] = griffe.DocstringSectionParameters(
                    _entries(section.value.description), title="Call arguments"
                )
        return sections


class CallArguments(griffe.Extension):
    def on_instance(self, *, obj, **kwargs):
        if obj.docstring is not None:
            obj.docstring.__class__ = _Docstring

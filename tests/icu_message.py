"""Parse a translation string as the Home Assistant frontend does: an ICU message (formatjs rules).

Only what the frontend's parser (@formatjs/icu-messageformat-parser, tags not ignored) rejects or
would render wrongly is an error here: a `<` followed by a letter or `/` opens a rich-text tag
(`<config>` ends in UNCLOSED_TAG, and a closed tag has no value to render with), braces must pair,
an argument is `{name}` or `{name, type, ...}`, and an apostrophe before `{`, `}`, `<` or `>`
quotes text up to the next apostrophe (left open, it silently swallows the rest of the string).
"""

from __future__ import annotations

import re
import string

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLURAL_SELECTOR = re.compile(r"=\d+|[A-Za-z_][A-Za-z0-9_]*")
_SIMPLE_TYPES = frozenset({"number", "date", "time"})
_CHOICE_TYPES = frozenset({"plural", "selectordinal", "select"})
_QUOTABLE = frozenset("{}<>")


class IcuError(ValueError):
    """A string the frontend cannot format, with where in it the problem is."""


class _Parser:
    """A recursive-descent parser over one message; collects the argument names it meets."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.arguments: set[str] = set()

    def fail(self, problem: str) -> IcuError:
        shown = self.text[max(0, self.pos - 20) : self.pos + 20]
        return IcuError(f"{problem} at character {self.pos}: …{shown}…")

    def peek(self, offset: int = 1) -> str:
        index = self.pos + offset
        return self.text[index] if index < len(self.text) else ""

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def expect(self, char: str) -> None:
        self.skip_space()
        if self.peek(0) != char:
            raise self.fail(f"expected {char!r}")
        self.pos += 1

    def message(self, nested: bool, in_plural: bool) -> None:
        """Text up to the end, or up to the `}` that closes a nested message."""
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "{":
                self.argument()
            elif char == "}":
                if nested:
                    return
                raise self.fail("a '}' that closes nothing")
            elif char == "<" and (self.peek().isalpha() or self.peek() == "/"):
                raise self.fail("a rich-text tag (write the text without '<' before a letter)")
            elif char == "'":
                self.quote(in_plural)
            else:
                self.pos += 1
        if nested:
            raise self.fail("a '{' that is never closed")

    def quote(self, in_plural: bool) -> None:
        """An apostrophe: `''` is one, before a syntax character it quotes up to the next one."""
        following = self.peek()
        if following == "'":
            self.pos += 2
        elif following in _QUOTABLE or (following == "#" and in_plural):
            end = self.pos + 1
            while True:
                end = self.text.find("'", end + 1)
                if end < 0:
                    raise self.fail("quoted text (an apostrophe before a brace) never closed")
                if self.text[end + 1 : end + 2] != "'":
                    break
                end += 1
            self.pos = end + 1
        else:
            self.pos += 1

    def name(self, pattern: re.Pattern[str], what: str) -> str:
        self.skip_space()
        found = pattern.match(self.text, self.pos)
        if found is None:
            raise self.fail(f"expected {what}")
        self.pos = found.end()
        return found.group()

    def argument(self) -> None:
        """`{name}`, `{name, number|date|time[, style]}` or `{name, plural|select..., options}`."""
        self.pos += 1
        self.arguments.add(self.name(_IDENTIFIER, "a placeholder name"))
        self.skip_space()
        if self.peek(0) == "}":
            self.pos += 1
            return
        self.expect(",")
        kind = self.name(_IDENTIFIER, "an argument type")
        if kind in _SIMPLE_TYPES:
            self.skip_space()
            if self.peek(0) == ",":
                end = self.text.find("}", self.pos)
                if end < 0 or "{" in self.text[self.pos : end]:
                    raise self.fail("a malformed argument style")
                self.pos = end
            self.expect("}")
        elif kind in _CHOICE_TYPES:
            self.expect(",")
            self.options(in_plural=kind != "select")
        else:
            raise self.fail(f"an unknown argument type {kind!r}")

    def options(self, in_plural: bool) -> None:
        """`key {message}` pairs up to the closing brace; `other` is required."""
        keys: set[str] = set()
        while True:
            self.skip_space()
            if self.peek(0) == "}":
                self.pos += 1
                break
            if in_plural and self.text.startswith("offset:", self.pos):
                self.pos += len("offset:")
                self.name(re.compile(r"\d+"), "a plural offset")
                continue
            key = self.name(_PLURAL_SELECTOR if in_plural else _IDENTIFIER, "an option key")
            if key in keys:
                raise self.fail(f"the option {key!r} twice")
            keys.add(key)
            self.expect("{")
            self.message(nested=True, in_plural=in_plural)
            self.pos += 1
        if "other" not in keys:
            raise self.fail("a plural or select without an 'other' option")


def icu_arguments(text: str) -> set[str]:
    """The placeholder names of an ICU message; raises IcuError when the frontend cannot format it."""
    parser = _Parser(text)
    parser.message(nested=False, in_plural=False)
    return parser.arguments


def python_fields(text: str) -> set[str]:
    """The fields of a string Home Assistant formats with str.format (exception messages, names)."""
    fields: set[str] = set()
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as err:
        raise IcuError(f"str.format cannot read it: {err}") from err
    for _literal, field, spec, conversion in parsed:
        if field is None:
            continue
        if not _IDENTIFIER.fullmatch(field) or spec or conversion:
            raise IcuError(f"the field {{{field}}} is not a plain placeholder name")
        fields.add(field)
    return fields

"""Find, by reading the integration's source, every translation key and placeholder the code uses.

Keys are often computed (`errors[key] = error_key(err)`, `self._error or "inference_failed"`,
`translation_key=key` in a helper), so string values are followed through local variables,
`self.` attributes, parameters (to their call sites), returns, module constants, dict lookups and
functions imported from a sibling module. A flow handler is read together with the classes it
inherits from the integration (the server steps are a base class in their own module).
Whatever cannot be followed is reported as unresolved, so a new pattern fails loudly instead of
escaping the check.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

type Scope = ast.FunctionDef | ast.AsyncFunctionDef
# A class with the module it is written in.
type Member = tuple["Module", ast.ClassDef]

# Calls of a config, options or subentry flow that end it with a fixed reason.
_IMPLIED_ABORTS = {
    "_abort_if_unique_id_configured": "already_configured",
    "async_update_reload_and_abort": "reconfigure_successful",
    "async_update_and_abort": "reconfigure_successful",
    "_abort_if_unique_id_mismatch": "unique_id_mismatch",
}
_FLOW_BASES = {
    "ConfigFlow": "config",
    "OptionsFlow": "options",
    "OptionsFlowWithReload": "options",
    "_OptionsFlow": "options",
}


@dataclass(frozen=True)
class Use:
    """A translation the code needs: its path in strings.json, the placeholders it is given."""

    path: tuple[str, ...]
    where: str
    # None: the code gives placeholders the reader cannot list, so they are not compared.
    placeholders: frozenset[str] | None = frozenset()


@dataclass
class Found:
    """What reading the source found."""

    uses: list[Use] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)


class Module:
    """One source file: its functions, classes, module constants and relative imports."""

    def __init__(self, path: Path, package: dict[str, Module]) -> None:
        self.path = path
        self.package = package
        self.tree = ast.parse(path.read_text("utf-8"))
        self.functions: dict[str, Scope] = {}
        self.classes: dict[str, ast.ClassDef] = {}
        self.constants: dict[str, ast.expr] = {}
        self.imports: dict[str, str] = {}
        self.owner: dict[ast.AST, ast.ClassDef] = {}
        for node in self.tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                self.functions[node.name] = node
            elif isinstance(node, ast.ClassDef):
                self.classes[node.name] = node
                for item in node.body:
                    self.owner[item] = node
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        self.constants[target.id] = node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                if isinstance(node.target, ast.Name):
                    self.constants[node.target.id] = node.value
            elif isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                for alias in node.names:
                    self.imports[alias.asname or alias.name] = node.module

    def where(self, node: ast.AST) -> str:
        return f"{self.path.name}:{getattr(node, 'lineno', '?')}"

    def scopes(self) -> Iterator[tuple[Scope, ast.ClassDef | None]]:
        """Every function and method with its class."""
        yield from ((f, None) for f in self.functions.values())
        for cls in self.classes.values():
            for item in cls.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    yield item, cls

    def imported(self, name: str) -> Module | None:
        """The sibling module a name is imported from, if the package has it."""
        return self.package.get(self.imports[name]) if name in self.imports else None

    def ancestors(self, cls: ast.ClassDef) -> list[Member]:
        """The class, then the classes it inherits from this package (wherever they are written)."""
        found: list[Member] = [(self, cls)]
        for base in cls.bases:
            if not isinstance(base, ast.Name):
                continue
            if base.id in self.classes:
                found += self.ancestors(self.classes[base.id])
            elif (other := self.imported(base.id)) is not None and base.id in other.classes:
                found += other.ancestors(other.classes[base.id])
        return found

    def method(self, cls: ast.ClassDef | None, name: str) -> Scope | None:
        if cls is None:
            return None
        for item in cls.body:
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name == name:
                return item
        return None


class Resolver:
    """The string values an expression can take, followed through the module."""

    def __init__(
        self,
        module: Module,
        found: Found,
        family: list[Member] | None = None,
        active: set[tuple[int, int]] | None = None,
    ) -> None:
        self.module = module
        self.found = found
        # A flow handler's classes: `self` is one object across all of them.
        self.family = family or []
        self._active: set[tuple[int, int]] = set() if active is None else active

    def at(self, module: Module) -> Resolver:
        """A resolver for another module of the same flow (the same search in progress)."""
        if module is self.module:
            return self
        return Resolver(module, self.found, self.family, self._active)

    def members(self, cls: ast.ClassDef) -> list[Member]:
        """The classes whose methods and attributes `self` has inside `cls`."""
        if any(c is cls for _m, c in self.family):
            return self.family
        return [(self.module, cls)]

    def method(
        self, cls: ast.ClassDef | None, name: str
    ) -> tuple[Resolver, Scope, ast.ClassDef] | None:
        """A method of `self` by name, with the resolver of its module and its class."""
        for module, member in self.members(cls) if cls is not None else ():
            if (found := module.method(member, name)) is not None:
                return self.at(module), found, member
        return None

    def function(self, name: str) -> tuple[Resolver, Scope] | None:
        """A module function, or one imported from a sibling module, with its module's resolver."""
        if name in self.module.functions:
            return self, self.module.functions[name]
        other = self.module.imported(name)
        if other is not None and name in other.functions:
            return self.at(other), other.functions[name]
        return None

    def unresolved(self, node: ast.AST, what: str) -> set[str]:
        self.found.unresolved.append(f"{self.module.where(node)}: {what}: {ast.unparse(node)}")
        return set()

    def strings(self, node: ast.expr, scope: Scope | None, cls: ast.ClassDef | None) -> set[str]:
        key = (id(node), id(scope))
        if key in self._active:
            return set()
        self._active.add(key)
        try:
            return self._strings(node, scope, cls)
        finally:
            self._active.discard(key)

    def _strings(self, node: ast.expr, scope: Scope | None, cls: ast.ClassDef | None) -> set[str]:
        if isinstance(node, ast.Constant):
            return {node.value} if isinstance(node.value, str) else set()
        if isinstance(node, ast.IfExp):
            return self.strings(node.body, scope, cls) | self.strings(node.orelse, scope, cls)
        if isinstance(node, (ast.List, ast.Tuple)):  # a menu's options
            return set().union(*(self.strings(e, scope, cls) for e in node.elts))
        if isinstance(node, ast.BoolOp):
            return set().union(*(self.strings(v, scope, cls) for v in node.values))
        if isinstance(node, ast.Await):
            return self.strings(node.value, scope, cls)
        if isinstance(node, ast.NamedExpr):
            return self.strings(node.value, scope, cls)
        if isinstance(node, ast.Name):
            return self._name(node, scope, cls)
        if isinstance(node, ast.Attribute) and _is_self(node.value) and cls is not None:
            return set().union(
                *(
                    self.at(module).strings(v, s, member)
                    for module, member in self.members(cls)
                    for v, s in _attribute_values(member, node.attr)
                )
            )
        if isinstance(node, ast.Call):
            return self._call(node, scope, cls)
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
            return self._dict_values(node.value, node, scope, cls)
        return self.unresolved(node, "a value the check cannot follow")

    def _name(self, node: ast.Name, scope: Scope | None, cls: ast.ClassDef | None) -> set[str]:
        if scope is not None:
            values = list(_local_values(scope, node.id))
            if values:
                return set().union(*(self.strings(v, scope, cls) for v in values))
            if node.id in _parameters(scope):
                return self._arguments(scope, cls, node.id)
        if node.id in self.module.constants:
            return self.strings(self.module.constants[node.id], None, None)
        if node.id in self.module.imports:
            other = self.module.package.get(self.module.imports[node.id])
            if other is not None and node.id in other.constants:
                return Resolver(other, self.found).strings(other.constants[node.id], None, None)
        return self.unresolved(node, "a name the check cannot follow")

    def _arguments(self, scope: Scope, cls: ast.ClassDef | None, name: str) -> set[str]:
        """A parameter's values: what every call of its function in the module passes."""
        values: set[str] = set()
        members = self.members(cls) if cls is not None else [(self.module, cls)]
        modules = {id(module): module for module, _c in members}.values()
        peers = [member for _m, member in members]
        for module in modules:
            for call, caller, caller_cls in _calls_of(module, scope, cls, peers):
                argument = _argument(scope, call, name)
                if argument is not None:
                    values |= self.at(module).strings(argument, caller, caller_cls)
        return values

    def _call(self, node: ast.Call, scope: Scope | None, cls: ast.ClassDef | None) -> set[str]:
        func = node.func
        if isinstance(func, ast.Name) and (function := self.function(func.id)) is not None:
            resolver, callee = function
            return set().union(*(resolver.strings(r, callee, None) for r in _returns(callee)))
        if (
            isinstance(func, ast.Attribute)
            and _is_self(func.value)
            and (method := self.method(cls, func.attr)) is not None
        ):
            resolver, callee, callee_cls = method
            return set().union(*(resolver.strings(r, callee, callee_cls) for r in _returns(callee)))
        if (
            isinstance(func, ast.Attribute)
            and func.attr == "get"
            and isinstance(func.value, ast.Name)
            and func.value.id in self.module.constants
        ):
            values = self._dict_values(func.value, node, scope, cls)
            if len(node.args) > 1:
                values |= self.strings(node.args[1], scope, cls)
            return values
        return self.unresolved(node, "a call the check cannot follow")

    def _dict_values(
        self, name: ast.Name, node: ast.expr, scope: Scope | None, cls: ast.ClassDef | None
    ) -> set[str]:
        table = self.module.constants.get(name.id)
        if not isinstance(table, ast.Dict):
            return self.unresolved(node, "a lookup in something that is not a module dict")
        return set().union(*(self.strings(v, None, None) for v in table.values))

    def error_values(self, node: ast.expr, scope: Scope, cls: ast.ClassDef | None) -> set[str]:
        """The values of an `errors` dict given to a form."""
        if isinstance(node, ast.Constant) and node.value is None:
            return set()
        if isinstance(node, ast.Dict):
            return set().union(*(self.strings(v, scope, cls) for v in node.values))
        if isinstance(node, ast.DictComp):
            return self.strings(node.value, scope, cls)
        if isinstance(node, ast.IfExp):
            return self.error_values(node.body, scope, cls) | self.error_values(
                node.orelse, scope, cls
            )
        if isinstance(node, ast.Name):
            values = {
                s for v in _local_values(scope, node.id) for s in self.error_values(v, scope, cls)
            }
            for value in _item_values(scope, node.id):
                values |= self.strings(value, scope, cls)
            return values
        if isinstance(node, ast.Call):
            func = node.func
            found: tuple[Resolver, Scope, ast.ClassDef | None] | None = None
            if isinstance(func, ast.Name) and (function := self.function(func.id)) is not None:
                found = (*function, None)
            elif isinstance(func, ast.Attribute) and _is_self(func.value):
                found = self.method(cls, func.attr)
            if found is not None:
                resolver, callee, callee_cls = found
                return set().union(
                    *(resolver.error_values(r, callee, callee_cls) for r in _returns(callee))
                )
        return self.unresolved(node, "form errors the check cannot follow")

    def keys(
        self, node: ast.expr, scope: Scope | None, cls: ast.ClassDef | None
    ) -> frozenset[str] | None:
        """The keys of a placeholders dict; None when they cannot all be listed."""
        if isinstance(node, ast.Dict):
            keys: set[str] = set()
            for key, value in zip(node.keys, node.values, strict=True):
                if key is None:
                    inner = self._spread_keys(value, scope, cls)
                    if inner is None:
                        return None
                    keys |= inner
                elif isinstance(key, ast.Constant) and isinstance(key.value, str):
                    keys.add(key.value)
                else:
                    return None
            return frozenset(keys)
        return self._spread_keys(node, scope, cls)

    def _spread_keys(
        self, node: ast.expr, scope: Scope | None, cls: ast.ClassDef | None
    ) -> frozenset[str] | None:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            function = self.function(node.func.id)
            if function is not None:
                resolver, callee = function
                keys: set[str] = set()
                for returned in _returns(callee):
                    inner = resolver.keys(returned, callee, None)
                    if inner is None:
                        return None
                    keys |= inner
                return frozenset(keys)
        return None


def _is_self(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id in {"self", "cls"}


def _walk(scope: ast.AST) -> Iterator[ast.AST]:
    """Every node inside a function, those of functions and lambdas defined in it included."""
    stack = list(ast.iter_child_nodes(scope))
    while stack:
        node = stack.pop()
        yield node
        stack.extend(ast.iter_child_nodes(node))


def _assignments(scope: ast.AST) -> Iterator[tuple[ast.expr, ast.expr]]:
    """(target, value) pairs, tuple assignments split element by element."""
    for node in _walk(scope):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                yield from _pairs(target, node.value)
        elif (isinstance(node, ast.AnnAssign) and node.value is not None) or isinstance(
            node, ast.NamedExpr
        ):
            yield node.target, node.value


def _pairs(target: ast.expr, value: ast.expr) -> Iterator[tuple[ast.expr, ast.expr]]:
    if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple):
        for t, v in zip(target.elts, value.elts, strict=False):
            yield from _pairs(t, v)
    else:
        yield target, value


def _local_values(scope: ast.AST, name: str) -> Iterator[ast.expr]:
    for target, value in _assignments(scope):
        if isinstance(target, ast.Name) and target.id == name:
            yield value


def _item_values(scope: ast.AST, name: str) -> Iterator[ast.expr]:
    """The values of `name[...] = value` assignments."""
    for target, value in _assignments(scope):
        if (
            isinstance(target, ast.Subscript)
            and isinstance(target.value, ast.Name)
            and target.value.id == name
        ):
            yield value


def _attribute_values(cls: ast.ClassDef, attr: str) -> Iterator[tuple[ast.expr, Scope]]:
    for item in cls.body:
        if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
            for target, value in _assignments(item):
                if (
                    isinstance(target, ast.Attribute)
                    and _is_self(target.value)
                    and target.attr == attr
                ):
                    yield value, item


def _returns(scope: Scope) -> Iterator[ast.expr]:
    for node in _walk(scope):
        if isinstance(node, ast.Return) and node.value is not None:
            yield node.value


def _parameters(scope: Scope) -> list[str]:
    arguments = scope.args
    return [a.arg for a in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)]


def _argument(scope: Scope, call: ast.Call, name: str) -> ast.expr | None:
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value
    positional = [a.arg for a in (*scope.args.posonlyargs, *scope.args.args)]
    if positional and positional[0] in {"self", "cls"}:
        positional = positional[1:]
    index = positional.index(name) if name in positional else -1
    return call.args[index] if 0 <= index < len(call.args) else None


def _calls_of(
    module: Module, scope: Scope, cls: ast.ClassDef | None, peers: list[ast.ClassDef] | None = None
) -> Iterator[tuple[ast.Call, Scope, ast.ClassDef | None]]:
    """Calls of a function, or of a method through `self` (in its class or the `peers`)."""
    classes = peers or [cls]
    for caller, caller_cls in module.scopes():
        for node in _walk(caller):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            plain = cls is None and isinstance(func, ast.Name) and func.id == scope.name
            method = (
                cls is not None
                and any(caller_cls is c for c in classes)
                and isinstance(func, ast.Attribute)
                and _is_self(func.value)
                and func.attr == scope.name
            )
            if plain or method:
                yield node, caller, caller_cls


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _call_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def read_package(folder: Path) -> dict[str, Module]:
    """Every module of the integration (not the engine, which never speaks to the user)."""
    package: dict[str, Module] = {}
    for path in sorted(folder.glob("*.py")):
        package[path.stem] = Module(path, package)
    return package


def flow_kinds(package: dict[str, Module]) -> dict[tuple[str, str], tuple[str, ...]]:
    """(module, class) of each flow handler → its section in strings.json.

    A class that another class of the package inherits from is read as part of that one.
    """
    kinds: dict[tuple[str, str], tuple[str, ...]] = {}
    subentry_types: dict[str, str] = {}
    for module in package.values():
        for cls in module.classes.values():
            method = module.method(cls, "async_get_supported_subentry_types")
            if method is None:
                continue
            for returned in _returns(method):
                if isinstance(returned, ast.Dict):
                    for key, value in zip(returned.keys, returned.values, strict=True):
                        if key is not None and isinstance(value, ast.Name):
                            (kind,) = Resolver(module, Found()).strings(key, None, None)
                            subentry_types[value.id] = kind
    inherited = {
        id(base)
        for module in package.values()
        for cls in module.classes.values()
        for _m, base in module.ancestors(cls)[1:]
    }
    for name, module in package.items():
        for cls in module.classes.values():
            if id(cls) in inherited:
                continue
            bases = {
                b.id if isinstance(b, ast.Name) else getattr(b, "attr", "")
                for _m, member in module.ancestors(cls)
                for b in member.bases
            }
            for base in bases:
                if base in _FLOW_BASES:
                    kinds[name, cls.name] = (_FLOW_BASES[base],)
                elif base == "ConfigSubentryFlow" and cls.name in subentry_types:
                    kinds[name, cls.name] = ("config_subentries", subentry_types[cls.name])
    return kinds


def flow_uses(package: dict[str, Module], found: Found) -> None:
    """Steps, form errors, aborts and progress texts of every flow, with their placeholders."""
    for (name, class_name), section in flow_kinds(package).items():
        family = package[name].ancestors(package[name].classes[class_name])
        handler = Resolver(package[name], found, family)
        subentry = section[0] == "config_subentries"
        for module, cls in family:
            resolver = handler.at(module)
            for item in cls.body:
                if not isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                for node in _walk(item):
                    if isinstance(node, ast.Call):
                        _flow_call(resolver, node, item, cls, section, subentry)


def _flow_call(
    resolver: Resolver,
    call: ast.Call,
    scope: Scope,
    cls: ast.ClassDef,
    section: tuple[str, ...],
    subentry: bool,
) -> None:
    where = resolver.module.where(call)
    uses = resolver.found.uses
    name = _call_name(call)
    given = _keyword(call, "description_placeholders")
    placeholders = frozenset() if given is None else resolver.keys(given, scope, cls)
    if name == "async_show_form":
        for step in resolver.strings(_required(call, "step_id"), scope, cls):
            uses.append(Use((*section, "step", step), where, placeholders))
        errors = _keyword(call, "errors")
        if errors is not None:
            for error in resolver.error_values(errors, scope, cls):
                uses.append(Use((*section, "error", error), where, placeholders))
    elif name == "async_show_menu":
        for step in resolver.strings(_required(call, "step_id"), scope, cls):
            options = _keyword(call, "menu_options")
            for option in resolver.strings(options, scope, cls) if options is not None else ():
                uses.append(Use((*section, "step", step, "menu_options", option), where, None))
    elif name == "async_show_progress":
        action = _keyword(call, "progress_action")
        for value in resolver.strings(action, scope, cls) if action is not None else ():
            uses.append(Use((*section, "progress", value), where, placeholders))
    elif name == "async_abort":
        for reason in resolver.strings(_required(call, "reason"), scope, cls):
            uses.append(Use((*section, "abort", reason), where, placeholders))
    elif name in _IMPLIED_ABORTS:
        reason_node = _keyword(call, "reason")
        reasons = (
            {_IMPLIED_ABORTS[name]}
            if reason_node is None
            else resolver.strings(reason_node, scope, cls)
        )
        uses.extend(Use((*section, "abort", r), where, placeholders) for r in reasons)
    elif name == "async_create_entry" and subentry and _keyword(call, "unique_id") is not None:
        # A subentry whose unique id is taken ends the flow with this reason.
        uses.append(Use((*section, "abort", "already_configured"), where))


def _required(call: ast.Call, name: str) -> ast.expr:
    value = _keyword(call, name)
    if value is None:
        raise AssertionError(f"{name}= is not a keyword argument of {ast.unparse(call)}")
    return value


def message_uses(package: dict[str, Module], found: Found) -> None:
    """Translated exceptions, repair issues and selector options."""
    for module in package.values():
        resolver = Resolver(module, found)
        for scope, cls in module.scopes():
            for node in _walk(scope):
                if not isinstance(node, ast.Call):
                    continue
                key = _keyword(node, "translation_key")
                if key is None:
                    continue
                name = _call_name(node)
                if name == "async_create_issue":
                    _issue(resolver, node, key, scope, cls)
                elif _keyword(node, "translation_domain") is not None:
                    _exception(resolver, node, key, scope, cls)
                elif name == "SelectSelectorConfig":
                    for value in resolver.strings(key, scope, cls):
                        found.uses.append(Use(("selector", value, "options"), module.where(node)))


def _issue(
    resolver: Resolver, call: ast.Call, key: ast.expr, scope: Scope, cls: ast.ClassDef | None
) -> None:
    given = _keyword(call, "translation_placeholders")
    placeholders = frozenset() if given is None else resolver.keys(given, scope, cls)
    for value in resolver.strings(key, scope, cls):
        for part in ("title", "description"):
            resolver.found.uses.append(
                Use(("issues", value, part), resolver.module.where(call), placeholders)
            )


def _exception(
    resolver: Resolver, call: ast.Call, key: ast.expr, scope: Scope, cls: ast.ClassDef | None
) -> None:
    """`translation_key=`; a helper passing its own parameters is read at each of its calls."""
    given = _keyword(call, "translation_placeholders")
    kwarg = scope.args.kwarg.arg if scope.args.kwarg is not None else None
    if (
        isinstance(key, ast.Name)
        and key.id in _parameters(scope)
        and isinstance(given, ast.Name)
        and given.id == kwarg
    ):
        for site, caller, caller_cls in _calls_of(resolver.module, scope, cls):
            argument = _argument(scope, site, key.id)
            names = frozenset(k.arg for k in site.keywords if k.arg and k.arg != key.id)
            for value in resolver.strings(argument, caller, caller_cls) if argument else ():
                resolver.found.uses.append(
                    Use(("exceptions", value, "message"), resolver.module.where(site), names)
                )
        return
    placeholders = frozenset() if given is None else resolver.keys(given, scope, cls)
    for value in resolver.strings(key, scope, cls):
        resolver.found.uses.append(
            Use(("exceptions", value, "message"), resolver.module.where(call), placeholders)
        )


def entity_uses(package: dict[str, Module], platforms: set[str], found: Found) -> None:
    """Entity names (class attributes and entity descriptions) and enum sensor states."""
    for name, module in package.items():
        if name not in platforms:
            continue
        resolver = Resolver(module, found)
        for cls in module.classes.values():
            attributes = {
                t.id: stmt.value
                for stmt in cls.body
                if isinstance(stmt, ast.Assign)
                for t in stmt.targets
                if isinstance(t, ast.Name)
            }
            key = attributes.get("_attr_translation_key")
            if key is None:
                continue
            unnamed = isinstance(attributes.get("_attr_name"), ast.Constant)
            given = _class_placeholders(cls)
            placeholders = frozenset() if given is None else resolver.keys(given, None, cls)
            for value in resolver.strings(key, None, cls):
                part = () if unnamed else ("name",)
                found.uses.append(
                    Use(("entity", name, value, *part), module.where(key), placeholders)
                )
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Call) and (key := _keyword(node, "translation_key")):
                if _keyword(node, "translation_domain") is not None:
                    continue
                for value in resolver.strings(key, None, None):
                    found.uses.append(Use(("entity", name, value, "name"), module.where(node)))
                    options = _keyword(node, "options")
                    if isinstance(options, ast.List):
                        for option in options.elts:
                            for state in resolver.strings(option, None, None):
                                found.uses.append(
                                    Use(("entity", name, value, "state", state), module.where(node))
                                )


def _class_placeholders(cls: ast.ClassDef) -> ast.expr | None:
    """What an entity class sets `_attr_translation_placeholders` to (in a method or the body)."""
    for stmt in cls.body:
        if isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                if isinstance(target, ast.Name) and target.id == "_attr_translation_placeholders":
                    return stmt.value
    for value, _scope in _attribute_values(cls, "_attr_translation_placeholders"):
        return value
    return None


def find_uses(folder: Path, platforms: set[str]) -> Found:
    """Every translation the integration's code uses."""
    package = read_package(folder)
    found = Found()
    flow_uses(package, found)
    message_uses(package, found)
    entity_uses(package, platforms, found)
    return found

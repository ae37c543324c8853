"""Griffe extension for the API reference (`make docs`).

**Names exported over a same-named submodule.** ``freqlens.metrics`` does ``from .vii import vii`` and
lists ``vii`` in ``__all__``: at run time ``freqlens.metrics.vii`` is the *function*, but Griffe (which
reads the source, it imports nothing) lets the submodule ``vii.py`` shadow it, so the reference would miss
``freqlens.metrics.vii``. For every package whose ``__all__`` names a submodule that defines a member of
the same name, this extension puts that member (as an alias) at the package path, as Python does, after
pointing the package's other aliases into that submodule straight at their objects (their paths no
longer resolve through it).

**Sphinx roles.** freqlens' docstrings cross-reference with Sphinx roles (``:func:`count_passes```,
``:class:`~freqlens.models.Normalized```), which Markdown would print as they are. Each role becomes a
code span linked to the object's reference entry when the name resolves in the docstring's scope
(an *optional* mkdocs-autorefs reference: a name that is not documented stays plain code, never a
warning).
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|exc|obj|const|type):`(?P<target>[^`<>]+)`")


def _exported_shadows(package: griffe.Module) -> None:
    exports = package.exports or ()
    for name in list(exports):
        name = name if isinstance(name, str) else getattr(name, "name", str(name))
        member = package.members.get(name)
        if member is None or member.is_alias or not member.is_module or name not in member.members:
            continue
        submodule = member
        prefix = submodule.path + "."
        for other in list(package.members.values()):
            if other.is_alias and not other.resolved and other.target_path.startswith(prefix):
                try:
                    other.target = submodule.get_member(other.target_path[len(prefix):])
                except KeyError:
                    pass  # left unresolved, as Griffe would leave it
        package.set_member(name, griffe.Alias(name, submodule.members[name], parent=package))
    for child in list(package.members.values()):
        if not child.is_alias and child.is_module:
            _exported_shadows(child)


def _resolve(scope: griffe.Object, target: str) -> str:
    """The full path of ``target`` seen from ``scope`` (``target`` itself when it does not resolve)."""
    target = target.lstrip(".")
    if target.startswith("freqlens."):
        return target
    head, _, rest = target.partition(".")
    obj: griffe.Object | None = scope
    while obj is not None:
        try:
            path = obj.resolve(head)
        except griffe.NameResolutionError:
            obj = obj.parent
            continue
        return f"{path}.{rest}" if rest else path
    return target


def _role_links(docstring: str, scope: griffe.Object) -> str:
    def link(match: re.Match[str]) -> str:
        target = match["target"].strip()
        short = target.startswith("~")
        target = target.lstrip("~")
        title = target.rsplit(".", 1)[-1] if short else target.lstrip(".")
        identifier = html.escape(_resolve(scope, target), quote=True)
        return f'<autoref identifier="{identifier}" optional><code>{html.escape(title)}</code></autoref>'

    return _ROLE.sub(link, docstring)


def _rewrite_roles(obj: griffe.Object) -> None:
    if obj.docstring is not None and ":" in obj.docstring.value:
        obj.docstring.value = _role_links(obj.docstring.value, obj if not obj.is_attribute else obj.parent)
        obj.docstring.__dict__.pop("parsed", None)  # parsed lazily: drop a cached parse of the old text
    for member in obj.members.values():
        if not member.is_alias:
            _rewrite_roles(member)


class FreqlensDocs(griffe.Extension):
    """Sphinx roles as links, and ``package.NAME`` the object ``from .NAME import NAME`` puts there."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:  # griffe >= 2
        _rewrite_roles(pkg)
        _exported_shadows(pkg)

    def on_package_loaded(self, *, pkg: griffe.Module, **kwargs: Any) -> None:  # griffe 1.x
        self.on_package(pkg=pkg)

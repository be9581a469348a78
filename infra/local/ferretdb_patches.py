"""Source fixes applied to the vendored FerretDB module before the local build.

Each one replaces an exact piece of upstream text and fails the build loudly when that text
is not there once (a new FerretDB version must be looked at again, not patched blindly).
See docs/adr/0015-local-ferretdb-uses-its-id-index.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from infra.local.processes import StackError


@dataclass(frozen=True)
class SourcePatch:
    path: str
    """The file, relative to the FerretDB module's root."""
    old: str
    new: str
    why: str


ID_INDEX = SourcePatch(
    path="internal/backends/sqlite/metadata/metadata.go",
    old="""IDColumn = DefaultColumn + "->'$._id'\"""",
    new="""IDColumn = DefaultColumn + `->"_id"`""",
    why=(
        "FerretDB 1.24's SQLite backend filters `{_id: <string>}` lookups, updates and "
        "deletes on `_ferretdb_sjson->'$._id'`, but builds the unique `_id_` index on "
        '`_ferretdb_sjson->"_id"`. The values are equal, the expressions are not, so '
        "SQLite's planner never uses the index: every `_id` lookup scans its table. Written "
        "as the index is, the same filter is an index search."
    ),
)

PATCHES = (ID_INDEX,)


def apply_patches(module_root: Path, patches: tuple[SourcePatch, ...] = PATCHES) -> None:
    """Apply `patches` to the module at `module_root` (a vendored copy: it is edited)."""
    for patch in patches:
        source = module_root / patch.path
        text = source.read_text()
        found = text.count(patch.old)
        if found != 1:
            raise StackError(
                f"FerretDB source patch does not fit {patch.path}: expected the text "
                f"{patch.old!r} once, found it {found} times (was FerretDB's version changed?)"
            )
        source.write_text(text.replace(patch.old, patch.new))


def patches_digest(patches: tuple[SourcePatch, ...] = PATCHES) -> bytes:
    """What the patches change, for the digest that decides whether to rebuild."""
    return "\n".join(f"{p.path}\0{p.old}\0{p.new}" for p in patches).encode()

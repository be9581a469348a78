"""The FerretDB source fixes: applied where their text is, refused where it is not."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.local.ferretdb_patches import ID_INDEX, SourcePatch, apply_patches, patches_digest
from infra.local.processes import StackError

UPSTREAM_METADATA = """const (
	DefaultColumn = backends.ReservedPrefix + "sjson"

	// IDColumn is a SQLite path expression for _id field.
	IDColumn = DefaultColumn + "->'$._id'"
)
"""


def vendored(tmp_path: Path, text: str) -> Path:
    source = tmp_path / ID_INDEX.path
    source.parent.mkdir(parents=True)
    source.write_text(text)
    return tmp_path


def test_the_id_column_is_written_as_the_id_index_is(tmp_path: Path) -> None:
    root = vendored(tmp_path, UPSTREAM_METADATA)

    apply_patches(root)

    patched = (root / ID_INDEX.path).read_text()
    assert 'IDColumn = DefaultColumn + `->"_id"`' in patched
    assert "$._id" not in patched
    assert patched.replace('`->"_id"`', "\"->'$._id'\"") == UPSTREAM_METADATA


@pytest.mark.parametrize("times", [0, 2])
def test_a_patch_that_does_not_fit_once_stops_the_build(tmp_path: Path, times: int) -> None:
    root = vendored(tmp_path, "package metadata\n" + "IDColumn = x\n" * times)
    patch = SourcePatch(ID_INDEX.path, old="IDColumn = x", new="IDColumn = y", why="test")

    with pytest.raises(StackError, match=f"found it {times} times"):
        apply_patches(root, (patch,))


def test_changing_a_patch_changes_the_digest_that_triggers_a_rebuild() -> None:
    changed = SourcePatch(ID_INDEX.path, ID_INDEX.old, ID_INDEX.new + " ", ID_INDEX.why)

    assert patches_digest((changed,)) != patches_digest()

"""What each party may see: file modes, visitor history across departments, canned messages,
and the limits on opening chats."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from engine._store import open_store


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _modes(folder: Path) -> dict[str, int]:
    return {p.name: _mode(p) for p in folder.iterdir() if p.name.startswith("helpline")}


class TestDatabaseFiles:
    async def test_created_readable_by_owner_only(self, tmp_path: Path) -> None:
        """The database, its -wal and its -shm are created 0600, whatever the umask."""
        db = tmp_path / "helpline.db"
        old = os.umask(0o022)
        try:
            async with open_store(db, synchronous="NORMAL") as store:
                await store.save_token(
                    token_hash="h" * 64, role="admin", subject="admin:root", created_at=1.0
                )
                modes = _modes(tmp_path)
        finally:
            os.umask(old)
        assert {"helpline.db", "helpline.db-wal", "helpline.db-shm"} <= set(modes)
        assert {name: 0o600 for name in modes} == modes

    async def test_existing_file_is_narrowed(self, tmp_path: Path) -> None:
        """A database file left readable by others from an older version is made 0600."""
        db = tmp_path / "helpline.db"
        db.touch()
        os.chmod(db, 0o644)
        async with open_store(db, synchronous="NORMAL"):
            pass
        assert _mode(db) == 0o600

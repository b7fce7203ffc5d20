"""The secrets resolved at startup, the MAC secret of compact-profile codes among them."""

from __future__ import annotations

import json
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sealmark.errors import InvalidArgument
from sealmark.secrets import resolve_secrets
from sealmark.settings import load_settings

EXTERNAL = {
    "SEALMARK_DATABASE_URL": "postgresql://db.example/sealmark",
    "SEALMARK_REDIS_URL": "redis://cache.example",
    "SEALMARK_SECRET_PEPPER": "unit-pepper-0123456789",
    "SEALMARK_KEY_PASSPHRASE": "unit-passphrase",
}
MAC = "unit-mac-secret-0123456789abcdefghij"


def test_with_external_servers_the_mac_secret_is_optional() -> None:
    assert resolve_secrets(load_settings(EXTERNAL)).mac_secret is None
    secrets = resolve_secrets(load_settings({**EXTERNAL, "SEALMARK_MAC_SECRET": MAC}))
    assert secrets.mac_secret == MAC.encode()
    assert MAC not in repr(secrets)


def test_a_short_mac_secret_is_refused_naming_the_key() -> None:
    with pytest.raises(InvalidArgument) as caught:
        load_settings({**EXTERNAL, "SEALMARK_MAC_SECRET": "too-short"})
    assert caught.value.field == "SEALMARK_MAC_SECRET"


def test_an_older_dev_secrets_file_gains_a_mac_secret_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "dev-secrets.json"
    path.write_text(json.dumps({"pepper": "old-pepper-0123456789", "passphrase": "old-pass"}))
    path.chmod(0o600)
    settings = load_settings({"SEALMARK_DATA_DIR": str(tmp_path)})
    first = resolve_secrets(settings)
    assert (first.pepper, first.key_passphrase) == (b"old-pepper-0123456789", b"old-pass")
    assert first.mac_secret is not None and len(first.mac_secret) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert resolve_secrets(settings).mac_secret == first.mac_secret  # kept, not redrawn
    assert json.loads(path.read_text())["mac"] == first.mac_secret.decode()


def test_processes_starting_together_agree_on_the_dev_secrets(tmp_path: Path) -> None:
    # Each resolves under the file's lock: whoever comes second reads what the first wrote.
    settings = load_settings({"SEALMARK_DATA_DIR": str(tmp_path)})
    with ThreadPoolExecutor(8) as pool:
        resolved = list(pool.map(lambda _: resolve_secrets(settings), range(16)))
    assert len({(s.pepper, s.key_passphrase, s.mac_secret) for s in resolved}) == 1
    assert stat.S_IMODE((tmp_path / "dev-secrets.json").stat().st_mode) == 0o600

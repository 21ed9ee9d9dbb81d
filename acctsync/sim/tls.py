"""The local CA and a server certificate for 127.0.0.1 and localhost.

Every simulator of a user shares one CA, kept in a private folder of the temp directory. Port
443, where msal looks up the user realm before a password grant, can belong to only one
simulator at a time; with a shared CA, that one also passes TLS verification for clients of
every other simulator running alongside it (tests started in parallel, for instance).
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import trustme

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z ]+)-----.+?-----END \1-----\n?", re.DOTALL)


@dataclass(frozen=True)
class TlsFiles:
    ca_file: Path
    cert_file: Path
    key_file: Path


def _shared_ca_file() -> Path:
    folder = Path(tempfile.gettempdir()) / f"acctsync-sim-ca-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    if folder.stat().st_uid != os.getuid() or folder.stat().st_mode & 0o077:
        raise PermissionError(f"{folder} must belong to this user and be private (0700)")
    return folder / "ca-and-key.pem"


def _load_or_create_ca() -> trustme.CA:
    path = _shared_ca_file()
    try:
        blocks = {m.group(1): m.group(0) for m in _PEM_BLOCK.finditer(path.read_bytes())}
        key = next(v for k, v in blocks.items() if k.endswith(b"PRIVATE KEY"))
        return trustme.CA.from_pem(blocks[b"CERTIFICATE"], key)
    except (OSError, KeyError, StopIteration, ValueError):
        pass
    ca = trustme.CA(organization_name="acctsync simulator CA")
    # Certificate and key live in one file replaced atomically, so a simulator starting at
    # the same moment reads either the old pair or the new one, never a mix.
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_bytes(ca.cert_pem.bytes() + ca.private_key_pem.bytes())
    partial.chmod(0o600)
    os.replace(partial, path)
    return ca


def make_certificates(directory: Path) -> TlsFiles:
    """Write ca.pem (to trust), server.pem (chain) and server.key into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = _load_or_create_ca()
    server = ca.issue_cert("127.0.0.1", "localhost")
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    ca.cert_pem.write_to_path(str(files.ca_file))
    server.private_key_pem.write_to_path(str(files.key_file))
    files.key_file.chmod(0o600)
    for index, blob in enumerate(server.cert_chain_pems):
        blob.write_to_path(str(files.cert_file), append=index > 0)
    return files

"""GnuPG symmetric encryption (AES-256, authenticated by its MDC): a dump file anyone with the
passphrase can decrypt with plain `gpg --decrypt`, no hastack needed."""

from __future__ import annotations

from pathlib import Path

GPG = "/usr/bin/gpg"


def _common(homedir: Path, passphrase_file: Path) -> list[str]:
    return [
        GPG,
        f"--homedir={homedir}",
        "--batch",
        "--yes",
        "--no-tty",
        "--quiet",
        "--pinentry-mode=loopback",
        "--no-symkey-cache",  # the passphrase is read from its file, never kept by an agent
        f"--passphrase-file={passphrase_file}",
    ]


def encrypt_argv(homedir: Path, passphrase_file: Path, output: Path) -> list[str]:
    """stdin -> `output`, encrypted (the input is compressed already)."""
    return [
        *_common(homedir, passphrase_file),
        "--symmetric",
        "--cipher-algo=AES256",
        "--compress-algo=none",
        f"--output={output}",
    ]


def decrypt_argv(homedir: Path, passphrase_file: Path, source: Path) -> list[str]:
    """`source` -> stdout; fails on a wrong passphrase or a modified file."""
    return [*_common(homedir, passphrase_file), "--decrypt", str(source)]

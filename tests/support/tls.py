"""A certificate authority made by the test (``openssl``), and a server certificate it signs for
127.0.0.1 and localhost: the scripted endpoints serve HTTPS with it, the gateway verifies it."""

from __future__ import annotations

import ssl
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass
class TestCA:
    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_test_ca(folder: Path) -> TestCA:
    """A fresh CA (a day long) and a server certificate for 127.0.0.1 / localhost."""
    folder.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=AgilePlus test CA", cwd=folder)
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                    "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "server.key",
             "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=folder)
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.pem", "-days", "1", "-extfile", "san.cnf", cwd=folder)
    return TestCA(folder / "ca.pem", folder / "server.pem", folder / "server.key")


_shared: TestCA | None = None


def shared_test_ca() -> TestCA:
    """One CA for a whole test process (made on first use, in a temporary folder)."""
    global _shared
    if _shared is None:
        _shared = make_test_ca(Path(tempfile.mkdtemp(prefix="agileplus-test-ca-")))
    return _shared

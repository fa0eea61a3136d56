# SPDX-License-Identifier: Apache-2.0
"""A throw-away PKI made with the ``openssl`` CLI: CA, server cert for 127.0.0.1/localhost, client cert
for mutual TLS, and an unrelated "wrong" CA (with its own client cert) for negative tests."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass(frozen=True)
class Pki:
    dir: Path
    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    wrong_ca_cert: Path
    wrong_client_cert: Path
    wrong_client_key: Path


def _run(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _ca(d: Path, name: str, cn: str) -> None:
    _run(
        "req", "-x509", *_EC, "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "3",
        "-subj", f"/CN={cn}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=d,
    )  # fmt: skip


def _leaf(d: Path, name: str, ca: str, cn: str, ext: str) -> None:
    (d / f"{name}.ext").write_text(ext)
    _run("req", *_EC, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
    _run(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
        "-out", f"{name}.crt", "-days", "3", "-extfile", f"{name}.ext",
        cwd=d,
    )  # fmt: skip


def make_pki(d: Path, client_cn: str = "gw-agent") -> Pki:
    d.mkdir(parents=True, exist_ok=True)
    _ca(d, "ca", "Ironlink Test CA")
    _ca(d, "wrong-ca", "Some Other CA")
    _leaf(
        d,
        "server",
        "ca",
        "localhost",
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyAgreement\n"
        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    client_ext = (
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n"
    )
    _leaf(d, "client", "ca", client_cn, client_ext)
    _leaf(d, "wrong-client", "wrong-ca", client_cn, client_ext)
    for p in d.iterdir():  # mosquitto drops to user "mosquitto": it must read these
        p.chmod(0o644)
    d.chmod(0o755)
    return Pki(
        dir=d,
        ca_cert=d / "ca.crt",
        server_cert=d / "server.crt",
        server_key=d / "server.key",
        client_cert=d / "client.crt",
        client_key=d / "client.key",
        wrong_ca_cert=d / "wrong-ca.crt",
        wrong_client_cert=d / "wrong-client.crt",
        wrong_client_key=d / "wrong-client.key",
    )

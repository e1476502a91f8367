"""What tests/test_login.py drives: an OpenID Connect provider, the app server, TLS files."""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import os
import re
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from oidc_provider_mock import run_server_in_thread

from .conftest import PROJECT_ROOT

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
QUERY_COUNT = re.compile(r"^app_db_query_duration_seconds_count\{[^}]*\} ([0-9.e+]+)$", re.MULTILINE)


def chromium() -> str:
    """Chromium (or Chrome, as on GitHub's runners); a visible skip without it, a failure if CI is set."""
    found = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    if found is None:
        message = "Chromium is not installed (Debian/Ubuntu: apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI is set, so the sign-in tests must run")
        pytest.skip(message)
    return found


class Provider:
    """oidc-provider-mock on a free port; clients and users' claims are set through its API."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.metadata_url = f"{url}/.well-known/openid-configuration"

    @classmethod
    @contextmanager
    def running(cls) -> Iterator[Provider]:
        with run_server_in_thread(port=0, require_client_registration=True) as server:
            yield cls(f"http://localhost:{server.server_port}")

    def register(self, redirect_uri: str) -> tuple[str, str]:
        """A new client (app registration) that may use `redirect_uri`: its id and secret."""
        response = httpx.post(f"{self.url}/oauth2/clients", json={"redirect_uris": [redirect_uri]})
        response.raise_for_status()
        return response.json()["client_id"], response.json()["client_secret"]

    def set_user(self, email: str, email_verified: bool) -> None:
        claims = {"email": email, "email_verified": email_verified, "name": email.split("@")[0].title()}
        httpx.put(f"{self.url}/users/{email}", json=claims).raise_for_status()

    def auth_secrets(self, port: int, scheme: str = "http") -> dict[str, str]:
        """The five [auth] values README.md tells users to copy from their provider."""
        redirect_uri = f"{scheme}://localhost:{port}/oauth2callback"
        client_id, client_secret = self.register(redirect_uri)
        return {
            "redirect_uri": redirect_uri,
            "cookie_secret": secrets.token_urlsafe(24),
            "client_id": client_id,
            "client_secret": client_secret,
            "server_metadata_url": self.metadata_url,
        }


@dataclass
class TLS:
    """A test CA and a localhost certificate it signed, for serving the app over HTTPS."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    spki_sha256: str  # what Chromium is told to trust (--ignore-certificate-errors-spki-list)

    @classmethod
    def make(cls, folder: Path) -> TLS:
        now = datetime.datetime.now(datetime.UTC)
        ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "login test CA")])
        ca = (
            x509.CertificateBuilder(subject_name=ca_name, issuer_name=ca_name, public_key=ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        cert = (
            x509.CertificateBuilder(
                subject_name=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]),
                issuer_name=ca_name,
                public_key=key.public_key(),
            )
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        tls = cls(folder / "ca.pem", folder / "cert.pem", folder / "key.pem", "")
        tls.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        tls.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        tls.key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        spki = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        tls.spki_sha256 = base64.b64encode(hashlib.sha256(spki).digest()).decode()
        return tls


@dataclass
class Server:
    """The app served by `python -m`, configured the way README.md tells users."""

    url: str
    log: Path
    process: subprocess.Popen[str]
    context: ssl.SSLContext | None  # trusts the test CA when served over HTTPS

    @classmethod
    def start(
        cls, workdir: Path, how: str, auth: dict[str, str], port: int, tls: TLS | None = None
    ) -> Server:
        """`how`: "secrets.toml" (the [auth] section, as for `make run`) or "environment" (AUTH_*)."""
        settings_dir = workdir / ".streamlit"
        settings_dir.mkdir(parents=True)
        shutil.copy(PROJECT_ROOT / ".streamlit" / "config.toml", settings_dir)
        env = {
            **os.environ,
            "DB_REPLICA_RECHECK_S": "3600",  # no background queries to blur the count
            "DATA_DIR": os.environ["DATA_DIR"],  # the tests read the audit log it writes
        }
        if how == "secrets.toml":
            example = tomllib.loads((PROJECT_ROOT / ".streamlit" / "secrets.toml.example").read_text())
            assert set(example["auth"]) == set(auth), "fill in exactly the example's [auth] keys"
            lines = ["[auth]", *(f'{key} = "{value}"' for key, value in auth.items())]
            (settings_dir / "secrets.toml").write_text("\n".join(lines) + "\n")
        else:
            env |= {f"AUTH_{key.upper()}": value for key, value in auth.items()}
        command = [sys.executable, "-m", "{{ cookiecutter.package_name }}", "--server.port", str(port)]
        command += ["--server.address", "127.0.0.1"]
        if tls:
            command += ["--server.sslCertFile", str(tls.cert_file), "--server.sslKeyFile", str(tls.key_file)]
        log = workdir / "server.log"
        with log.open("w") as output:
            process = subprocess.Popen(command, cwd=workdir, env=env, stdout=output, stderr=output, text=True)
        context = ssl.create_default_context(cafile=tls.ca_file) if tls else None
        server = cls(f"{'https' if tls else 'http'}://localhost:{port}", log, process, context)
        server.wait_healthy()
        return server

    def get(self, path: str) -> tuple[int, str]:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=5, context=self.context) as response:
            return response.status, response.read().decode()

    def wait_healthy(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"server exited:\n{self.log.read_text()}"
            try:
                if self.get("/_stcore/health") == (200, "ok"):
                    return
            except OSError:
                time.sleep(0.3)
        pytest.fail(f"server not healthy after {timeout}s:\n{self.log.read_text()}")

    def queries_run(self) -> int:
        """Statements the app's engines executed so far (its query duration histogram's count)."""
        _, body = self.get("/metrics")
        return int(sum(float(count) for count in QUERY_COUNT.findall(body)))

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=15)

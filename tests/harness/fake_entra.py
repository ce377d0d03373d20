"""A small fake of Microsoft Entra ID's token service for azure-identity's ClientSecretCredential (via MSAL).

azure-identity accepts only https authorities, so this one serves TLS on 127.0.0.1 with a self-signed
certificate made at start (``ca_file``). It serves, per tenant:

    GET  /<tenant>/v2.0/.well-known/openid-configuration   (MSAL's authority metadata)
    POST /<tenant>/oauth2/v2.0/token                       (client_credentials grant)

and issues an access token only for an application registered with ``add_app(tenant, client_id, secret)``
and the right secret (``issued``: token -> client_id); a wrong secret gets 401 invalid_client with an
AADSTS7000215 message, as Entra answers. ``credential_kwargs()`` is what a block's credential_kwargs must
hold to use it: the authority, no instance discovery (which would call login.microsoftonline.com) and the
CA file to trust.

Does NOT model: certificates or federated credentials, scopes or audiences (any scope is granted),
token lifetimes beyond expires_in, multi-tenant consent, or anything but the client credentials grant.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import secrets
import ssl
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs


def _self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


class FakeEntra:
    def __init__(self) -> None:
        self.apps: dict[tuple[str, str], str] = {}  # (tenant, client_id) -> secret
        self.issued: dict[str, str] = {}  # access token -> client_id
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self._dir = Path(tempfile.mkdtemp(prefix="fake-entra-"))
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start() first"
        return f"https://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def ca_file(self) -> str:
        return str(self._dir / "cert.pem")

    def add_app(self, tenant: str, client_id: str, secret: str) -> None:
        self.apps[(tenant, client_id)] = secret

    def credential_kwargs(self) -> dict[str, Any]:
        return {"authority": self.url, "disable_instance_discovery": True, "connection_verify": self.ca_file}

    def _answer(self, method: str, path: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        parts = path.split("?", 1)[0].strip("/").split("/")
        tenant = parts[0] if parts else ""
        if method == "GET" and path.split("?", 1)[0].endswith("/v2.0/.well-known/openid-configuration"):
            base = f"{self.url}/{tenant}"
            return 200, {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "issuer": f"{base}/v2.0",
                "tenant_region_scope": "NA",
            }
        if method == "POST" and path.split("?", 1)[0].endswith("/oauth2/v2.0/token"):
            client_id = form.get("client_id", "")
            expected = self.apps.get((tenant, client_id))
            if (
                form.get("grant_type") != "client_credentials"
                or expected is None
                or form.get("client_secret") != expected
            ):
                return 401, {
                    "error": "invalid_client",
                    "error_codes": [7000215],
                    "error_description": "AADSTS7000215: Invalid client secret provided.",
                }
            token = f"fake-entra-{secrets.token_hex(12)}"
            with self.lock:
                self.issued[token] = client_id
            return 200, {
                "token_type": "Bearer",
                "expires_in": 3600,
                "ext_expires_in": 3600,
                "access_token": token,
            }
        return 404, {"error": "not_found"}

    def start(self) -> Self:
        fake = self
        cert_file, key_file = _self_signed(self._dir)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode() if length else ""
                form = {k: v[0] for k, v in parse_qs(raw).items()}
                fake.requests.append((self.command, self.path.split("?", 1)[0]))
                status, body = fake._answer(self.command, self.path, form)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _serve

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""SMTP security modes from settings: STARTTLS and implicit TLS, with authentication."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from alerts_support import Mailbox, free_port
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from alerts.dispatch import Dispatcher
from alerts.sample import seed_matches


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 (the test CA the client is told to trust)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "artwatch test smtp")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_tls_and_login_from_settings(conn, store, reviewer, certificate, security):
    from artwatch.settings import get_settings, load_settings

    cert_path, key_path = certificate
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert_path, key_path)
    box = Mailbox()
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        assert isinstance(auth_data, LoginPassword)
        logins.append((auth_data.login, auth_data.password))
        ok = auth_data.login == b"alerts" and auth_data.password == b"s3cret-pass"
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535

    port = free_port()
    tls = {"tls_context": server_ctx, "require_starttls": True}
    if security == "ssl":
        tls = {"ssl_context": server_ctx}
    controller = Controller(
        box, hostname="127.0.0.1", port=port, authenticator=authenticator,
        # implicit TLS is invisible to aiosmtpd's auth_require_tls check (it tracks STARTTLS)
        auth_require_tls=security == "starttls", auth_exclude_mechanism=["CRAM-MD5"], **tls,
    )
    controller.start()
    try:
        base = get_settings()
        settings = load_settings(
            data_dir=base.data_dir, database_url=base.database_url,
            smtp_host="127.0.0.1", smtp_port=port, smtp_security=security,
            smtp_user="alerts", smtp_password="s3cret-pass", smtp_ca_file=cert_path,
            web_secret="x" * 32, smtp_timeout_s=5,
        )
        seed_matches(conn, store, listings=1, candidates=2)
        report = Dispatcher(settings, retry_base_delay_s=0.01).run()
        assert len(report.sent) == 1, report.errors
        assert len(box.messages) == 1 and logins == [(b"alerts", b"s3cret-pass")]

        # A wrong password is permanent: no retry storm, the alert is marked failed.
        bad = settings.model_copy(update={"smtp_password": SecretStr("wrong-password")})
        conn.execute("UPDATE alerts SET status = 'pending', next_attempt_at = NULL")
        report = Dispatcher(bad, retry_base_delay_s=0.01).deliver_pending()
        assert len(report.failed) == 1 and len(box.messages) == 1
        # one connection: smtplib tries PLAIN then LOGIN; no further attempts
        assert [p for _, p in logins[1:]] == [b"wrong-password"] * 2
        assert conn.execute("SELECT status FROM alerts").fetchone()["status"] == "failed"
    finally:
        controller.stop()

"""stream.faustapp.app._credentials (the broker credentials of every streamrec Faust app): what Faust's aiokafka consumer gets for each security protocol. A
SASL_SSL worker against a real broker is in tests/integration/test_security_kafka.py."""

from __future__ import annotations

import shutil
import ssl
import subprocess

import faust
import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from stream.faustapp.app import _credentials
from stream.config import Settings
from tests.helpers import unavailable


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory):
    openssl = shutil.which("openssl")
    if openssl is None:
        unavailable("openssl is not installed (scripts/bootstrap installs it)")
    folder = tmp_path_factory.mktemp("ca")
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-noenc", "-days", "1", "-subj", "/CN=unit-test-ca",
                    "-keyout", str(folder / "ca.key"), "-out", str(folder / "ca.pem")], check=True, capture_output=True)
    return str(folder / "ca.pem")


def _auth(**settings):
    return credentials_to_aiokafka_auth(_credentials(Settings(**settings)))


def test_plaintext_has_no_credentials():
    assert _credentials(Settings()) is None
    assert _auth() == {"security_protocol": "PLAINTEXT"}


def test_sasl_ssl_verifies_the_broker_against_the_ca_file(ca_file):
    auth = _auth(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
                 kafka_sasl_username="app", kafka_sasl_password="pw", kafka_ssl_cafile=ca_file)
    assert {k: auth[k] for k in ("security_protocol", "sasl_mechanism", "sasl_plain_username",
                                 "sasl_plain_password")} == {
        "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "app",
        "sasl_plain_password": "pw"}
    context = auth["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [dict(x[0] for x in c["subject"]) for c in context.get_ca_certs()] == [{"commonName": "unit-test-ca"}]


def test_sasl_plaintext_has_no_tls_and_ssl_alone_has_no_login(ca_file):
    auth = _auth(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="app", kafka_sasl_password="pw")
    assert auth["security_protocol"] == "SASL_PLAINTEXT" and auth["ssl_context"] is None
    assert auth["sasl_mechanism"] == "PLAIN"
    creds = _credentials(Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=ca_file))
    assert isinstance(creds, faust.SSLCredentials)
    assert credentials_to_aiokafka_auth(creds)["security_protocol"] == "SSL"


def test_without_a_ca_file_the_system_cas_are_trusted():
    context = _auth(kafka_security_protocol="SASL_SSL", kafka_sasl_username="a", kafka_sasl_password="p")["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_the_password_is_not_in_the_credentials_repr():
    creds = _credentials(Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="app",
                                  kafka_sasl_password="s3cret-pw"))
    assert "s3cret-pw" not in repr(creds)

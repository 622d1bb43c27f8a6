"""Connections of the command-line tools: a blocking one for one-shot calls, and TLS (``-S``).

``client -b`` and ``admin`` send a request and read its answer; a blocking
socket does that without loading asyncio and the libraries, which would be
most of such a call's time.
"""

from __future__ import annotations

import os
import socket

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    import ssl

__all__ = ["connect", "tls_context", "tls_problem"]

# OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH.
_NAME_MISMATCH = (62, 64)


def connect(host: str, port: int, tls: ssl.SSLContext | None, timeout: float) -> socket.socket:
    """A connected socket (with ``tls``, after the handshake); ``timeout`` bounds each step.

    Raises:
        OSError: the host does not resolve (``socket.gaierror``), the connection
            fails, or the TLS handshake does (``ssl.SSLError``).
    """
    # getaddrinfo encodes a str host with the idna codec, whose import costs a
    # millisecond; an ASCII name is passed as bytes, which need no encoding.
    name = host.encode() if host.isascii() else host
    sock = socket.create_connection((name, port), timeout)  # type: ignore[arg-type]
    if tls is None:
        return sock
    try:
        return tls.wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise


def tls_context() -> ssl.SSLContext:
    """The TLS context of ``-S``: verify the server against the system CAs or
    ``GEARMAN_CA_CERTIFICATE``; present ``GEARMAN_CLIENT_PEM`` (and
    ``GEARMAN_CLIENT_KEY``) if set.  Debian's tools are built without TLS and
    ignore ``-S``; these use it.
    """
    import ssl  # only for -S: loading it costs start-up time

    context = ssl.create_default_context(cafile=os.environ.get("GEARMAN_CA_CERTIFICATE"))
    cert = os.environ.get("GEARMAN_CLIENT_PEM")
    if cert:
        context.load_cert_chain(cert, os.environ.get("GEARMAN_CLIENT_KEY"))
    return context


def tls_problem(error: BaseException | None) -> str | None:
    """For a connection with TLS that failed with ``error``: what went wrong with
    TLS and what to do, if a TLS error (or a connection closed during the
    handshake) caused it; else None."""
    import ssl  # loaded already: the connection used TLS

    while error is not None and not isinstance(error, ssl.SSLError | ConnectionResetError):
        error = error.__cause__
    if error is None:
        return None
    if isinstance(error, ssl.SSLCertVerificationError):
        if error.verify_code in _NAME_MISMATCH:
            return f"TLS: {error.verify_message}; give -h a name the certificate holds"
        return (
            f"TLS: the server's certificate is not trusted ({error.verify_message}); "
            "set GEARMAN_CA_CERTIFICATE to the file of the CA that signed it"
        )
    if isinstance(error, ssl.SSLError) and "ALERT" in str(error.reason):
        return (
            f"TLS: the server refused the handshake ({error.reason}); if it checks client "
            "certificates, set GEARMAN_CLIENT_PEM and GEARMAN_CLIENT_KEY"
        )
    reason = error.reason if isinstance(error, ssl.SSLError) else "connection closed"
    return f"TLS: no TLS answer from the server ({reason}); start it with --ssl, or leave out -S"

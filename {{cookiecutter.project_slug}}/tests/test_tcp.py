"""TCP_NODELAY reaches the connections a listening socket accepts, on a real kernel."""

from __future__ import annotations

import socket
import sys

import pytest

from {{ cookiecutter.package_name }}.tcp import disable_nagle_on_listeners

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/fd")


def accepted_nodelay(listener: socket.socket) -> int:
    with socket.create_connection(listener.getsockname()[:2]) as _client:
        accepted, _ = listener.accept()
        with accepted:
            return accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_listeners_bound_like_streamlit_get_nodelay_connections() -> None:
    # Streamlit's own binding: no protocol given, so asyncio would not set TCP_NODELAY.
    with socket.socket(socket.AF_INET) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert listener.proto == 0
        assert accepted_nodelay(listener) == 0

        assert disable_nagle_on_listeners() >= 1

        assert accepted_nodelay(listener) == 1
        assert listener.fileno() >= 0, "the listener must stay open"


def test_other_sockets_are_left_alone() -> None:
    unconnected = socket.socket(socket.AF_INET)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with unconnected, udp:
        disable_nagle_on_listeners()
        assert unconnected.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
        udp.bind(("127.0.0.1", 0))  # still usable: its descriptor was not closed

"""The probes `up` waits on."""

from __future__ import annotations

import socket

from workbench.devcluster.health import address_open
from workbench.devcluster.processes import free_port


def test_an_address_list_is_open_when_one_of_them_is() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        assert address_open(f"127.0.0.1:{free_port()},127.0.0.1:{port}")
        assert address_open(f"tcp://127.0.0.1:{port}")
    assert not address_open(f"127.0.0.1:{free_port()}")
    assert not address_open("no-port-here")

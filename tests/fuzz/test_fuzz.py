"""The fuzz targets under hypothesis: a bounded run in CI (about half a minute in all)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geartrain.protocol import HEADER, REQ, pack

from .targets import admin_target, core_target, decoder_target

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Framed packets mixed with raw garbage reach deeper than garbage alone.
packet_bytes = st.one_of(
    st.binary(max_size=64),
    st.builds(
        lambda t, args: pack(REQ, t, args),
        st.integers(0, 45),
        st.lists(st.binary(max_size=16), max_size=4).map(tuple),
    ),
    st.builds(
        lambda t, size: HEADER.pack(REQ, t, size), st.integers(0, 45), st.integers(0, 2**32 - 1)
    ),
)


@FUZZ
@given(st.lists(packet_bytes, max_size=20).map(b"".join))
def test_decoder(data: bytes) -> None:
    decoder_target(data)


@FUZZ
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=40),
            st.sampled_from(
                [
                    b"status",
                    b"workers",
                    b"show jobs",
                    b"show unique jobs",
                    b"maxqueue f 1 2 3",
                    b"cancel job H:fuzz:1",
                    b"drop function f",
                    b"create function g",
                    b"shutdown",
                ]
            ),
        ),
        max_size=10,
    ).map(b"\n".join)
)
def test_admin_lines(data: bytes) -> None:
    admin_target(data)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=5, max_size=600))
def test_core_with_several_peers(data: bytes) -> None:
    core_target(data)

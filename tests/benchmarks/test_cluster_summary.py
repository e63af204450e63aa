"""benchmarks.cluster's judgement and its scaling ratio, from made-up runs."""

from __future__ import annotations

from typing import Any

from benchmarks.cluster import (
    MAX_ROUND_TRIP_P99_MS,
    ProxiedSignalling,
    breaks,
    cpu_parts,
    drop_counts,
    plan_layout,
    setup_limit,
    summarize,
)
from trunkline.gateway.sip.message import SipRequest, SipResponse, parse_message


def step(**figures: Any) -> dict[str, Any]:
    base = {"failed_calls": 0, "loss": 0.0, "round_trip_ms": {"p50": 10.0, "p99": 20.0},
            "carrier_cpu_percent": 30.0}  # fmt: skip
    return base | figures


def test_a_step_holds_only_within_every_objective() -> None:
    assert breaks(step()) == []
    assert breaks(step(failed_calls=2)) == ["2 calls not answered within 10 s"]
    assert breaks(step(loss=0.002)) == ["loss 0.20 %"]
    assert MAX_ROUND_TRIP_P99_MS == 120.0  # 60 ms and the default jitter buffer's 60 ms at most
    assert breaks(step(round_trip_ms={"p50": 30.0, "p99": 119.0})) == []
    assert breaks(step(round_trip_ms={"p50": 30.0, "p99": 121.0})) == ["round trip p99 121.0 ms"]
    assert breaks(step(carrier_cpu_percent=95.0)) == ["carrier at 95 % of a core (generator limit)"]
    assert breaks(step(agent_cpu_percent=93.0)) == ["agent at 93 % of a core (generator limit)"]
    assert breaks(step(agent_cpu_percent=None)) == []
    assert breaks(step(machine_cpu_percent=97.0)) == ["machine 97 % busy (machine limit)"]
    assert breaks(step(machine_cpu_percent=90.0)) == []


def test_the_set_up_test_names_what_limited_it() -> None:
    nodes = {"node_0": 34.0, "node_1": 35.0, "carrier": 20.0}
    assert setup_limit(None) == "not measured"
    assert setup_limit({"machine_cpu_percent": 98.0, "cpu_percent": nodes}) == (
        "the machine (98 % busy)"
    )
    throttled = {"machine_cpu_percent": 60.0, "cpu_percent": nodes,
                 "nodes_throttled": {"node_0": 99.0, "node_1": 97.0}}  # fmt: skip
    assert setup_limit(throttled) == "the nodes' CPU quota (ran out in 97+ % of periods)"
    one_short = throttled | {"nodes_throttled": {"node_0": 99.0, "node_1": 10.0}}
    assert setup_limit(one_short) == "no part at its limit"
    full = {"machine_cpu_percent": 70.0, "cpu_percent": {"node_0": 93.0, "carrier": 20.0}}
    assert setup_limit(full) == "the nodes' CPU (93+ % of a core each)"


def run(
    cps_one: float, cps_two: float, held_one: int, held_two: int, carrier: float = 40.0
) -> dict[int, Any]:
    cpu = {"cpu_at_capacity": {"nodes": 50.0, "carrier": carrier}}
    return {
        1: {"setup": {"calls_per_second": cps_one}, "capacity_calls": held_one} | cpu,
        2: {"setup": {"calls_per_second": cps_two}, "capacity_calls": held_two} | cpu,
    }


def test_scaling_is_the_median_of_each_runs_two_node_over_one_node_ratio() -> None:
    summary = summarize([run(50, 95, 300, 600), run(40, 80, 300, 500), run(60, 100, 200, 400)])
    cps = summary["scaling"]["calls_per_second"]
    assert cps["median"] == 1.9 and cps["min"] == 100 / 60 and cps["max"] == 2.0
    assert summary["scaling"]["capacity_calls"]["median"] == 2.0
    assert summary["1_nodes"]["capacity_calls"]["median"] == 300


def test_each_parts_cpu_is_summed_over_nodes_and_its_median_over_runs_published() -> None:
    measured = {"node_0": 60.0, "node_1": 70.0, "carrier": 45.0, "agent": 20.0, "kamailio": 3.0}
    assert cpu_parts(measured) == {
        "nodes": 130.0, "carrier": 45.0, "agent": 20.0, "kamailio": 3.0
    }  # fmt: skip
    summary = summarize([run(1, 2, 1, 2, carrier=c) for c in (30.0, 90.0, 40.0)])
    assert summary["2_nodes"]["cpu_at_capacity"] == {"nodes": 50.0, "carrier": 40.0}
    assert summary["2_nodes"]["cpu_during_setup"] == {}


def test_with_more_cores_than_nodes_each_node_has_a_core_and_the_rest_run_elsewhere() -> None:
    layout = plan_layout([3, 0, 2, 1], 2)
    assert layout.node_cores(1) == [{0}] and layout.node_cores(2) == [{0}, {1}]
    assert layout.shared == (2, 3)
    assert layout.describe()["node_cores"] == [[0], [1]]


def test_on_two_cores_each_node_has_a_core_and_a_quota_and_the_generators_are_not_pinned() -> None:
    layout = plan_layout([0, 1], 2)
    assert layout.node_cores(1) == [{0}]  # node A on the same core in both clusters
    assert layout.node_cores(2) == [{0}, {1}]
    assert layout.shared is None
    assert layout.node_cpu_percent == 35.0 and "35 % of its core" in layout.summary
    assert "not pinned" in layout.summary
    assert plan_layout([0, 1], 2, 50.0).node_cpu_percent == 50.0
    unlimited = plan_layout([0, 1], 2, 0.0)
    assert unlimited.node_cpu_percent is None and "quota" not in unlimited.summary
    assert plan_layout([0, 1, 2], 2).node_cpu_percent is None  # a core each: no quota


def test_on_one_core_nothing_is_pinned() -> None:
    layout = plan_layout([0], 2)
    assert layout.node_cores(2) == [None, None] and layout.shared is None


class Sent:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []

    def sendto(self, data: bytes, address: tuple[str, int]) -> None:
        self.sent.append((data, address))

    def get_extra_info(self, name: str) -> tuple[str, int]:
        return ("127.0.0.1", 40000)


def test_ack_and_bye_go_through_the_proxy_with_the_route_set_reversed() -> None:
    from benchmarks.cluster import Dialog

    signalling = ProxiedSignalling(("127.0.0.1", 5070), 41000)
    sent = Sent()
    signalling.connection_made(sent)  # type: ignore[arg-type]
    dialog = Dialog(None)
    signalling.invite(dialog)
    invite = parse_message(sent.sent[0][0])
    assert isinstance(invite, SipRequest)
    ok = SipResponse(status=200, reason="OK")
    for name in ("Via", "From", "Call-ID", "CSeq"):
        ok.headers.add(name, invite.headers.get(name) or "")
    ok.headers.add("To", f"{invite.headers.get('To')};tag=node")
    ok.headers.add("Record-Route", "<sip:10.0.0.1;lr>")  # the proxy nearest the node
    ok.headers.add("Record-Route", "<sip:127.0.0.1:5070;lr>")  # Kamailio, nearest the carrier
    ok.headers.add("Contact", "<sip:trunkline@127.0.0.2:5060>")
    ok.body = b"v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 20000 RTP/AVP 0\r\n"
    signalling.datagram_received(ok.serialize(), ("127.0.0.1", 5070))
    signalling.bye(dialog)
    ack, bye = (parse_message(data) for data, _ in sent.sent[1:])
    for request in (ack, bye):
        assert isinstance(request, SipRequest)
        assert request.uri == "sip:trunkline@127.0.0.2:5060"
        assert request.headers.get_all("Route") == ["<sip:127.0.0.1:5070;lr>", "<sip:10.0.0.1;lr>"]
        assert (request.headers.get("To") or "").endswith("tag=node")
    assert [address for _, address in sent.sent] == [("127.0.0.1", 5070)] * 3
    assert dialog.answered_at is not None


def answer(invite: SipRequest, status: int) -> bytes:
    """The node's response to ``invite`` as Kamailio relays it."""
    response = SipResponse(status=status, reason="OK" if status == 200 else "Ringing")
    for name in ("Via", "From", "Call-ID", "CSeq"):
        response.headers.add(name, invite.headers.get(name) or "")
    response.headers.add("To", f"{invite.headers.get('To')};tag=node")
    response.headers.add("Record-Route", "<sip:127.0.0.1:5070;lr>")
    response.headers.add("Contact", "<sip:trunkline@127.0.0.2:5060>")
    if status == 200:
        response.body = b"v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 20000 RTP/AVP 0\r\n"
    return response.serialize()


def test_in_the_set_up_test_a_call_is_hung_up_as_soon_as_it_is_answered() -> None:
    from benchmarks.cluster import Dialog

    signalling = ProxiedSignalling(("127.0.0.1", 5070), 41000)
    sent = Sent()
    signalling.connection_made(sent)  # type: ignore[arg-type]
    signalling.hang_up_on_answer = True
    dialog = Dialog(None)
    signalling.invite(dialog)
    invite = parse_message(sent.sent[0][0])
    assert isinstance(invite, SipRequest)
    signalling.datagram_received(answer(invite, 180), ("127.0.0.1", 5070))
    assert dialog.rang_at is not None and dialog.answered_at is None and len(sent.sent) == 1
    signalling.datagram_received(answer(invite, 200), ("127.0.0.1", 5070))
    signalling.datagram_received(answer(invite, 200), ("127.0.0.1", 5070))  # retransmitted
    methods = [parse_message(data).method for data, _ in sent.sent[1:]]  # type: ignore[union-attr]
    assert methods == ["ACK", "BYE", "ACK"]  # one BYE; every 200 OK is acknowledged
    assert dialog.rang_at <= dialog.answered_at  # type: ignore[operator]


def test_the_nodes_drops_are_read_from_their_metrics_by_where_and_why() -> None:
    text = """# HELP trunkline_jitter_buffer_packets_dropped_total Caller RTP packets dropped
# TYPE trunkline_jitter_buffer_packets_dropped_total counter
trunkline_jitter_buffer_packets_dropped_total{reason="late"} 7.0
trunkline_jitter_buffer_packets_dropped_total{reason="shrink"} 3.0
trunkline_rtp_packets_dropped_total{reason="unknown_ssrc"} 2.0
trunkline_rtp_packets_lost_total 9.0
trunkline_jitter_buffer_packets_dropped_created{reason="late"} 1.7e9
"""
    assert drop_counts(text) == {"jitter_late": 7, "jitter_shrink": 3, "rtp_unknown_ssrc": 2}

"""The one storage contract, run against SQLite and the real PostgreSQL server."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.backends import BACKENDS, make_repository
from trunkline.storage.errors import (
    DuplicateHandle,
    NumberCapReached,
    NumberInUse,
    StorageError,
    TokenCapReached,
)
from trunkline.storage.models import (
    Call,
    EventDraft,
    InboundRouting,
    IncomingCallConfig,
    MediaItem,
    PhoneNumber,
    Text,
    new_id,
    utcnow,
)
from trunkline.storage.repository import Repository
from trunkline.storage.sql import SqlRepository


@pytest.fixture(params=BACKENDS)
async def repo(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Repository]:
    async with make_repository(request.param, tmp_path) as repository:
        yield repository


def number_record(organization_id: str, e164: str, **extra: object) -> PhoneNumber:
    now = utcnow()
    values: dict[str, object] = {
        "id": new_id(),
        "organization_id": organization_id,
        "number": e164,
        "type": "local",
        "status": "active",
        "incoming_call_action": "auto_reject",
        "client_websocket_url": None,
        "incoming_call_webhook_url": None,
        "agent_identity_id": None,
        "state": "NY",
        "country": "US",
        "created_at": now,
        "updated_at": now,
    }
    values.update(extra)
    return PhoneNumber(**values)  # type: ignore[arg-type]


def call_record(number: PhoneNumber, **extra: object) -> Call:
    now = utcnow()
    values: dict[str, object] = {
        "id": new_id(),
        "organization_id": number.organization_id,
        "phone_number_id": number.id,
        "local_phone_number": number.number,
        "remote_phone_number": "+14155550123",
        "direction": "inbound",
        "status": "initiated",
        "client_websocket_url": "wss://agent.example.com/ws",
        "use_inkbox_tts": None,
        "use_inkbox_stt": None,
        "hangup_reason": None,
        "started_at": None,
        "ended_at": None,
        "created_at": now,
        "updated_at": now,
    }
    values.update(extra)
    return Call(**values)  # type: ignore[arg-type]


def text_record(number: PhoneNumber, remote: str, body: str | None, **extra: object) -> Text:
    now = utcnow()
    values: dict[str, object] = {
        "id": new_id(),
        "organization_id": number.organization_id,
        "phone_number_id": number.id,
        "direction": "inbound",
        "local_phone_number": number.number,
        "remote_phone_number": remote,
        "text": body,
        "type": "sms",
        "media": None,
        "status": "active",
        "is_read": False,
        "created_at": now,
        "updated_at": now,
        "carrier_message_id": new_id(),
    }
    values.update(extra)
    return Text(**values)  # type: ignore[arg-type]


async def test_migrations_apply_once(repo: Repository) -> None:
    assert await repo.migrate() == []
    assert await repo.ping()


async def test_identity_handles_unique_per_org(repo: Repository) -> None:
    org = await repo.create_organization("acme")
    other = await repo.create_organization("globex")
    identity = await repo.create_identity(org.id, "sales", "Sales")
    with pytest.raises(DuplicateHandle):
        await repo.create_identity(org.id, "sales", None)
    await repo.create_identity(other.id, "sales", None)
    assert await repo.get_identity_by_handle(org.id, "sales") == identity
    assert [i.agent_handle for i in await repo.list_identities(org.id)] == ["sales"]


async def test_tokens_are_found_by_hash_only(repo: Repository) -> None:
    org = await repo.create_organization("acme")
    identity = await repo.create_identity(org.id, "sales", None)
    token = await repo.create_token(org.id, identity.id, "a" * 64)
    found = await repo.find_token("a" * 64)
    assert found == token and not found.is_admin
    assert await repo.find_token("b" * 64) is None


async def test_token_lifecycle_prefix_expiry_and_revocation(repo: Repository) -> None:
    org = await repo.create_organization("acme")
    other = await repo.create_organization("globex")
    expires = datetime(2031, 5, 1, 12, 0, tzinfo=UTC)
    first = await repo.create_token(org.id, None, "a" * 64, prefix="tl_aaaa", expires_at=expires)
    second = await repo.create_token(org.id, None, "b" * 64, prefix="tl_bbbb")
    foreign = await repo.create_token(other.id, None, "c" * 64, prefix="tl_aaaa")
    found = await repo.find_token("a" * 64)
    assert found == first and found.expires_at == expires and found.revoked_at is None
    assert found.is_usable(expires - timedelta(seconds=1))
    assert not found.is_usable(expires)
    assert [t.id for t in await repo.list_tokens(org.id)] == [first.id, second.id]
    assert [t.id for t in await repo.list_tokens(org.id, limit=1, offset=1)] == [second.id]
    assert {t.id for t in await repo.list_tokens()} == {first.id, second.id, foreign.id}
    assert [t.id for t in await repo.find_tokens_by_prefix("tl_aaaa")] == [first.id, foreign.id]
    assert await repo.find_tokens_by_prefix("tl_") == []
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    revoked = await repo.revoke_token(second.id, when)
    assert revoked is not None and revoked.revoked_at == when
    again = await repo.revoke_token(second.id, when + timedelta(days=1))
    assert again is not None and again.revoked_at == when
    stored = await repo.find_token("b" * 64)
    assert stored is not None and not stored.is_usable(when - timedelta(days=1))
    assert await repo.get_token(second.id) == stored
    assert await repo.revoke_token(new_id(), when) is None
    assert await repo.get_token(new_id()) is None


async def test_token_cap_holds_under_concurrency(repo: Repository) -> None:
    org = await repo.create_organization("acme")
    expired = await repo.create_token(
        org.id, None, "e" * 64, expires_at=utcnow() - timedelta(seconds=1)
    )
    revoked = await repo.create_token(org.id, None, "r" * 64)
    await repo.revoke_token(revoked.id, utcnow())

    async def attempt(i: int) -> bool:
        try:
            await repo.create_token(org.id, None, f"{i:064d}", max_usable=3)
        except TokenCapReached:
            return False
        return True

    results = await asyncio.gather(*(attempt(i) for i in range(8)))
    assert sum(results) == 3
    usable = [t for t in await repo.list_tokens(org.id) if t.is_usable(utcnow())]
    assert len(usable) == 3 and expired.id not in {t.id for t in usable}


async def test_signing_key_roundtrip(repo: Repository) -> None:
    org = await repo.create_organization("acme")
    identity = await repo.create_identity(org.id, "sales", None)
    assert await repo.get_identity_signing_key(identity.id) is None
    await repo.set_identity_signing_key(identity.id, "v1:sealed")
    assert await repo.get_identity_signing_key(identity.id) == "v1:sealed"


async def test_number_cap_holds_under_concurrency(repo: Repository) -> None:
    org = await repo.create_organization("acme")
    attempts = [
        repo.create_number(number_record(org.id, f"+1555010{i:04d}"), max_active=3)
        for i in range(12)
    ]
    results = await asyncio.gather(*attempts, return_exceptions=True)
    created = [r for r in results if isinstance(r, PhoneNumber)]
    refused = [r for r in results if isinstance(r, NumberCapReached)]
    assert (len(created), len(refused)) == (3, 9), results
    assert len(await repo.list_numbers(org.id)) == 3


async def test_number_in_use_anywhere_until_released(repo: Repository) -> None:
    org = await repo.create_organization("acme")
    other = await repo.create_organization("globex")
    first = await repo.create_number(number_record(org.id, "+15550100001"), max_active=3)
    with pytest.raises(NumberInUse):
        await repo.create_number(number_record(other.id, "+15550100001"), max_active=3)
    released = await repo.release_number(first.id)
    assert released is not None and released.status == "released"
    assert "+15550100001" not in await repo.active_numbers_in_use()
    again = await repo.create_number(number_record(other.id, "+15550100001"), max_active=3)
    assert (await repo.find_active_number("+15550100001")) == again


async def test_number_update_keeps_structured_fields(repo: Repository) -> None:
    org = await repo.create_organization("acme")
    number = await repo.create_number(number_record(org.id, "+15550100002"), max_active=3)
    routing = InboundRouting(agent_id="a1", fallback_agent_id="a2", voicemail_message="hi")
    updated = await repo.update_number(
        number.id, {"inbound_routing": routing, "recording_enabled": False}
    )
    assert updated is not None
    stored = await repo.get_number(number.id)
    assert stored is not None and stored.inbound_routing == routing
    assert stored.recording_enabled is False and stored.updated_at >= number.updated_at
    with pytest.raises(ValueError):
        await repo.update_number(number.id, {"organization_id": "x"})
    assert await repo.update_number(new_id(), {"state": "CA"}) is None


async def test_incoming_call_config_upsert_keeps_created_at(repo: Repository) -> None:
    org = await repo.create_organization("acme")
    identity = await repo.create_identity(org.id, "sales", None)
    now = utcnow()
    first = await repo.upsert_incoming_call_config(
        IncomingCallConfig(identity.id, "auto_reject", None, None, now, now)
    )
    later = now + timedelta(seconds=5)
    second = await repo.upsert_incoming_call_config(
        IncomingCallConfig(identity.id, "auto_accept", "wss://a.example/ws", None, later, later)
    )
    assert second.created_at == first.created_at
    assert second.incoming_call_action == "auto_accept"
    assert await repo.get_incoming_call_config(identity.id) == second


async def test_update_call_is_conditional_and_writes_events_atomically(repo: Repository) -> None:
    org = await repo.create_organization("acme")
    number = await repo.create_number(number_record(org.id, "+15550100003"), max_active=3)
    call = await repo.create_call(call_record(number))
    ended = EventDraft("call.ended", org.id, {"id": call.id}, phone_number_id=number.id)
    racers = [
        repo.update_call(
            call.id,
            {"status": "completed", "hangup_reason": reason, "ended_at": utcnow()},
            only_if_status=["initiated", "ringing", "answered"],
            events=[EventDraft("call.ended", org.id, {"id": call.id, "by": reason})],
        )
        for reason in ("local", "remote")
    ]
    results = await asyncio.gather(*racers)
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    events = await repo.list_events(org.id)
    assert [e.event_type for e in events] == ["call.ended"]
    assert events[0].data["by"] == winners[0].hangup_reason
    assert await repo.update_call(call.id, {"status": "failed"}, only_if_status=[]) is None
    assert (
        await repo.update_call(
            call.id, {"status": "failed"}, only_if_status=["answered"], events=[ended]
        )
        is None
    )
    assert len(await repo.list_events(org.id)) == 1


async def test_list_calls_filters_and_pages(repo: Repository) -> None:
    org = await repo.create_organization("acme")
    identity = await repo.create_identity(org.id, "sales", None)
    mine = await repo.create_number(
        number_record(org.id, "+15550100004", agent_identity_id=identity.id), max_active=3
    )
    other = await repo.create_number(number_record(org.id, "+15550100005"), max_active=3)
    base = utcnow()
    for i in range(5):
        await repo.create_call(call_record(mine, created_at=base + timedelta(seconds=i)))
    await repo.create_call(call_record(other))
    assert len(await repo.list_calls(org.id)) == 6
    scoped = await repo.list_calls(org.id, agent_identity_id=identity.id)
    assert len(scoped) == 5
    page = await repo.list_calls(org.id, phone_number_id=mine.id, limit=2, offset=1)
    assert [c.created_at for c in page] == [scoped[1].created_at, scoped[2].created_at]
    assert scoped[0].created_at > scoped[-1].created_at


async def test_transcript_seq_is_gapless_under_concurrency(repo: Repository) -> None:
    org = await repo.create_organization("acme")
    number = await repo.create_number(number_record(org.id, "+15550100006"), max_active=3)
    call = await repo.create_call(call_record(number))
    await asyncio.gather(
        *(repo.add_transcript_segment(call.id, "remote", f"line {i}", i * 100) for i in range(20))
    )
    segments = await repo.list_transcripts(call.id)
    assert [s.seq for s in segments] == list(range(20))
    with pytest.raises(StorageError):
        await repo.add_transcript_segment(new_id(), "local", "nobody", 0)


async def test_transcript_batches_append_in_order_after_single_segments(repo: Repository) -> None:
    org = await repo.create_organization("acme")
    number = await repo.create_number(number_record(org.id, "+15550100016"), max_active=3)
    call = await repo.create_call(call_record(number))
    await repo.add_transcript_segment(call.id, "remote", "hello", 0)
    lines = [("local", f"line {i}", 100 + i) for i in range(3)]
    stored = await repo.add_transcript_segments(call.id, lines)  # type: ignore[arg-type]
    assert [s.seq for s in stored] == [1, 2, 3]
    segments = await repo.list_transcripts(call.id)
    assert [(s.seq, s.party, s.text, s.ts_ms) for s in segments] == [
        (0, "remote", "hello", 0),
        *((i + 1, "local", f"line {i}", 100 + i) for i in range(3)),
    ]
    with pytest.raises(StorageError):
        await repo.add_transcript_segments(new_id(), lines)  # type: ignore[arg-type]


async def test_transcript_search_ranks_and_filters(repo: Repository) -> None:
    org = await repo.create_organization("acme")
    number = await repo.create_number(number_record(org.id, "+15550100007"), max_active=3)
    other = await repo.create_number(number_record(org.id, "+15550100008"), max_active=3)
    call = await repo.create_call(call_record(number))
    await repo.add_transcript_segment(call.id, "remote", "I want to cancel my order", 0)
    await repo.add_transcript_segment(call.id, "local", "Cancel the order? Order number?", 10)
    await repo.add_transcript_segment(call.id, "remote", "Weather is nice today", 20)
    foreign = await repo.create_call(call_record(other))
    await repo.add_transcript_segment(foreign.id, "remote", "cancel order please", 0)
    hits = await repo.search_transcripts(number.id, "order")
    assert {h.text for h in hits} == {
        "I want to cancel my order",
        "Cancel the order? Order number?",
    }
    assert hits[0].text == "Cancel the order? Order number?"  # the denser match ranks first
    remote_only = await repo.search_transcripts(number.id, "cancel", party="remote")
    assert [h.text for h in remote_only] == ["I want to cancel my order"]
    assert await repo.search_transcripts(number.id, '"*) OR (') == []


async def test_texts_idempotent_on_carrier_id(repo: Repository) -> None:
    org = await repo.create_organization("acme")
    number = await repo.create_number(number_record(org.id, "+15550100009"), max_active=3)
    text = text_record(number, "+14155550100", "hello")
    event = EventDraft("text.received", org.id, {"id": text.id})
    stored, inserted = await repo.insert_text(text, [event])
    assert inserted and stored == text
    duplicate = text_record(
        number, "+14155550100", "hello", carrier_message_id=text.carrier_message_id
    )
    again, inserted_again = await repo.insert_text(duplicate, [event])
    assert not inserted_again and again.id == text.id
    assert len(await repo.list_events(org.id)) == 1


async def test_texts_media_read_delete_and_conversations(repo: Repository) -> None:
    org = await repo.create_organization("acme")
    number = await repo.create_number(number_record(org.id, "+15550100010"), max_active=3)
    base = utcnow()
    alice, bob = "+14155550001", "+14155550002"
    media = [MediaItem("image/png", 10, "mms/x/a.png")]
    t1 = text_record(number, alice, "first from alice", created_at=base)
    t2 = text_record(number, bob, None, type="mms", media=media, created_at=base + timedelta(1))
    t3 = text_record(
        number, alice, "reply", direction="outbound", is_read=True, created_at=base + timedelta(2)
    )
    for t in (t1, t2, t3):
        await repo.insert_text(t)
    stored_mms = await repo.get_text(number.id, t2.id)
    assert stored_mms is not None and stored_mms.media == media
    conversations = await repo.list_conversations(number.id)
    assert [c.remote_phone_number for c in conversations] == [alice, bob]
    assert (conversations[0].latest_text, conversations[0].unread_count) == ("reply", 1)
    assert conversations[0].total_count == 2
    assert await repo.mark_conversation_read(number.id, alice, True) == 1
    assert await repo.mark_conversation_read(number.id, alice, True) == 0
    assert [t.id for t in await repo.list_texts(number.id, is_read=False)] == [t2.id]
    deleted = await repo.update_text(number.id, t2.id, deleted=True)
    assert deleted is not None and deleted.status == "deleted"
    assert await repo.get_text(number.id, t2.id) is None
    assert [c.remote_phone_number for c in await repo.list_conversations(number.id)] == [alice]
    assert await repo.count_outbound_recipients_since(number.id, base.timestamp() - 1) == 1
    delivered = await repo.update_text_delivery(number.id, t3.carrier_message_id or "", "delivered")
    assert delivered is not None and delivered.delivery_status == "delivered"


async def test_text_search_excludes_deleted(repo: Repository) -> None:
    org = await repo.create_organization("acme")
    number = await repo.create_number(number_record(org.id, "+15550100011"), max_active=3)
    keep = text_record(number, "+14155550001", "invoice attached for march")
    gone = text_record(number, "+14155550001", "old invoice")
    await repo.insert_text(keep)
    await repo.insert_text(gone)
    await repo.update_text(number.id, gone.id, deleted=True)
    assert [t.id for t in await repo.search_texts(number.id, "invoices")] == [keep.id]


async def test_conversation_summaries_match_the_texts_after_random_changes(
    repo: Repository,
) -> None:
    rng = random.Random(7)
    org = await repo.create_organization("acme")
    number = await repo.create_number(number_record(org.id, "+15550100012"), max_active=3)
    remotes = [f"+1415555000{i}" for i in range(4)]
    base = utcnow()
    live: list[Text] = []
    for step in range(80):
        action = rng.random()
        if action < 0.5 or not live:
            text = text_record(
                number,
                rng.choice(remotes),
                f"message {step}",
                is_read=rng.random() < 0.3,
                created_at=base + timedelta(seconds=rng.randint(0, 20)),
            )
            await repo.insert_text(text)
            live.append(text)
        elif action < 0.7:
            victim = live.pop(rng.randrange(len(live)))
            await repo.update_text(number.id, victim.id, deleted=True)
        elif action < 0.9:
            target = rng.choice(live)
            target.is_read = rng.random() < 0.5
            await repo.update_text(number.id, target.id, is_read=target.is_read)
        else:
            remote, flag = rng.choice(remotes), rng.random() < 0.5
            await repo.mark_conversation_read(number.id, remote, flag)
            for text in live:
                if text.remote_phone_number == remote:
                    text.is_read = flag
    expected = {}
    for remote in remotes:
        mine = [t for t in live if t.remote_phone_number == remote]
        if mine:
            latest = max(mine, key=lambda t: (t.created_at, t.id))
            expected[remote] = (latest.text, sum(not t.is_read for t in mine), len(mine))
    summaries = await repo.list_conversations(number.id)
    got = {c.remote_phone_number: (c.latest_text, c.unread_count, c.total_count) for c in summaries}
    assert got == expected
    times = [c.latest_message_at for c in summaries]
    assert times == sorted(times, reverse=True)


async def test_search_finds_a_numbers_match_behind_many_newer_ones_elsewhere(
    repo: Repository,
) -> None:
    assert isinstance(repo, SqlRepository)
    org = await repo.create_organization("acme")
    quiet = await repo.create_number(number_record(org.id, "+15550100013"), max_active=3)
    busy = await repo.create_number(number_record(org.id, "+15550100014"), max_active=3)
    old = text_record(quiet, "+14155550001", "the invoice is late", created_at=utcnow())
    await repo.insert_text(old)
    later = utcnow() + timedelta(seconds=1)
    rows = [
        (
            new_id(),
            org.id,
            busy.id,
            "inbound",
            busy.number,
            "+14155550002",
            f"invoice {i}",
            "sms",
            "active",
            False,
            later,
            later,
        )
        for i in range(1500)
    ]
    columns = [
        "id",
        "organization_id",
        "phone_number_id",
        "direction",
        "local_phone_number",
        "remote_phone_number",
        "text",
        "type",
        "status",
        "is_read",
        "created_at",
        "updated_at",
    ]
    await repo.bulk_insert("texts", columns, rows)
    await repo.rebuild_summaries()
    assert [t.id for t in await repo.search_texts(quiet.id, "invoice")] == [old.id]
    assert len(await repo.search_texts(busy.id, "invoice", limit=200)) == 200
    (summary,) = await repo.list_conversations(busy.id)
    assert summary.total_count == 1500 and summary.unread_count == 1500


async def test_search_ranks_the_most_recent_matches_whichever_path_finds_them(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL checks a window of recent texts before its index; results must not differ."""
    import trunkline.storage.postgres as postgres

    monkeypatch.setattr(postgres, "RECENT_WINDOW", 10)
    monkeypatch.setattr(postgres, "SEARCH_CANDIDATES", 3)
    org = await repo.create_organization("acme")
    number = await repo.create_number(number_record(org.id, "+15550100015"), max_active=3)
    start = utcnow()
    texts = []
    for i in range(30):  # oldest first; "apple" every 5th, "zebra" only in the oldest
        words = ["common"] + (["apple"] if i % 5 == 0 else []) + (["zebra"] if i == 0 else [])
        text = text_record(number, "+14155550009", " ".join(words), created_at=start)
        text.created_at = start + timedelta(seconds=i)
        text.updated_at = text.created_at
        await repo.insert_text(text)
        texts.append(text)

    def newest(word: str, count: int) -> set[str]:
        matching = [t for t in texts if word in (t.text or "")]
        return {t.id for t in sorted(matching, key=lambda t: t.created_at)[-count:]}

    found = await repo.search_texts(number.id, "common", limit=50)  # the window holds enough
    if isinstance(repo, postgres.PostgresRepository):
        assert {t.id for t in found} == newest("common", 3)
    else:
        assert newest("common", 3) <= {t.id for t in found}
    apples = await repo.search_texts(number.id, "apple", limit=50)  # too few in the window
    if isinstance(repo, postgres.PostgresRepository):
        assert {t.id for t in apples} == newest("apple", 3)
    else:
        assert newest("apple", 3) <= {t.id for t in apples}
    (zebra,) = await repo.search_texts(number.id, "zebra", limit=50)  # none in the window
    assert zebra.id == texts[0].id
    assert await repo.search_texts(number.id, "nothing", limit=50) == []

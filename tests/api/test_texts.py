"""Texts (seed 003): listing, read state, deletion, search, conversations."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.api.conftest import ApiWorld, Org
from trunkline.storage.models import MediaItem, utcnow

TEXT_FIELDS = {
    "id",
    "direction",
    "local_phone_number",
    "remote_phone_number",
    "text",
    "type",
    "media",
    "status",
    "is_read",
    "created_at",
    "updated_at",
}
ALICE = "+14155550101"
BOB = "+14155550102"
SHORT_CODE = "76934"


async def _inbox(api: ApiWorld) -> tuple[Org, dict[str, Any], list[str]]:
    """A number with five texts: Alice x3 (one read), Bob x1, a short code x1; ids newest first."""
    org = await api.org()
    number = await api.provision(org)
    start = utcnow() - timedelta(minutes=10)
    made = []
    for i, (remote, body, read) in enumerate(
        [
            (ALICE, "hello from alice", True),
            (BOB, "bob asks about the invoice", False),
            (ALICE, "alice again about the invoice", False),
            (SHORT_CODE, "Your code is 123456", False),
            (ALICE, "alice third message", False),
        ]
    ):
        text = await api.add_text(
            number, remote, body, is_read=read, created_at=start + timedelta(minutes=i)
        )
        made.append(text.id)
    return org, number, list(reversed(made))


async def test_list_texts_newest_first_with_filters_and_pagination(api: ApiWorld) -> None:
    org, number, newest_first = await _inbox(api)
    path = f"/numbers/{number['id']}/texts"
    listed = await org.admin.get(path)
    assert listed.status == 200
    assert [t["id"] for t in listed.body] == newest_first
    assert set(listed.body[0]) == TEXT_FIELDS
    assert listed.body[0]["media"] is None and listed.body[0]["type"] == "sms"
    unread = await org.admin.get(path, params={"is_read": "false"})
    assert len(unread.body) == 4
    read = await org.admin.get(path, params={"is_read": "true"})
    assert [t["text"] for t in read.body] == ["hello from alice"]
    page = await org.admin.get(path, params={"limit": "2", "offset": "2"})
    assert [t["id"] for t in page.body] == newest_first[2:4]
    bad = await org.admin.get(path, params={"is_read": "maybe"})
    assert (bad.status, bad.body) == (422, {"detail": "is_read: expected true or false"})


async def test_get_and_patch_text(api: ApiWorld) -> None:
    org, number, ids = await _inbox(api)
    path = f"/numbers/{number['id']}/texts/{ids[0]}"
    got = await org.admin.get(path)
    assert got.status == 200 and got.body["is_read"] is False
    marked = await org.admin.patch(path, {"is_read": True})
    assert marked.status == 200 and marked.body["is_read"] is True
    unchanged = await org.admin.patch(path, {})
    assert unchanged.status == 200 and unchanged.body["is_read"] is True


async def test_delete_text_hides_it_from_lists_and_search(api: ApiWorld) -> None:
    org, number, ids = await _inbox(api)
    base = f"/numbers/{number['id']}/texts"
    deleted = await org.admin.patch(f"{base}/{ids[0]}", {"status": "deleted"})
    assert deleted.status == 200 and deleted.body["status"] == "deleted"
    listed = await org.admin.get(base)
    assert ids[0] not in {t["id"] for t in listed.body}
    found = await org.admin.get(f"{base}/search", params={"q": "third"})
    assert found.body == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"status": "active"}, 'status: must be one of "deleted"'),
        ({"is_read": "yes"}, "is_read: expected a boolean"),
        ({"text": "edited"}, "text: unknown field"),
    ],
)
async def test_patch_text_validation(api: ApiWorld, body: dict[str, Any], message: str) -> None:
    org, number, ids = await _inbox(api)
    answer = await org.admin.patch(f"/numbers/{number['id']}/texts/{ids[0]}", body)
    assert (answer.status, answer.body) == (422, {"detail": message})


async def test_text_not_found_cases_are_404(api: ApiWorld) -> None:
    org, number, ids = await _inbox(api)
    other = await api.provision(org, "support")
    missing = "00000000-0000-4000-8000-000000000000"
    for path in (
        f"/numbers/{number['id']}/texts/{missing}",
        f"/numbers/{number['id']}/texts/not-a-uuid",
        f"/numbers/{other['id']}/texts/{ids[0]}",
    ):
        answer = await org.admin.get(path)
        assert (answer.status, answer.body) == (404, {"detail": "Text not found"}), path
        assert (await org.admin.patch(path, {"is_read": True})).status == 404


async def test_search_texts_ranked_and_validated(api: ApiWorld) -> None:
    org, number, _ = await _inbox(api)
    path = f"/numbers/{number['id']}/texts/search"
    found = await org.admin.get(path, params={"q": "invoice"})
    assert found.status == 200
    assert {t["remote_phone_number"] for t in found.body} == {ALICE, BOB}
    assert len((await org.admin.get(path, params={"q": "invoice", "limit": "1"})).body) == 1
    missing = await org.admin.get(path)
    assert (missing.status, missing.body) == (422, {"detail": "q is required"})
    assert (await org.admin.get(path, params={"q": "x" * 501})).status == 422
    for query in ['"', "OR", "(a", "NOT *"]:
        assert (await org.admin.get(path, params={"q": query})).status == 200, query


async def test_conversations_summaries(api: ApiWorld) -> None:
    org, number, _ = await _inbox(api)
    answer = await org.admin.get(f"/numbers/{number['id']}/texts/conversations")
    assert answer.status == 200
    rows = {row["remote_phone_number"]: row for row in answer.body}
    assert [row["remote_phone_number"] for row in answer.body] == [ALICE, SHORT_CODE, BOB]
    alice = rows[ALICE]
    assert (alice["latest_text"], alice["latest_direction"], alice["latest_type"]) == (
        "alice third message",
        "inbound",
        "sms",
    )
    assert (alice["unread_count"], alice["total_count"]) == (2, 3)
    assert set(alice) == {
        "remote_phone_number",
        "latest_text",
        "latest_direction",
        "latest_type",
        "latest_message_at",
        "unread_count",
        "total_count",
    }
    page = await org.admin.get(
        f"/numbers/{number['id']}/texts/conversations", params={"limit": "1", "offset": "1"}
    )
    assert [row["remote_phone_number"] for row in page.body] == [SHORT_CODE]


async def test_conversation_messages_and_bulk_read(api: ApiWorld) -> None:
    org, number, _ = await _inbox(api)
    path = f"/numbers/{number['id']}/texts/conversations/{ALICE}"
    messages = await org.admin.get(path)
    assert [t["text"] for t in messages.body] == [
        "alice third message",
        "alice again about the invoice",
        "hello from alice",
    ]
    updated = await org.admin.patch(path, {"is_read": True})
    assert (updated.status, updated.body) == (
        200,
        {"remote_phone_number": ALICE, "is_read": True, "updated_count": 2},
    )
    again = await org.admin.patch(path, {"is_read": True})
    assert again.body["updated_count"] == 0
    short = await org.admin.get(f"/numbers/{number['id']}/texts/conversations/{SHORT_CODE}")
    assert [t["remote_phone_number"] for t in short.body] == [SHORT_CODE]


async def test_conversation_validation(api: ApiWorld) -> None:
    org, number, _ = await _inbox(api)
    path = f"/numbers/{number['id']}/texts/conversations/{ALICE}"
    missing = await org.admin.patch(path, {})
    assert (missing.status, missing.body) == (422, {"detail": "is_read is required"})
    wrong = await org.admin.patch(path, {"is_read": 1})
    assert (wrong.status, wrong.body) == (422, {"detail": "is_read: expected a boolean"})
    bad_remote = await org.admin.get(f"/numbers/{number['id']}/texts/conversations/alice")
    assert bad_remote.status == 404


async def test_mms_media_has_presigned_urls(api: ApiWorld) -> None:
    org = await api.org()
    number = await api.provision(org)
    media = [MediaItem("image/jpeg", 2048, "mms/abc/photo.jpg")]
    text = await api.add_text(number, ALICE, None, media=media)
    answer = await org.admin.get(f"/numbers/{number['id']}/texts/{text.id}")
    assert answer.status == 200
    assert (answer.body["type"], answer.body["text"]) == ("mms", None)
    (item,) = answer.body["media"]
    assert (item["content_type"], item["size"]) == ("image/jpeg", 2048)
    url = urlsplit(item["url"])
    assert url.scheme in ("http", "https") and url.query


async def test_released_number_texts_are_404(api: ApiWorld) -> None:
    org, number, _ = await _inbox(api)
    await org.admin.delete(f"/numbers/{number['id']}")
    answer = await org.admin.get(f"/numbers/{number['id']}/texts")
    assert (answer.status, answer.body) == (404, {"detail": "Phone number not found or released"})

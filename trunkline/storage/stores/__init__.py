"""The storage contract by aggregate: one narrow Protocol per kind of record.

A caller depends on the store it uses (the call flow on ``CallStore`` and the
number lookups of ``NumberStore``, the outbox worker on ``WebhookStore``, …);
``trunkline.storage.repository.Repository`` is all of them plus the lifecycle.
"""

from trunkline.storage.stores.calls import CallStore
from trunkline.storage.stores.identities import IdentityStore
from trunkline.storage.stores.nodes import NodeStore
from trunkline.storage.stores.numbers import NumberStore
from trunkline.storage.stores.texts import TextStore
from trunkline.storage.stores.webhooks import WebhookStore

__all__ = ["CallStore", "IdentityStore", "NodeStore", "NumberStore", "TextStore", "WebhookStore"]

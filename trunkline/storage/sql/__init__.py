"""The storage contract written once in SQL that SQLite and PostgreSQL both accept.

One module per aggregate (``identities``, ``numbers``, ``calls``, ``texts``,
``webhooks``), each implementing its store Protocol over ``base.SqlStoreBase``;
``repository.SqlRepository`` composes them for the backends to subclass.
"""

from trunkline.storage.sql.base import Row, SqlStoreBase, Tx
from trunkline.storage.sql.repository import SqlRepository

__all__ = ["Row", "SqlRepository", "SqlStoreBase", "Tx"]

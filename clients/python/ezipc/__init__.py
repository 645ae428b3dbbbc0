"""ezipc for Python: a client of an ezipc hub (docs/protocol.md), standard library only."""

from .client import Client, ConfigVar, Deadman, Gap, Message, Pointer, Reply, Request, Stream, Subscription, connect
from .errors import EzipcError
from .sync import SyncClient, SyncPointer, SyncSubscription

__all__ = ["Client", "ConfigVar", "Deadman", "EzipcError", "Gap", "Message", "Pointer", "Reply", "Request", "Stream", "Subscription", "SyncClient", "SyncPointer", "SyncSubscription", "connect"]

"""SOAP services (placeholder)."""
from __future__ import annotations
import threading, time
from typing import Any

class RateLimiter:
    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster
        self.lock = threading.Lock()
        self.calls: dict[str, list[float]] = {}

def handle(handler: Any, method: str, path: str, query: str) -> None:
    handler.body()
    handler.send(404, "Not Found", "text/plain")

"""Sessions in the database, read through a short-lived per-process cache.

An open board polls every few seconds; reading its session from a per-process cache
keeps that poll at two queries. But a worker's cache does not hear about a sign-out,
password change or deactivation handled by another worker, and Django's cached_db
backend caches a session for the session's whole remaining life (two weeks), ignoring
the cache's own TIMEOUT: a signed-out session cookie kept working on other workers.
Here every cached copy expires after SESSION_CACHE_SECONDS (default 60), so such a
change holds on every worker within that time.
"""

from django.conf import settings
from django.contrib.sessions.backends.cached_db import SessionStore as CachedDBStore


class _ShortLivedCache:
    """The session cache with every timeout capped; everything else passes through."""

    def __init__(self, cache, seconds: int):
        self._cache, self._seconds = cache, seconds

    def _timeout(self, timeout) -> int:
        return self._seconds if timeout is None else min(timeout, self._seconds)

    def set(self, key, value, timeout=None, **kwargs):
        return self._cache.set(key, value, self._timeout(timeout), **kwargs)

    async def aset(self, key, value, timeout=None, **kwargs):
        return await self._cache.aset(key, value, self._timeout(timeout), **kwargs)

    def __contains__(self, key) -> bool:
        return key in self._cache

    def __getattr__(self, name):
        return getattr(self._cache, name)


class SessionStore(CachedDBStore):
    def __init__(self, session_key=None):
        super().__init__(session_key)
        self._cache = _ShortLivedCache(self._cache, settings.SESSION_CACHE_SECONDS)

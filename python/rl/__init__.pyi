# Type stubs of the rl package (the C extension rl._rl and rl/__init__.py). docs/python.md.
from typing import Literal, Optional, Sequence, Union

Algorithm = Literal["token_bucket", "sliding_window", "fixed_window", "gcra"]
Mode = Literal["local", "global", "strict"]
Scope = Literal["ip", "user", "global", "endpoint", "descriptor", "user_endpoint"]
Key = Union[str, bytes]

ALGORITHMS: tuple[str, ...]
SCOPES: tuple[str, ...]
MODES: tuple[str, ...]
__version__: str

class Error(OSError):
    """An error from librl: .errno the errno code, .strerror rl's message."""

class InvalidArgument(Error, ValueError):
    """A bad argument or configuration (EINVAL, ERANGE, E2BIG)."""

class Result:
    """One acquire() answer; truthy when allowed."""

    @property
    def allowed(self) -> bool: ...
    @property
    def limit(self) -> int: ...
    @property
    def remaining(self) -> int: ...
    @property
    def retry_after(self) -> float:
        """Seconds until `cost` fits (0.0 when allowed; inf when it never will)."""
    @property
    def reset_after(self) -> float: ...
    @property
    def retry_after_ms(self) -> int: ...
    @property
    def reset_after_ms(self) -> int: ...
    def __bool__(self) -> bool: ...

class Decision:
    """One check() answer (every layer); truthy when allowed."""

    @property
    def allowed(self) -> bool: ...
    @property
    def bypassed(self) -> bool: ...
    @property
    def disabled(self) -> bool: ...
    @property
    def limit(self) -> Optional[int]: ...
    @property
    def remaining(self) -> Optional[int]: ...
    @property
    def retry_after(self) -> float: ...
    @property
    def reset_after(self) -> float: ...
    @property
    def strict(self) -> bool: ...
    @property
    def config_generation(self) -> int: ...
    @property
    def scope(self) -> Optional[str]: ...
    def headers(self, raw: bool = False, ietf: bool = False) -> dict[str, str]:
        """X-RateLimit-Limit, -Remaining, -Reset, -Scope, -Algorithm, and Retry-After when
        denied; raw=True: a list of (bytes, bytes) with lower-case names (ASGI)."""
    def body(self) -> str:
        """The JSON body of a 429 answer ({"error": "rate_limited", ...})."""
    def layers(self) -> list[dict]: ...
    def __bool__(self) -> bool: ...

class Limiter:
    """A handle on one rl segment, attached at its first use (nothing at import)."""

    def __init__(
        self,
        shm: Optional[str] = None,
        config: Optional[str] = None,
        redis_url: Optional[str] = None,
        environment: Optional[str] = None,
        *,
        capacity: Optional[int] = None,
        enabled: Optional[bool] = None,
        fallback: Optional[Literal["local", "open", "closed"]] = None,
        sync_interval_ms: Optional[int] = None,
        redis_pool_size: Optional[int] = None,
        redis_connect_timeout_ms: Optional[int] = None,
        redis_command_timeout_ms: Optional[int] = None,
        host_id: Optional[str] = None,
        cluster_hosts: Optional[int] = None,
        no_sync: bool = False,
        no_stats: bool = False,
        create: bool = True,
        from_env: bool = True,
        monitoring: int = -1,
    ) -> None: ...
    @property
    def opened(self) -> bool: ...
    @property
    def closed(self) -> bool: ...
    @property
    def redis_configured(self) -> bool: ...
    @property
    def shm(self) -> str: ...
    def acquire(
        self,
        key: Key,
        requests: int,
        window: float,
        burst: int = 0,
        algorithm: Optional[Algorithm] = None,
        cost: int = 1,
        mode: Optional[Mode] = None,
    ) -> Result:
        """Takes `cost` units for `key` under `requests` per `window` seconds. LOCAL and
        GLOBAL never block (GIL held: tens of ns); STRICT waits on Redis without the GIL."""
    async def acquire_async(
        self,
        key: Key,
        requests: int,
        window: float,
        burst: int = 0,
        algorithm: Optional[Algorithm] = None,
        cost: int = 1,
        mode: Optional[Mode] = None,
    ) -> Result: ...
    def check(
        self,
        method: str,
        path: str,
        ip: Optional[str] = None,
        user: Optional[str] = None,
        tier: Optional[str] = None,
        cost: int = 1,
        nogil: bool = False,
    ) -> Decision: ...
    async def check_async(
        self,
        method: str,
        path: str,
        ip: Optional[str] = None,
        user: Optional[str] = None,
        tier: Optional[str] = None,
        cost: int = 1,
    ) -> Decision: ...
    def reset(
        self,
        key: Key,
        requests: int,
        window: float,
        burst: int = 0,
        algorithm: Optional[Algorithm] = None,
        mode: Optional[Mode] = None,
    ) -> None: ...
    def stats(self) -> dict[str, int]: ...
    def endpoint_stats(self) -> dict[str, dict[str, int]]: ...
    def health(self) -> dict: ...
    def config_dump(self) -> str: ...
    def load_config(self, path: str) -> None: ...
    def configure_endpoint(self, pattern: str, layers: Sequence[dict]) -> None: ...
    def bypass_add(self, kind: Literal["ip", "user"], value: str) -> None: ...
    def bypass_remove(self, kind: Literal["ip", "user"], value: str) -> None: ...
    def bypass_list(self, kind: Literal["ip", "user"]) -> list[str]: ...
    def open(self) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> "Limiter": ...
    def __exit__(self, *exc: object) -> None: ...

def client_ip(
    peer: str, x_forwarded_for: Optional[str] = None, trusted: Sequence[str] = ()
) -> str: ...
def unlink(shm: str) -> bool: ...
def check_config_file(path: str) -> None: ...
def parse_rate(rate: str) -> tuple[int, int]: ...
def version() -> str: ...

"""The middleware, the FastAPI dependency, the monitoring router and the WSGI middleware,
through Starlette's TestClient and Flask's test client (in process, real rl segment)."""

import json

import pytest
from fastapi import Depends, FastAPI, WebSocket
from starlette.testclient import TestClient

import rl
import rl.fastapi
from rl.asgi import RateLimitMiddleware, header


def make_app(lim, **kw):
    app = FastAPI()
    app.add_middleware(RateLimitMiddleware, limiter=lim, **kw)
    rl.fastapi.install(app, lim)

    @app.post("/auth/login")
    def login():
        return {"token": "t"}

    @app.get("/health")
    def health():
        return {"ok": True}

    @app.get("/api/items")
    def items():
        return {"items": []}

    @app.get("/routed", dependencies=[Depends(rl.fastapi.limit("3/minute", scope="ip"))])
    def routed():
        return {"ok": True}

    app.include_router(rl.fastapi.monitoring_router(
        lim, admin=lambda r: r.headers.get("x-admin") == "yes"))
    return app


@pytest.fixture
def lim(shm):
    with rl.Limiter(shm=shm, environment="production") as lim:
        yield lim


def test_429_body_and_headers(lim):
    c = TestClient(make_app(lim))
    codes = [c.post("/auth/login", headers={"x-forwarded-for": "1.2.3.4"}) for _ in range(6)]
    assert [r.status_code for r in codes] == [200] * 5 + [429]
    ok, denied = codes[0], codes[-1]
    assert ok.json() == {"token": "t"}
    assert ok.headers["x-ratelimit-limit"] == "5"
    assert ok.headers["x-ratelimit-remaining"] == "4"
    assert ok.headers["x-ratelimit-scope"] == "per_ip"
    assert ok.headers["x-ratelimit-algorithm"] == "fixed_window"
    assert "retry-after" not in ok.headers
    assert denied.headers["content-type"] == "application/json"
    assert int(denied.headers["retry-after"]) >= 1
    assert int(denied.headers["x-ratelimit-reset"]) > 1_600_000_000
    body = denied.json()
    assert body["error"] == "rate_limited"
    assert body["limit"] == 5 and body["remaining"] == 0
    assert body["scope"] == "per_ip" and body["rule"] == "POST:/auth/login"
    assert body["retry_after"] == int(denied.headers["retry-after"])


def test_forwarded_for_believed_only_from_trusted_proxies(lim):
    # TestClient's peer is "testclient": not an address, not trusted. The header is ignored,
    # so every request is the same client whatever it claims.
    c = TestClient(make_app(lim))
    rs = [c.post("/auth/login", headers={"x-forwarded-for": f"9.9.9.{i}"}) for i in range(6)]
    assert rs[-1].status_code == 429

    # With a client_ip of our own that reads a trusted header, each address is a client.
    c2 = TestClient(make_app(lim, client_ip=lambda s: header(s, "x-real-ip") or "0.0.0.0"))
    rs = [c2.post("/auth/login", headers={"x-real-ip": f"9.9.8.{i}"}) for i in range(6)]
    assert all(r.status_code == 200 for r in rs)


def test_client_ip_through_proxies():
    from rl.asgi import ClientIP

    ip = ClientIP(["10.0.0.0/8"])
    scope = {"client": ("10.1.2.3", 5555), "headers": [(b"x-forwarded-for", b"198.51.100.7")]}
    assert ip(scope) == "198.51.100.7"
    scope["client"] = ("203.0.113.9", 5555)  # not a proxy: the header is a lie
    assert ip(scope) == "203.0.113.9"
    with pytest.raises(rl.InvalidArgument):
        ClientIP(["10.0.0.0/77"])


def test_exempt_paths_users_and_rule_bypass(lim):
    c = TestClient(make_app(lim, exempt_paths=["/auth"], user=lambda s: header(s, "x-user"),
                            exempt_users=["ops"]))
    assert all(c.post("/auth/login").status_code == 200 for _ in range(8))
    assert "x-ratelimit-limit" not in c.post("/auth/login").headers
    c2 = TestClient(make_app(lim, user=lambda s: header(s, "x-user"), exempt_users=["ops"]))
    assert all(c2.get("/api/items", headers={"x-user": "ops"}).status_code == 200
               for _ in range(3))
    # the rule set's bypass list (rlctl bypass), shared by every process
    lim.bypass_add("user", "vip")
    assert "vip" in lim.bypass_list("user")
    assert all(c2.post("/auth/login", headers={"x-user": "vip"}).status_code == 200
               for _ in range(8))


def test_tier_callable_applies_tier_layers(lim):
    c = TestClient(make_app(lim, user=lambda s: header(s, "x-user"),
                            tier=lambda s: header(s, "x-tier")))
    # production free tier: 10 per minute per user (token bucket)
    rs = [c.get("/api/items", headers={"x-user": "u1", "x-tier": "free"}) for _ in range(12)]
    assert [r.status_code for r in rs].count(429) >= 1
    assert rs[-1].json()["rule"].startswith("tier:free")


def test_fastapi_limit_dependency(lim):
    c = TestClient(make_app(lim))
    rs = [c.get("/routed") for _ in range(4)]
    assert [r.status_code for r in rs] == [200, 200, 200, 429]
    assert rs[0].headers["x-ratelimit-limit"] == "3"
    assert rs[0].headers["x-ratelimit-remaining"] == "2"
    body = rs[-1].json()
    assert body["error"] == "rate_limited" and body["rule"] == "GET:/routed"
    assert int(rs[-1].headers["retry-after"]) >= 1
    with pytest.raises(rl.InvalidArgument, match="rate"):
        rl.fastapi.limit("100 a minute")
    with pytest.raises(rl.InvalidArgument, match="scope"):
        rl.fastapi.limit("100/minute", scope="planet")


def test_monitoring_router(lim):
    c = TestClient(make_app(lim))
    for _ in range(7):
        c.post("/auth/login")
    m = c.get("/rate-limits/metrics").json()
    assert m["denied_requests"] >= 2
    assert m["top_denied_endpoints"][0]["endpoint"] == "POST:/auth/login"
    e = c.get("/rate-limits/metrics/endpoint/POST:/auth/login").json()
    assert e["allowed"] == 5 and e["denied"] == 2
    assert c.get("/rate-limits/metrics/endpoint/nope").status_code == 404
    assert c.get("/rate-limits/metrics/real-time").status_code == 200
    assert "POST:/auth/login" in c.get("/rate-limits/config").text
    h = c.get("/rate-limits/health").json()
    assert h["status"] == "healthy" and h["redis_configured"] is False
    req = {"key": "k", "requests": 1, "window": 60}
    assert c.post("/rate-limits/reset", json=req).status_code == 403
    assert c.post("/rate-limits/reset", json=req, headers={"x-admin": "yes"}).status_code == 200
    assert c.post("/rate-limits/reset", json={"key": "k"},
                  headers={"x-admin": "yes"}).status_code == 400


def test_wsgi_middleware_with_flask(lim):
    flask = pytest.importorskip("flask")
    from rl.wsgi import RateLimitMiddleware as WSGIMiddleware

    app = flask.Flask("t")

    @app.post("/auth/login")
    def login():
        return {"token": "t"}

    app.wsgi_app = WSGIMiddleware(app.wsgi_app, limiter=lim)
    c = app.test_client()
    rs = [c.post("/auth/login", environ_base={"REMOTE_ADDR": "192.0.2.5"}) for _ in range(6)]
    assert [r.status_code for r in rs] == [200] * 5 + [429]
    assert rs[0].headers["X-RateLimit-Remaining"] == "4"
    assert json.loads(rs[-1].data)["error"] == "rate_limited"
    assert int(rs[-1].headers["Retry-After"]) >= 1
    # another address is another client
    assert c.post("/auth/login", environ_base={"REMOTE_ADDR": "192.0.2.6"}).status_code == 200


def test_fastapi_limit_scopes(lim):
    app = FastAPI()
    rl.fastapi.install(app, lim)
    by_user = rl.fastapi.limit("2/minute", scope="user",
                               user=lambda r: r.headers.get("x-user"))
    everyone = rl.fastapi.limit("3/minute", scope="global")
    by_key = rl.fastapi.limit("1/minute", key=lambda r: r.query_params.get("k", ""))

    @app.get("/u", dependencies=[Depends(by_user)])
    def u():
        return {}

    @app.get("/g", dependencies=[Depends(everyone)])
    def g():
        return {}

    @app.get("/k", dependencies=[Depends(by_key)])
    def k():
        return {}

    c = TestClient(app)
    # per user: alice's two do not touch bob's two
    assert [c.get("/u", headers={"x-user": "alice"}).status_code for _ in range(3)] == \
        [200, 200, 429]
    assert c.get("/u", headers={"x-user": "bob"}).status_code == 200
    assert c.get("/u", headers={"x-user": "alice"}).json()["scope"] == "per_user"
    # global: one counter whoever asks
    assert [c.get("/g", headers={"x-user": str(i)}).status_code for i in range(4)] == \
        [200, 200, 200, 429]
    # a key of one's own
    assert [c.get("/k?k=a").status_code, c.get("/k?k=a").status_code,
            c.get("/k?k=b").status_code] == [200, 429, 200]


def test_non_str_user_ids_are_limited_not_let_through(lim):
    """A user callable returning an int id (the common case) is limited by that id: it must not
    make check() raise TypeError, which fail_open would turn into no limit at all."""
    c = TestClient(make_app(lim, user=lambda s: 42, tier=lambda s: "free"))
    rs = [c.get("/api/items") for _ in range(12)]  # production free tier: 10/min per user
    assert [r.status_code for r in rs].count(429) >= 1
    assert rs[-1].json()["rule"].startswith("tier:free")
    assert rs[0].headers["x-ratelimit-limit"] == "10"
    # the WSGI middleware the same (it has no fail_open: a TypeError there was a 500)
    flask = pytest.importorskip("flask")
    from rl.wsgi import RateLimitMiddleware as WSGIMiddleware

    app = flask.Flask("t")

    @app.get("/api/items")
    def items():
        return {"items": []}

    app.wsgi_app = WSGIMiddleware(app.wsgi_app, limiter=lim, user=lambda e: 43,
                                  tier=lambda e: "free")
    w = app.test_client()
    codes = [w.get("/api/items").status_code for _ in range(12)]
    assert set(codes) <= {200, 429} and codes.count(429) >= 1, codes


def test_nul_in_path_is_limited_not_let_through(lim):
    """A client sending %00 in the path (an ASGI path is percent-decoded: "\\x00") must still be
    limited: rl takes C strings, check() refused the path, and fail_open let every such request
    through unlimited (a route with a path parameter still answers it)."""
    lim.configure_endpoint("GET:/items/*", [{"requests": 2, "window": 60, "scope": "ip"}])
    app = FastAPI()
    app.add_middleware(RateLimitMiddleware, limiter=lim)

    @app.get("/items/{name}")
    def item(name: str):
        return {"name": name}

    c = TestClient(app)
    rs = [c.get("/items/a%00b") for _ in range(4)]
    assert [r.status_code for r in rs] == [200, 200, 429, 429], [r.text for r in rs]
    assert rs[0].json() == {"name": "a\x00b"}  # the app still sees the path as sent

    flask = pytest.importorskip("flask")
    from rl.wsgi import RateLimitMiddleware as WSGIMiddleware

    fapp = flask.Flask("t")

    @fapp.get("/items/<name>")
    def fitem(name):
        return {"name": name}

    fapp.wsgi_app = WSGIMiddleware(fapp.wsgi_app, limiter=lim)
    w = fapp.test_client()
    codes = [w.get("/items/c%00d", environ_base={"REMOTE_ADDR": "192.0.2.9"}).status_code
             for _ in range(3)]
    assert codes == [200, 200, 429], codes


def test_fastapi_limit_rejects_bad_burst_and_cost_at_definition():
    """limit() promises bad arguments raise at import, not as a 500 at the first request."""
    for kw in ({"cost": -1}, {"cost": 0}, {"cost": 1.5}, {"cost": "2"}, {"burst": -5},
               {"burst": True}):
        with pytest.raises(rl.InvalidArgument, match=f"limit: {next(iter(kw))} "):
            rl.fastapi.limit("10/minute", **kw)
    rl.fastapi.limit("10/minute", cost=3, burst=0)  # fine


def test_lifespan_and_websocket_scopes_pass_through_untouched(lim):
    """Only http scopes are checked: lifespan and websocket scopes reach the app as they came
    (the same scope, receive and send objects), and rl counts nothing for them."""
    import asyncio

    seen = []

    async def app(scope, receive, send):
        seen.append((scope, receive, send))

    mw = RateLimitMiddleware(app, limiter=lim)
    before = lim.stats()["checks"]
    for scope in ({"type": "lifespan", "asgi": {"version": "3.0"}},
                  {"type": "websocket", "path": "/auth/login", "headers": [],
                   "client": ("192.0.2.1", 1)}):
        snapshot = dict(scope)

        async def receive():
            return {}

        async def send(m):
            pass

        asyncio.run(mw(scope, receive, send))
        s, r, w = seen[-1]
        assert s is scope and s == snapshot and r is receive and w is send
    assert lim.stats()["checks"] == before

    # and a websocket route through the real stack still connects
    fa = FastAPI()
    fa.add_middleware(RateLimitMiddleware, limiter=lim)

    @fa.websocket("/ws")
    async def ws(sock: WebSocket):
        await sock.accept()
        await sock.send_text("hi")
        await sock.close()

    with TestClient(fa).websocket_connect("/ws") as c:
        assert c.receive_text() == "hi"


def test_nul_in_forwarded_for_from_a_trusted_proxy_is_the_peer_not_a_500():
    """A header with a NUL (a garbled or hostile X-Forwarded-For relayed by a trusted proxy) is
    like any unparsable one: the client is the peer, never an exception out of the middleware."""
    from rl.asgi import ClientIP
    from rl.wsgi import RateLimitMiddleware as WSGIMiddleware

    ip = ClientIP(["10.0.0.0/8"])
    scope = {"client": ("10.1.2.3", 5555), "headers": [(b"x-forwarded-for", b"198.51.100.7\x00")]}
    assert ip(scope) == "10.1.2.3"
    w = WSGIMiddleware(None, limiter=rl.Limiter(), trusted_proxies=["10.0.0.0/8"])
    assert w.client_ip({"REMOTE_ADDR": "10.1.2.3",
                        "HTTP_X_FORWARDED_FOR": "198.51.100.7\x00"}) == "10.1.2.3"
    assert w.client_ip({"REMOTE_ADDR": "10.1.2.3",
                        "HTTP_X_FORWARDED_FOR": "198.51.100.7"}) == "198.51.100.7"

#!/usr/bin/env python3
"""limit_req compatibility of rl_req, side by side: every test runs one real nginx (Debian's) with
the same limit under stock limit_req at /lr/ and under rl_req at /rl/, sends both the same
requests and asserts that both answer the same, and what they answer. Rates are slow (per
minute) wherever timing is not the point, so that a busy machine cannot change an answer."""

import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ngxharness import Nginx, get, parallel  # noqa: E402


def pair(zone_args, req_args, extra_loc="", http_extra="", key="$binary_remote_addr",
         lr_extra=None, rl_extra=None):
    """http block body: zone z under both modules, /lr/ and /rl/ limited the same way."""
    return f"""
    limit_req_zone {key} zone=z:1m {zone_args};
    rl_req_zone {key} zone=z:1m {zone_args} shm=@shm:z@;
    {http_extra}
    server {{
        listen 127.0.0.1:@port@;
        location /lr/ {{ limit_req zone=z {req_args}; {extra_loc} {lr_extra or ""}
                         add_header X-Status $limit_req_status always; alias @html@/; }}
        location /rl/ {{ rl_req zone=z {req_args}; {extra_loc.replace("limit_req", "rl_req")}
                         {rl_extra or ""}
                         add_header X-Status $rl_req_status always; alias @html@/; }}
    }}
"""


def statuses(port, prefix, n, path="index.html", headers=None):
    out = []
    for _ in range(n):
        r = get(port, "/%s/%s" % (prefix, path), headers=headers)
        out.append((r.status, r.header("X-Status")))
    return out


class LimitReqCompat(unittest.TestCase):
    def both(self, ngx, n, path="index.html", headers=None):
        lr = statuses(ngx.port, "lr", n, path, headers)
        rl = statuses(ngx.port, "rl", n, path, headers)
        self.assertEqual(lr, rl, "limit_req answered %s, rl_req %s" % (lr, rl))
        return rl

    def test_burst_nodelay(self):
        with Nginx(pair("rate=1r/m", "burst=3 nodelay")) as ngx:
            got = self.both(ngx, 6)
            self.assertEqual([s for s, _ in got], [200] * 4 + [503] * 2)
            self.assertEqual([x for _, x in got], ["PASSED"] * 4 + ["REJECTED"] * 2)

    def test_no_burst(self):
        with Nginx(pair("rate=1r/m", "")) as ngx:
            got = self.both(ngx, 3)
            self.assertEqual([s for s, _ in got], [200, 503, 503])

    def test_status_code(self):
        http = pair("rate=1r/m", "nodelay", extra_loc="limit_req_status 429;")
        with Nginx(http) as ngx:
            got = self.both(ngx, 2)
            self.assertEqual(got, [(200, "PASSED"), (429, "REJECTED")])

    def test_inherited_status_and_limits(self):
        # rl_req and rl_req_status at server level, inherited by a location without its own;
        # a location with its own rl_req uses only its own (as limit_req: not added).
        http = """
    limit_req_zone $binary_remote_addr zone=a:1m rate=1r/m;
    limit_req_zone $binary_remote_addr zone=b:1m rate=1r/m;
    rl_req_zone $binary_remote_addr zone=a:1m rate=1r/m shm=@shm:a@;
    rl_req_zone $binary_remote_addr zone=b:1m rate=1r/m shm=@shm:b@;
    server { listen 127.0.0.1:@port0@;
        limit_req zone=a burst=1 nodelay; limit_req_status 429;
        location /lr/ { alias @html@/; add_header X-Status $limit_req_status always; }
        location /lr/own/ { limit_req zone=b burst=2 nodelay; alias @html@/;
                            add_header X-Status $limit_req_status always; } }
    server { listen 127.0.0.1:@port1@;
        rl_req zone=a burst=1 nodelay; rl_req_status 429;
        location /rl/ { alias @html@/; add_header X-Status $rl_req_status always; }
        location /rl/own/ { rl_req zone=b burst=2 nodelay; alias @html@/;
                            add_header X-Status $rl_req_status always; } }
"""
        with Nginx(http, nports=2) as ngx:
            lr = statuses(ngx.ports[0], "lr", 3) + statuses(ngx.ports[0], "lr/own", 4)
            rl = statuses(ngx.ports[1], "rl", 3) + statuses(ngx.ports[1], "rl/own", 4)
            self.assertEqual(lr, rl)
            self.assertEqual([s for s, _ in rl], [200, 200, 429, 200, 200, 200, 429])

    def test_dry_run(self):
        http = pair("rate=1r/m", "burst=1", extra_loc="limit_req_dry_run on;")
        with Nginx(http) as ngx:
            got = self.both(ngx, 4)
            # A dry run counts what it passes, never rejects; the would-be delayed request is
            # DELAYED_DRY_RUN and answered at once.
            self.assertEqual(got, [(200, "PASSED"), (200, "DELAYED_DRY_RUN"),
                                   (200, "REJECTED_DRY_RUN"), (200, "REJECTED_DRY_RUN")])
            log = ngx.log()
            # Two rejections and one delay per module, logged with ", dry run".
            self.assertEqual(log.count("limiting requests, dry run, excess:"), 4, log)
            self.assertEqual(log.count("delaying request, dry run, excess:"), 2, log)

    def test_log_lines_and_level(self):
        # 2 r/s, burst 1, three requests at once: one passes, one waits 500 ms, one is refused.
        http = pair("rate=2r/s", "burst=1", extra_loc="limit_req_log_level warn;")
        with Nginx(http) as ngx:
            for prefix in ("lr", "rl"):
                rs = parallel([lambda: get(ngx.port, "/%s/index.html" % prefix)] * 3)
                self.assertEqual(sorted(r.status for r in rs), [200, 200, 503], prefix)
                time.sleep(1.1)
            lines = [ln for ln in ngx.log().splitlines()
                     if "limiting requests" in ln or "delaying request" in ln]
            self.assertEqual(len(lines), 4, lines)
            pat = {"warn": r'limiting requests, excess: [12]\.\d{3} by zone "z", client: ',
                   "notice": r'delaying request, excess: [01]\.\d{3}, by zone "z", client: '}
            # The same lines from both modules: the rejection at warn, the delay one level lower.
            for level, rx in pat.items():
                got = [ln for ln in lines if "[%s]" % level in ln and re.search(rx, ln)]
                self.assertEqual(len(got), 2, (level, lines))

    def test_rejected_not_counted(self):
        # 60 r/m: one request a second. Rejected requests in between take nothing, so the next
        # one a second after the first passes.
        with Nginx(pair("rate=60r/m", "nodelay")) as ngx:
            for prefix in ("lr", "rl"):
                t0 = time.monotonic()
                first = get(ngx.port, "/%s/index.html" % prefix)
                self.assertEqual(first.status, 200)
                rejected = 0
                while time.monotonic() - t0 < 0.7:
                    r = get(ngx.port, "/%s/index.html" % prefix)
                    if r.status == 503:
                        rejected += 1
                self.assertGreater(rejected, 3, prefix)
                while time.monotonic() - t0 < 1.15:
                    time.sleep(0.01)
                self.assertEqual(get(ngx.port, "/%s/index.html" % prefix).status, 200, prefix)

    def test_idle_time_is_not_banked(self):
        # The excess cannot go below zero: after idle time a key has its burst, no more.
        with Nginx(pair("rate=120r/m", "burst=1 nodelay")) as ngx:
            get(ngx.port, "/lr/index.html")
            get(ngx.port, "/rl/index.html")
            time.sleep(2.0)  # the passing of time is the point: ~4 requests' worth of idle
            got = self.both(ngx, 4)
            self.assertEqual([s for s, _ in got], [200, 200, 503, 503])

    def test_empty_key_not_limited(self):
        with Nginx(pair("rate=1r/m", "nodelay", key="$arg_k")) as ngx:
            got = self.both(ngx, 4)  # no ?k=: the key is empty
            self.assertEqual(got, [(200, None)] * 4)
            got = self.both(ngx, 2, path="index.html?k=a")
            self.assertEqual(got, [(200, "PASSED"), (503, "REJECTED")])
            got = self.both(ngx, 1, path="index.html?k=b")
            self.assertEqual(got, [(200, "PASSED")])

    def test_long_keys(self):
        # Keys longer than rl's 512 bytes are counted by their 128-bit hash: two long keys that
        # share their first 600 bytes are still two keys.
        with Nginx(pair("rate=1r/m", "nodelay", key="$arg_k")) as ngx:
            a = "x" * 600 + "a"
            b = "x" * 600 + "b"
            got = self.both(ngx, 2, path="index.html?k=" + a)
            self.assertEqual([s for s, _ in got], [200, 503])
            got = self.both(ngx, 2, path="index.html?k=" + b)
            self.assertEqual([s for s, _ in got], [200, 503])

    def test_several_zones_all_or_nothing(self):
        # Zone a per client with burst 5, zone b one shared key with no burst. The second request
        # is refused by b: a must not be charged for it (nor for the 3 after it).
        http = """
    limit_req_zone $binary_remote_addr zone=a:1m rate=1r/m;
    limit_req_zone $server_name zone=b:1m rate=1r/m;
    rl_req_zone $binary_remote_addr zone=a:1m rate=1r/m shm=@shm:a@;
    rl_req_zone $server_name zone=b:1m rate=1r/m shm=@shm:b@;
    server { listen 127.0.0.1:@port@; server_name s;
        location /lr/ { limit_req zone=a burst=5 nodelay; limit_req zone=b nodelay; alias @html@/; }
        location /lr/a/ { limit_req zone=a burst=5 nodelay; alias @html@/; }
        location /rl/ { rl_req zone=a burst=5 nodelay; rl_req zone=b nodelay; alias @html@/; }
        location /rl/a/ { rl_req zone=a burst=5 nodelay; alias @html@/; }
    }
"""
        with Nginx(http) as ngx:
            for prefix in ("lr", "rl"):
                both = [get(ngx.port, "/%s/index.html" % prefix).status for _ in range(5)]
                self.assertEqual(both, [200] + [503] * 4, prefix)
                only_a = [get(ngx.port, "/%s/a/index.html" % prefix).status for _ in range(6)]
                # a took 1 of its 6: 5 left.
                self.assertEqual(only_a, [200] * 5 + [503], prefix)

    def test_zone_shared_between_locations_with_different_bursts(self):
        http = """
    limit_req_zone $binary_remote_addr zone=z:1m rate=1r/m;
    rl_req_zone $binary_remote_addr zone=z:1m rate=1r/m shm=@shm:z@;
    server { listen 127.0.0.1:@port@;
        location /lr/big/ { limit_req zone=z burst=4 nodelay; alias @html@/; }
        location /lr/small/ { limit_req zone=z burst=1 nodelay; alias @html@/; }
        location /rl/big/ { rl_req zone=z burst=4 nodelay; alias @html@/; }
        location /rl/small/ { rl_req zone=z burst=1 nodelay; alias @html@/; }
    }
"""
        with Nginx(http) as ngx:
            for prefix in ("lr", "rl"):
                seq = [get(ngx.port, "/%s/small/index.html" % prefix).status for _ in range(3)]
                seq += [get(ngx.port, "/%s/big/index.html" % prefix).status for _ in range(4)]
                # small: 2 pass (excess 0, 1); big: excess 2, 3, 4 pass, then 5 > 4.
                self.assertEqual(seq, [200, 200, 503, 200, 200, 200, 503], prefix)

    def test_delay_answers_complete(self):
        # 4 r/s, burst 3: of 4 requests at once, 1 at once and 3 delayed by 250, 500, 750 ms.
        with Nginx(pair("rate=4r/s", "burst=3")) as ngx:
            for prefix in ("lr", "rl"):
                rs = parallel([lambda: get(ngx.port, "/%s/index.html" % prefix)] * 4)
                rs.sort(key=lambda r: r.elapsed)
                self.assertEqual([r.status for r in rs], [200] * 4, prefix)
                self.assertEqual([r.body for r in rs], [b"hello from nginx\n"] * 4)
                self.assertEqual(sorted(r.header("X-Status") for r in rs),
                                 ["DELAYED"] * 3 + ["PASSED"], prefix)
                self.assertLess(rs[0].elapsed, rs[3].elapsed)
                self.assertGreater(rs[3].elapsed, 0.4, prefix)  # the last waited up to 750 ms
                time.sleep(1.2)  # let the bucket refill before the next module's turn

    def test_delay_param(self):
        # delay=1: the first two of a burst at once, the third delayed.
        with Nginx(pair("rate=2r/s", "burst=3 delay=1")) as ngx:
            for prefix in ("lr", "rl"):
                rs = parallel([lambda: get(ngx.port, "/%s/index.html" % prefix)] * 3)
                xs = sorted(r.header("X-Status") for r in rs)
                self.assertEqual(xs, ["DELAYED", "PASSED", "PASSED"], prefix)
                slow = max(rs, key=lambda r: r.elapsed)
                self.assertGreater(slow.elapsed, 0.3, prefix)  # ~500 ms
                time.sleep(2.1)

    def test_internal_redirect_charged_once(self):
        # /lr/ and /rl/ end in an internal redirect to index.html (the index module), in the
        # same limited location: one charge per request, so burst=1 admits two such requests.
        with Nginx(pair("rate=1r/m", "burst=1 nodelay")) as ngx:
            got = self.both(ngx, 3, path="")
            self.assertEqual([s for s, _ in got], [200, 200, 503])

    def test_subrequests_not_charged(self):
        # SSI: a page includes the limited location twice; only the main request is charged.
        http = """
    limit_req_zone $binary_remote_addr zone=z:1m rate=1r/m;
    rl_req_zone $binary_remote_addr zone=z:1m rate=1r/m shm=@shm:z@;
    server { listen 127.0.0.1:@port@; ssi on;
        location /lr/ { limit_req zone=z burst=2 nodelay; alias @html@/; }
        location /rl/ { rl_req zone=z burst=2 nodelay; alias @html@/; }
    }
"""
        with Nginx(http) as ngx:
            with open(os.path.join(ngx.html, "page.html"), "w") as f:
                f.write('<!--# include virtual="index.html" -->'
                        '<!--# include virtual="index.html" -->\n')
            for prefix in ("lr", "rl"):
                bodies = [get(ngx.port, "/%s/page.html" % prefix) for _ in range(4)]
                self.assertEqual([r.status for r in bodies], [200, 200, 200, 503], prefix)
                self.assertEqual(bodies[0].body, b"hello from nginx\n" * 2 + b"\n", prefix)

    def test_exact_rates(self):
        # 1r/m under limit_req is 16 thousandths a second (0.96 a minute); rl_req is exact. Shown
        # with r/h and r/d, which limit_req cannot parse at all.
        http = """
    rl_req_zone $binary_remote_addr zone=h:1m rate=2r/h shm=@shm:h@;
    rl_req_zone $binary_remote_addr zone=d:1m rate=3r/d shm=@shm:d@;
    server { listen 127.0.0.1:@port@; rl_req_headers on;
        location /h/ { rl_req zone=h nodelay; alias @html@/; }
        location /d/ { rl_req zone=d burst=2 nodelay; alias @html@/; }
    }
"""
        with Nginx(http) as ngx:
            self.assertEqual([get(ngx.port, "/h/index.html").status for _ in range(2)],
                             [200, 503])
            r = get(ngx.port, "/h/index.html")
            # One request every 30 minutes: Retry-After just under 1800 s.
            self.assertTrue(1700 <= int(r.header("Retry-After")) <= 1800, r.headers)
            self.assertEqual([get(ngx.port, "/d/index.html").status for _ in range(4)],
                             [200, 200, 200, 503])
            r = get(ngx.port, "/d/index.html")
            self.assertTrue(28000 <= int(r.header("Retry-After")) <= 28800, r.headers)
            bad = Nginx("rl_req_zone $binary_remote_addr zone=x:1m rate=5r/w;")
            try:
                res = bad.cmd("-t", check=False)
                self.assertNotEqual(res.returncode, 0)
                self.assertIn('invalid rate "rate=5r/w"', res.stderr)
            finally:
                bad.stop()

    def test_headers(self):
        http = pair("rate=1r/m", "burst=2 nodelay", extra_loc="limit_req_status 429;",
                    rl_extra="rl_req_headers on;")
        with Nginx(http) as ngx:
            rs = [get(ngx.port, "/rl/index.html") for _ in range(4)]
            self.assertEqual([r.status for r in rs], [200, 200, 200, 429])
            self.assertEqual([r.header("X-RateLimit-Limit") for r in rs], ["3"] * 4)
            self.assertEqual([r.header("X-RateLimit-Remaining") for r in rs], ["2", "1", "0", "0"])
            self.assertIsNone(rs[0].header("Retry-After"))
            self.assertTrue(1 <= int(rs[3].header("Retry-After")) <= 60, rs[3].headers)
            self.assertIsNone(get(ngx.port, "/lr/index.html").header("X-RateLimit-Limit"))
        http = pair("rate=1r/m", "burst=2 nodelay", rl_extra="rl_req_headers ietf;")
        with Nginx(http) as ngx:
            r = get(ngx.port, "/rl/index.html")
            self.assertIsNotNone(r.header("RateLimit-Policy"), r.headers)
            self.assertIsNotNone(r.header("RateLimit"), r.headers)
            self.assertIsNone(r.header("X-RateLimit-Limit"))

    def test_full_zone(self):
        # 32k (the smallest zone nginx accepts) holds 512 keys: the 513th new key that finds no
        # idle key to reclaim is rejected with the zone's status, as limit_req's "could not
        # allocate node".
        http = """
    rl_req_zone $arg_k zone=z:32k rate=1r/m shm=@shm:z@;
    server { listen 127.0.0.1:@port@;
        location / { rl_req zone=z nodelay; rl_req_status 429; root @html@; } }
"""
        with Nginx(http) as ngx:
            codes = [get(ngx.port, "/index.html?k=%d" % i).status for i in range(700)]
            self.assertEqual(codes[:512], [200] * 512)
            self.assertIn(429, codes[512:])
            self.assertIn("is full: no idle key to reclaim", ngx.log())

    def test_config_errors(self):
        cases = [
            ("rl_req_zone $binary_remote_addr zone=z:1m rate=1r/s mode=strict;",
             "mode=strict is refused in nginx"),
            ("rl_req_zone $binary_remote_addr zone=z:1m rate=1r/s mode=global;",
             "needs Redis"),
            ("rl_req_zone $binary_remote_addr zone=z:1k rate=1r/s;", "is too small"),
            ("server { listen 127.0.0.1:@port@; rl_req zone=nope; }",
             'names zone "nope", which no rl_req_zone declares'),
            ("rl_req_zone $binary_remote_addr zone=z:1m rate=1r/s shm=/a/b;", "invalid"),
        ]
        for conf, msg in cases:
            ngx = Nginx(conf)
            try:
                r = ngx.cmd("-t", check=False)
                self.assertNotEqual(r.returncode, 0, conf)
                self.assertIn(msg, r.stderr, conf)
            finally:
                ngx.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)

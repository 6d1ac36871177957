#!/usr/bin/env python3
"""rl_rules: rl's YAML rule file in a real nginx. Endpoint rules keyed by the client address
($remote_addr), tiers picked by rl_rules_tier and users by rl_rules_user, the headers of
rl_req_headers from the deciding layer, a bad file refused by `nginx -t`, and the order with
rl_req: a request the rules refuse gives back what an rl_req zone took."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ngxharness import Nginx, get  # noqa: E402

RULES = """version: 1
defaults:
  - {requests: 1000, window: 1m, algorithm: fixed_window, scope: per_ip}
endpoints:
  - pattern: "GET:/api/*"
    limits:
      - {name: ip, requests: 2, window: 1h, algorithm: fixed_window, scope: per_ip}
tiers:
  free:
    limits:
      - {name: minute, requests: 1, window: 1h, algorithm: fixed_window, scope: per_user}
  premium:
    limits:
      - {name: minute, requests: 3, window: 1h, algorithm: fixed_window, scope: per_user}
"""

CONF = """
    rl_rules @dir@/rules.yaml shm=@shm:rules@;
    rl_rules_user $http_x_user;
    rl_rules_tier $http_x_tier;
    rl_req_zone $binary_remote_addr zone=z:1m rate=1r/m shm=@shm:z@;
    server { listen 127.0.0.1:@port@; rl_req_status 429; rl_req_headers on;
        location / { root @html@; add_header X-Status $rl_req_status always; }
        location /both/ { rl_req zone=z burst=5 nodelay; alias @html@/;
                          add_header X-Status $rl_req_status always; }
        location /zonly/ { rl_req zone=z burst=5 nodelay; alias @html@/; }
    }
"""


class Rules(unittest.TestCase):
    def start(self, rules=RULES):
        ngx = Nginx(CONF)
        with open(os.path.join(ngx.dir, "rules.yaml"), "w") as f:
            f.write(rules)
        os.makedirs(os.path.join(ngx.html, "api"))
        with open(os.path.join(ngx.html, "api", "x"), "w") as f:
            f.write("api\n")
        return ngx

    def test_endpoint_rule_per_ip(self):
        ngx = self.start()
        try:
            ngx.start()
            rs = [get(ngx.port, "/api/x") for _ in range(3)]
            self.assertEqual([r.status for r in rs], [200, 200, 429])
            self.assertEqual([r.header("X-Status") for r in rs], ["PASSED", "PASSED", "REJECTED"])
            self.assertEqual(rs[0].header("X-RateLimit-Limit"), "2")
            self.assertEqual(rs[1].header("X-RateLimit-Remaining"), "0")
            self.assertIsNotNone(rs[2].header("Retry-After"))
            # Other paths fall under the defaults (1000 a minute).
            self.assertEqual(get(ngx.port, "/index.html").status, 200)
            self.assertIn('limiting requests by rl_rules rule "GET:/api/*" layer "ip"', ngx.log())
        finally:
            ngx.stop()

    def test_tiers_and_users(self):
        ngx = self.start()
        try:
            ngx.start()
            free = {"X-User": "alice", "X-Tier": "free"}
            premium = {"X-User": "bob", "X-Tier": "premium"}
            self.assertEqual([get(ngx.port, "/index.html", free).status for _ in range(2)],
                             [200, 429])
            self.assertEqual([get(ngx.port, "/index.html", premium).status for _ in range(4)],
                             [200, 200, 200, 429])
            # Another free user has a counter of its own.
            other = {"X-User": "carol", "X-Tier": "free"}
            self.assertEqual(get(ngx.port, "/index.html", other).status, 200)
        finally:
            ngx.stop()

    def test_refused_by_rules_refunds_zone(self):
        ngx = self.start(RULES.replace('"GET:/api/*"', '"GET:/both/*"'))
        try:
            ngx.start()
            # The rule admits 2 of these; the 4 it refuses give back what zone z took.
            st = [get(ngx.port, "/both/index.html").status for _ in range(6)]
            self.assertEqual(st, [200, 200, 429, 429, 429, 429])
            # Zone z (burst 5: 6 at once) was charged 2, not 6: 4 more pass where only the zone
            # limits (the rule file's defaults allow 1000 a minute).
            st = [get(ngx.port, "/zonly/index.html").status for _ in range(5)]
            self.assertEqual(st, [200, 200, 200, 200, 429])
        finally:
            ngx.stop()

    def test_bad_file_refused_by_config_test(self):
        ngx = self.start("version: 1\ndefaults:\n  - {requests: -3, window: 1m}\n")
        try:
            r = ngx.cmd("-t", check=False)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("rules.yaml", r.stderr)
            self.assertFalse(os.path.exists("/dev/shm" + ngx.shm("rules")))
        finally:
            ngx.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)

#!/usr/bin/env bash
# The Prometheus and Grafana kit of examples/ against the real promtool and rlctl's metric names:
#   - promtool check rules examples/prometheus/rl-alerts.yml
#   - promtool test rules examples/prometheus/rl-alerts.test.yml: each alert fires on a recorded
#     series made for it, none on a healthy host's series
#   - every alert has a test where it fires and is checked silent on the healthy host
#   - every metric the rules and the Grafana dashboard use is one rlctl serve's /metrics exports
#     (the names in tools/rlctl/metrics.c), and every dashboard query is valid PromQL (promtool
#     checks them as recording rules, Grafana's $variables replaced)
#
#   tests/test_alerts.sh
#
# promtool comes out of Debian's prometheus package without installing it (its install would start
# a Prometheus on :9090): `apt-get download` + `dpkg-deb -x` into $RL_PROMTOOL_CACHE (default
# /var/cache/rl-promtool, or ~/.cache/rl-promtool when that is not writable), once.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${RL_PROMTOOL_CACHE:-/var/cache/rl-promtool}
if ! mkdir -p "$cache" 2>/dev/null || [[ ! -w "$cache" ]]; then
    cache=$HOME/.cache/rl-promtool
    mkdir -p "$cache"
fi
promtool=$cache/root/usr/bin/promtool
if [[ ! -x "$promtool" ]]; then
    echo "fetching promtool: apt-get download prometheus into $cache (not installed)"
    (cd "$cache" && rm -f prometheus_*.deb && apt-get download prometheus 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
    deb=$(ls "$cache"/prometheus_*.deb 2>/dev/null | head -n 1)
    [[ -n "$deb" ]] || {
        echo "apt-get download prometheus failed: is apt's Debian mirror reachable?" >&2
        exit 1
    }
    rm -rf "$cache/root"
    dpkg-deb -x "$deb" "$cache/root"
fi
"$promtool" --version 2>&1 | head -n 1

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rl-alerts.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cd "$root/examples/prometheus"
"$promtool" check rules rl-alerts.yml
"$promtool" test rules rl-alerts.test.yml

# Coverage and names (python3-yaml, json): writes the dashboard's queries as a rules file.
/usr/bin/python3 - "$root" "$tmp/grafana-rules.yml" <<'PY'
import json, re, sys, yaml
root, out = sys.argv[1], sys.argv[2]
rules = yaml.safe_load(open(root + "/examples/prometheus/rl-alerts.yml"))
tests = yaml.safe_load(open(root + "/examples/prometheus/rl-alerts.test.yml"))
src = open(root + "/tools/rlctl/metrics.c").read()
exported = set(re.findall(r'\{"(rl_\w+)", "(?:counter|gauge)"', src))
failed = 0
def fail(msg):
    global failed
    failed += 1
    print("FAIL: " + msg)

alerts = [r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r]
fires, silent_healthy = set(), set()
for t in tests["tests"]:
    for c in t.get("alert_rule_test", []):
        if c.get("exp_alerts"):
            fires.add(c["alertname"])
        elif t.get("name") == "healthy host":
            silent_healthy.add(c["alertname"])
for a in alerts:
    if a not in fires:
        fail("alert %s has no test where it fires" % a)
    if a not in silent_healthy:
        fail("alert %s is not checked silent on the healthy host" % a)
print("alerts: %d, each fires in a test and stays silent on the healthy host" % len(alerts))

def names(expr):
    expr = re.sub(r'\{[^}]*\}', '', expr)  # label matchers hold no metric names
    return set(re.findall(r'\b(rl_\w+)\b', expr))
used = set()
for g in rules["groups"]:
    for r in g["rules"]:
        used |= names(r["expr"])
dash = json.load(open(root + "/examples/grafana/rl-dashboard.json"))
exprs = []
ids = set()
for p in dash["panels"]:
    if p["id"] in ids:
        fail("panel id %d twice" % p["id"])
    ids.add(p["id"])
    for t in p.get("targets", []):
        exprs.append((p["title"], t["expr"]))
        used |= names(t["expr"])
unknown = sorted(used - exported)
if unknown:
    fail("metrics rlctl serve does not export: %s" % ", ".join(unknown))
print("metrics used by the rules and the dashboard: %d, all exported by rlctl (%s)"
      % (len(used), ", ".join(sorted(used))))
subst = lambda e: e.replace("$__rate_interval", "5m").replace("$instance", ".*")
with open(out, "w") as f:
    yaml.safe_dump({"groups": [{"name": "grafana", "rules": [
        {"record": "rl:grafana_query_%d" % i, "expr": subst(e)} for i, (_, e) in enumerate(exprs)]}]}, f)
print("dashboard queries: %d (checked by promtool next)" % len(exprs))
sys.exit(1 if failed else 0)
PY
"$promtool" check rules "$tmp/grafana-rules.yml"
echo "alerts: all checks passed"

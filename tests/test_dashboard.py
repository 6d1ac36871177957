#!/usr/bin/python3
"""The dashboard of `rlctl serve` in a real headless chromium (chromium-driver, python3-selenium).

    test_dashboard.py RLCTL WORKER LOGDIR

A load process (tests/rlctl_worker.c --load) checks requests on a segment of its own; rlctl serve runs on a
free loopback port with an admin token. The page is loaded read-only, the test waits until its
charts show the load (allowed and denied per second on both endpoints, the abuser among the top
denied keys), keeps a screenshot (LOGDIR/dashboard-load.png), stops the load, waits for the page
to settle and compares every figure it shows with `rlctl stats --json` and `rlctl metrics`. Then
the resets: refused without a token (buttons disabled) and with a wrong one (403 shown), done with
the right one (the key is gone from `rlctl keys`). Final screenshot: LOGDIR/dashboard-final.png.

Hermetic: its own segment /rl-dash-<pid>, temp directory and browser profile, all removed on exit.
Exits 77 ("skipped: ...") only when chromium, chromedriver or selenium is missing (scripts/setup
installs them); prints one line per check and "N passed, N failed".
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

RULES = """version: 1
endpoints:
  - pattern: "/api/*"
    limits: [{requests: 200, window: 1s, algorithm: sliding_window, scope: per_ip}]
  - pattern: "POST:/auth/login"
    limits: [{requests: 20, window: 1s, algorithm: fixed_window, scope: per_ip}]
"""

passed = 0
failed = 0


def ok(what):
    global passed
    passed += 1
    print("ok: " + what, flush=True)


def fail(what):
    global failed
    failed += 1
    print("FAIL: " + what, flush=True)


def expect(cond, what):
    (ok if cond else fail)(what)
    return cond


def wait_for(pred, timeout, what):
    """Polls pred() until it returns a true value, for at most timeout seconds."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:  # the page may be mid-render: try again
            last_exc = e
        time.sleep(0.2)
    raise TimeoutError("%s: not within %d s%s" % (what, timeout,
                                                 " (last error: %s)" % last_exc if last_exc else ""))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    if len(sys.argv) != 4:
        print("usage: test_dashboard.py RLCTL WORKER LOGDIR", file=sys.stderr)
        return 2
    rlctl, load, logdir = sys.argv[1:]
    chromium = shutil.which("chromium")
    driver_bin = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.common.by import By
    except ImportError:
        print("skipped: python3-selenium is not installed (scripts/setup $(scripts/deb --packages))")
        return 77
    if not chromium or not os.path.exists(driver_bin):
        print("skipped: chromium or chromium-driver is not installed (scripts/setup installs them)")
        return 77
    os.makedirs(logdir, exist_ok=True)

    seg = "/rl-dash-%d" % os.getpid()
    token = os.urandom(16).hex()
    tmp = tempfile.mkdtemp(prefix="rl-dash.")
    procs = []
    driver = None
    try:
        rules = os.path.join(tmp, "rules.yaml")
        with open(rules, "w") as f:
            f.write(RULES)
        # With scripts/test's Redis (RL_TEST_REDIS_URL) the load process runs the sync and leads
        # it: the page must show that leader. Without it the sync panel shows none.
        redis_url = os.environ.get("RL_TEST_REDIS_URL", "")
        load_env = dict(os.environ)
        load_env.pop("REDIS_URL", None)
        if redis_url:
            load_env["REDIS_URL"] = redis_url
        loadp = subprocess.Popen([load, "--load", seg, rules], stdout=subprocess.PIPE, text=True,
                                 env=load_env)
        procs.append(loadp)
        line = loadp.stdout.readline().strip()
        if line != "ready":
            fail("the load process did not start: %r" % line)
            return 1
        port = free_port()
        env = dict(os.environ, RLCTL_ADMIN_TOKEN=token)
        serve_log = open(os.path.join(tmp, "serve.log"), "w")
        serve = subprocess.Popen([rlctl, "--shm", seg, "serve", "--listen", "127.0.0.1:%d" % port],
                                 env=env, stdout=serve_log, stderr=subprocess.STDOUT)
        procs.append(serve)
        base = "http://127.0.0.1:%d" % port

        def up():
            with urllib.request.urlopen(base + "/", timeout=2) as r:
                return r.status == 200 and r.headers.get("Content-Type", "").startswith("text/html")
        wait_for(up, 20, "rlctl serve answering /")
        ok("rlctl serve answers / with text/html")

        def rlctl_json(*args):
            out = subprocess.run([rlctl, "--shm", seg] + list(args) + ["--json"], check=True,
                                 capture_output=True, text=True).stdout
            return json.loads(out)

        opts = webdriver.ChromeOptions()
        opts.binary_location = chromium
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--window-size=1400,1300", "--user-data-dir=" + os.path.join(tmp, "profile")):
            opts.add_argument(a)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        # chromedriver's own log (its reasons when it cannot start or reach chromium) goes to a
        # file that a failure prints.
        driver = webdriver.Chrome(
            service=Service(driver_bin, service_args=[
                "--verbose", "--log-path=" + os.path.join(tmp, "chromedriver.log")]),
            options=opts)
        driver.get(base + "/")
        expect(driver.title == "rl dashboard", "the page loads in chromium (title %r)" % driver.title)

        # The page re-renders parts of itself every poll: read through one script call each
        # (atomic with respect to the page's own scripts), click with a retry on a stale node.
        def attr(css, name):
            v = driver.execute_script(
                "const e = document.querySelector(arguments[0]);"
                "return e ? e.getAttribute(arguments[1]) : null;", css, name)
            if v is None:
                raise LookupError("no %s[%s] on the page" % (css, name))
            return v

        def text(css):
            return driver.execute_script("return document.querySelector(arguments[0]).textContent;", css)

        def rows(css, *names):
            return driver.execute_script(
                "return [...document.querySelectorAll(arguments[0])].map("
                "(e) => arguments[1].map((n) => e.getAttribute(n)));", css, list(names))

        def click(css):
            def once():
                driver.find_element(By.CSS_SELECTOR, css).click()
                return True
            wait_for(once, 10, "clicking " + css)

        # The charts show the load: both endpoints' allowed and denied rates.
        def charts_show_load():
            api = float(attr('.chart[data-endpoint="/api/*"]', "data-peak-allowed"))
            api_d = float(attr('.chart[data-endpoint="/api/*"]', "data-peak-denied"))
            login_d = float(attr('.chart[data-endpoint="POST:/auth/login"]', "data-peak-denied"))
            samples = int(attr('.chart[data-endpoint="/api/*"]', "data-samples"))
            return samples >= 10 and api > 50 and api_d > 50 and login_d > 10 and \
                (api, api_d, login_d, samples)
        peaks = wait_for(charts_show_load, 60, "the charts showing the load")
        ok("the charts show the load: /api/* peaks %.0f allowed/s, %.0f denied/s; "
           "/auth/login %.0f denied/s (%d samples)" % peaks)
        pts = driver.execute_script(
            "const c = document.querySelector('.chart[data-endpoint=\"/api/*\"]');"
            "return [c.getAttribute('data-samples'),"
            " c.querySelector('polyline.line-allowed').getAttribute('points')];")
        expect(int(pts[0]) >= 10 and len(pts[1].split()) == int(pts[0]),
               "the /api/* chart draws one point per sample (%s)" % pts[0])
        wait_for(lambda: rows('#top-keys tr[data-key$=":192.0.2.66"]', "data-key"),
                 30, "the abuser among the top denied keys")
        ok("the abuser 192.0.2.66 is among the top denied keys")
        expect(float(text("#rate-denied").replace(",", "")) > 0,
               "the header shows denials per second under load (%s/s)" % text("#rate-denied"))
        expect(attr("#mode", "data-mode") == "read-only", "without a token the page is read-only")
        buttons = rows("button.admin", "disabled")
        expect(len(buttons) >= 2 and all(b[0] is not None for b in buttons),
               "without a token every reset button is disabled (%d)" % len(buttons))
        if redis_url:
            wait_for(lambda: attr("#leader", "data-value") == str(loadp.pid), 30,
                     "the page showing the load process (pid %d) as sync leader" % loadp.pid)
            ok("with Redis the page shows the sync leader: the load process, pid %d" % loadp.pid)
            st_now = rlctl_json("status")
            expect(st_now["sync"]["leader_pid"] == loadp.pid,
                   "rlctl status agrees: leader %d" % st_now["sync"]["leader_pid"])
        else:
            print("note: RL_TEST_REDIS_URL unset: no sync, the sync leader is checked as none")
        driver.save_screenshot(os.path.join(logdir, "dashboard-load.png"))
        ok("screenshot under load: %s" % os.path.join(logdir, "dashboard-load.png"))

        # Stop the load; the page settles (two more polls with the same totals).
        loadp.send_signal(signal.SIGTERM)
        out, _ = loadp.communicate(timeout=20)
        expect(loadp.returncode == 0, "the load process stopped cleanly (%s)" % out.strip())

        def settled():
            n0 = int(attr("#updated", "data-polls"))
            v0 = attr("#total-checks", "data-value")
            wait_for(lambda: int(attr("#updated", "data-polls")) >= n0 + 2, 15, "two polls")
            return attr("#total-checks", "data-value") == v0 and text("#rate-allowed") in ("0", "0.0")
        wait_for(settled, 40, "the page settling after the load stopped")
        ok("after the load the page settles and shows 0 allowed/s")

        st = rlctl_json("stats")
        for field, el in (("total_requests", "total-checks"), ("allowed_requests", "total-allowed"),
                          ("denied_requests", "total-denied")):
            shown = int(attr("#" + el, "data-value"))
            txt = int(text("#" + el).replace(",", ""))
            expect(shown == st[field] == txt, "%s: page %d (text %d), rlctl stats %d"
                   % (field, shown, txt, st[field]))
        rate = float(attr("#denial-rate", "data-value"))
        expect(abs(rate - st["denial_rate"]) < 1e-9, "denial rate: page %.4f, rlctl stats %.4f"
               % (rate, st["denial_rate"]))
        for e in st["endpoints"]:
            r = rows('#endpoints tr[data-endpoint="%s"]' % e["endpoint"], "data-allowed", "data-denied")
            if not expect(len(r) == 1, "endpoint %s has a row" % e["endpoint"]):
                continue
            a, d = int(r[0][0]), int(r[0][1])
            expect((a, d) == (e["allowed_requests"], e["denied_requests"]),
                   "endpoint %s: page %d allowed %d denied, rlctl stats %d, %d"
                   % (e["endpoint"], a, d, e["allowed_requests"], e["denied_requests"]))
        page_keys = [(k, int(d)) for k, d in rows("#top-keys tr[data-key]", "data-key", "data-denied")]
        want_keys = [(k["key"], k["denied"]) for k in st["top_denied_keys"]]
        expect(page_keys == want_keys and len(want_keys) > 0,
               "top denied keys: page %s, rlctl stats %s" % (page_keys[:3], want_keys[:3]))
        status = rlctl_json("status")
        expect(attr("#fill", "data-value") and
               abs(float(attr("#fill", "data-value")) - status["keys_in_use"] / status["capacity"]) < 1e-9,
               "segment fill: page %s, rlctl status %d/%d" % (attr("#fill", "data-value"),
                                                             status["keys_in_use"], status["capacity"]))
        expect(int(attr("#leader", "data-value")) == status["sync"]["leader_pid"],
               "sync leader: page %s, rlctl status %d" % (attr("#leader", "data-value"),
                                                         status["sync"]["leader_pid"]))
        expect(attr("#health", "data-status") == rlctl_json("health")["status"],
               "health: page %s" % attr("#health", "data-status"))

        # Resets: a wrong token is refused (and said so), the right one resets the abuser's key.
        abuser = [k for k, _ in page_keys if k.endswith(":192.0.2.66")][0]

        def keys_now():
            return {k["key"] for k in rlctl_json("keys", "--limit", "1000")["keys"]}
        expect(abuser in keys_now(), "before the reset rlctl keys lists %s" % abuser)

        def use_token(t):
            box = driver.find_element(By.ID, "token")
            box.clear()
            box.send_keys(t)
            driver.find_element(By.ID, "token-set").click()
        use_token("not-" + token)
        expect(attr("#mode", "data-mode") == "admin", "a token switches the page to admin")
        click('button.reset-key[data-key="%s"]' % abuser)
        wait_for(lambda: attr("#msg", "data-status") == "403", 10, "the wrong token's 403")
        ok("a wrong token: the page shows the refusal (%s)" % text("#msg"))
        expect(abuser in keys_now(), "the refused reset left %s" % abuser)
        use_token(token)
        click('button.reset-key[data-key="%s"]' % abuser)
        wait_for(lambda: attr("#msg", "data-status") == "200", 10, "the reset's 200")
        expect(abuser not in keys_now(), "the admin token's reset removed %s (rlctl keys)" % abuser)

        # Chromium logs every non-2xx answer: the wrong token's 403 above is the one expected.
        severe = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE" and
                  not ("/rate-limits/reset" in e.get("message", "") and "403" in e.get("message", ""))
                  # /health answers 503 while the limiter is degraded (the seed's health check;
                  # a slow sanitized worker can be, for a moment): the page shows it, it is no error
                  and not ("/health " in e.get("message", "") and "503" in e.get("message", ""))]
        expect(not severe, "no errors in the browser console%s"
               % (": %s" % severe[:3] if severe else ""))
        driver.save_screenshot(os.path.join(logdir, "dashboard-final.png"))
        ok("final screenshot: %s" % os.path.join(logdir, "dashboard-final.png"))
    except Exception as e:  # a timeout or a missing element: a failure with its cause
        fail("%s: %s" % (type(e).__name__, e))
        if driver:
            try:
                driver.save_screenshot(os.path.join(logdir, "dashboard-failure.png"))
                print("screenshot of the failure: %s" % os.path.join(logdir, "dashboard-failure.png"))
            except Exception:
                pass
        for name, what in (("serve.log", "rlctl serve's log"),
                           ("chromedriver.log", "chromedriver's log")):
            log = os.path.join(tmp, name)
            if os.path.exists(log):
                print("--- %s:\n%s" % (what, open(log, errors="replace").read()[-3000:]))
    finally:
        if driver:
            driver.quit()
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        try:
            os.unlink("/dev/shm" + seg)
        except FileNotFoundError:
            pass
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

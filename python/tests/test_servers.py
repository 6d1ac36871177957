"""Real multi-worker servers: examples/fastapi_app.py under `uvicorn --workers 4` and
`gunicorn --preload -w 4 -k uvicorn.workers.UvicornWorker`, its 100-per-minute rule on
/api/users shared by every worker; the same route on python3-limits' memory storage, whose
counters are per process (the contrast)."""

import collections
import json
import time

from conftest import EXAMPLES, PY, hammer, request, wait_for

LIMIT, WINDOW = 100, 60.0


def all_workers_up(port, n):
    """Polls /health on new connections until n distinct worker pids have answered."""
    pids = set()

    def seen():
        try:
            st, _, body = request(port, "GET", "/health", timeout=5)
            if st == 200:
                pids.add(json.loads(body)["pid"])
        except OSError:
            pass
        return len(pids) >= n

    wait_for(seen, 90, f"{n} workers to answer /health", interval=0.005)
    return pids


def burst(port, n=400):
    t0 = time.monotonic()
    rs = hammer(port, "/api/users", n, threads=16)
    elapsed = time.monotonic() - t0
    ok = [r for r in rs if r[0] == 200]
    per_pid = collections.Counter(json.loads(r[2])["pid"] for r in ok)
    others = [r[0] for r in rs if r[0] not in (200, 429)]
    assert not others, f"unexpected statuses {others[:5]}"
    return len(ok), elapsed, per_pid


def allowed_bound(elapsed):
    # A sliding window of 100 per 60 s admits at most 100 plus what the elapsed time refills.
    return LIMIT + int(LIMIT * elapsed / WINDOW) + 1


def test_uvicorn_4_workers_share_the_limit(servers, shm):
    s = servers([PY, "-m", "uvicorn", "fastapi_app:app", "--workers", "4", "--host", "127.0.0.1",
                 "--port", "{port}", "--log-level", "warning"], EXAMPLES, {"RL_SHM": shm},
                "uvicorn").wait_up()
    all_workers_up(s.port, 4)
    admitted, elapsed, per_pid = burst(s.port)
    print(f"rl, uvicorn --workers 4: admitted {admitted} of 400 in {elapsed:.2f} s, "
          f"per worker {dict(per_pid)}")
    assert LIMIT <= admitted <= allowed_bound(elapsed), (admitted, elapsed, per_pid)


def test_gunicorn_preload_opens_nothing_in_master(servers, shm):
    s = servers([PY, "-m", "gunicorn", "--preload", "-w", "4", "-k",
                 "uvicorn.workers.UvicornWorker", "-b", "127.0.0.1:{port}", "fastapi_app:app"],
                EXAMPLES, {"RL_SHM": shm}, "gunicorn").wait_up()
    pids = all_workers_up(s.port, 4)
    admitted, elapsed, per_pid = burst(s.port)
    print(f"rl, gunicorn --preload -w 4: admitted {admitted} of 400 in {elapsed:.2f} s, "
          f"per worker {dict(per_pid)}")
    assert LIMIT <= admitted <= allowed_bound(elapsed), (admitted, elapsed, per_pid)
    # The master imported the app (--preload) yet never attached the segment; workers did.
    with open(f"/proc/{s.proc.pid}/maps") as f:
        assert shm not in f.read(), "the gunicorn master attached the segment"
    assert set(per_pid) <= pids
    for pid in per_pid:  # every worker that decided a request attached it
        with open(f"/proc/{pid}/maps") as f:
            assert shm in f.read(), f"worker {pid} decided without the segment?"


def test_limits_memory_storage_is_per_process(servers):
    """The contrast: python3-limits' MemoryStorage under 4 workers admits up to 4 x 100."""
    s = servers([PY, "-m", "uvicorn", "limits_app:app", "--workers", "4", "--host", "127.0.0.1",
                 "--port", "{port}", "--log-level", "warning"], EXAMPLES, {}, "limits").wait_up()
    all_workers_up(s.port, 4)
    admitted, elapsed, per_pid = burst(s.port, 600)
    print(f"python3-limits memory storage, uvicorn --workers 4: admitted {admitted} of 600 in "
          f"{elapsed:.2f} s, per worker {dict(per_pid)}")
    assert admitted > allowed_bound(elapsed), (admitted, per_pid)
    assert len(per_pid) >= 2 and max(per_pid.values()) <= LIMIT  # each worker its own 100

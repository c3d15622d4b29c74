"""Escape battery: hostile code in a bubblewrap kernel. Each test asserts that the specific escape
failed (or was contained) and that the kernel, or its replacement, still answers ``1+1``."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psutil
import pytest
import pytest_asyncio

from qwenkit.sandbox import ExecutionResult, KernelPool, KernelSession, ResourceLimits, SessionConfig
from qwenkit.sandbox.isolation.base import LAUNCHER
from qwenkit.sandbox.limits import MiB

pytestmark = [pytest.mark.sandbox, pytest.mark.asyncio(loop_scope="module")]

LIMITS = ResourceLimits(
    address_space_bytes=2048 * MiB, max_processes=64, max_file_bytes=50 * MiB, workdir_bytes=120 * MiB,
    tmp_bytes=32 * MiB,
)
ENV_SECRET = "QWENKIT_ESCAPE_TEST_SECRET"


@pytest.fixture(scope="module")
def env_secret() -> Iterator[str]:
    # Set in *this* process before any kernel starts, as an API key would be.
    token = "envsecret-" + secrets.token_hex(16)
    os.environ[ENV_SECRET] = token
    yield token
    os.environ.pop(ENV_SECRET, None)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def session(env_secret: str) -> AsyncIterator[KernelSession]:
    async with (
        KernelPool(size=1, limits=LIMITS, idle_timeout=None) as pool,
        pool.session(SessionConfig(timeout=8, interrupt_grace=2)) as s,
    ):
        yield s


async def run(session: KernelSession, code: str, timeout: float | None = None) -> ExecutionResult:
    return await session.execute(code, timeout=timeout)


async def still_answers(session: KernelSession) -> None:
    r = await session.execute("1+1")
    assert r.result == "2", r


async def test_read_secret_file_outside_workdir(session: KernelSession, tmp_path: Path) -> None:
    import sys

    token = "filesecret-" + secrets.token_hex(16)
    secret = tmp_path / "api_key.txt"
    secret.write_text(token)
    home_secret = Path.home() / f".qwenkit-escape-{secrets.token_hex(4)}"
    home_secret.write_text(token)
    try:
        r = await run(session, f"""
import os
for p in [{str(secret)!r}, {str(home_secret)!r}]:
    try:
        print(open(p).read())
    except OSError as e:
        print(type(e).__name__, p)
hits = []
skip = ('/proc', '/usr', '/sys', '/dev', {sys.prefix!r}, {sys.base_prefix!r})  # kernel-owned or read-only system files
for d, dirs, files in os.walk('/'):
    dirs[:] = [x for x in dirs if not os.path.join(d, x).startswith(skip)]
    for f in files:
        try:
            if {token!r} in open(os.path.join(d, f), errors='ignore').read(1 << 20):
                hits.append(os.path.join(d, f))
        except OSError:
            pass
print('hits', hits)
""")
    finally:
        home_secret.unlink()
    assert token not in r.stdout + r.stderr + str(r.result)
    assert r.stdout.count("FileNotFoundError") == 2 and "hits []" in r.stdout
    await still_answers(session)


async def test_read_etc_shadow(session: KernelSession) -> None:
    r = await run(session, "print(open('/etc/shadow').read())")
    assert r.error is not None and r.error.name in ("FileNotFoundError", "PermissionError")
    assert "root:" not in r.stdout
    await still_answers(session)


async def test_write_outside_workdir(session: KernelSession, tmp_path: Path) -> None:
    import sys

    kernel = session.kernel
    assert kernel is not None
    targets = [
        str(tmp_path / "planted.txt"), "/usr/planted", f"{sys.prefix}/planted", "/etc/planted", "/planted",
        "/dev/planted", "/opt/qwenkit/launch.py", f"{kernel.dirs.conn}/planted", "/proc/sys/kernel/hostname",
    ]
    launcher_before = LAUNCHER.read_bytes()
    r = await run(session, f"""
for p in {targets!r}:
    try:
        with open(p, 'w') as f:
            f.write('pwned')
        print('WROTE', p)
    except OSError as e:
        print('blocked', type(e).__name__, p)
with open('/workspace/ok.txt', 'w') as f:
    f.write('fine')
print('workspace ok')
""")
    assert "WROTE" not in r.stdout and r.stdout.count("blocked") == len(targets), r.stdout
    assert "workspace ok" in r.stdout
    assert not (tmp_path / "planted.txt").exists() and not Path(f"{sys.prefix}/planted").exists()
    assert not Path("/usr/planted").exists() and not Path("/etc/planted").exists()
    assert not Path("/planted").exists() and not (kernel.dirs.conn / "planted").exists()
    assert LAUNCHER.read_bytes() == launcher_before
    await still_answers(session)


async def test_tcp_to_host_loopback_server(session: KernelSession) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.setblocking(False)
    port = server.getsockname()[1]
    try:
        r = await run(session, f"""
import socket
for host in ['127.0.0.1', 'localhost', '10.0.2.2', '172.17.0.1', '8.8.8.8']:
    try:
        socket.create_connection((host, {port}), timeout=2)
        print('CONNECTED', host)
    except OSError as e:
        print('refused', host, type(e).__name__)
""")
        with pytest.raises(BlockingIOError):
            server.accept()  # nothing ever reached the host's server
    finally:
        server.close()
    assert "CONNECTED" not in r.stdout and r.stdout.count("refused") == 5, r.stdout
    await still_answers(session)


async def test_dns_lookup(session: KernelSession) -> None:
    r = await run(session, """
import socket, os
try:
    print(socket.getaddrinfo('example.com', 443))
except OSError as e:
    print('no dns', type(e).__name__)
print('resolv.conf' , os.path.exists('/etc/resolv.conf'))
print(sorted(socket.if_nameindex()))
""")
    assert "no dns gaierror" in r.stdout and "resolv.conf False" in r.stdout
    assert "[(1, 'lo')]" in r.stdout  # no network interface besides the sandbox's own loopback
    await still_answers(session)


async def test_list_host_processes(session: KernelSession) -> None:
    r = await run(session, """
import os
pids = [p for p in os.listdir('/proc') if p.isdigit()]
cmds = []
for p in pids:
    try:
        cmds.append(open(f'/proc/{p}/cmdline').read().replace('\\0', ' '))
    except OSError:
        pass
print(len(pids), 'pytest' in ' '.join(cmds), max(int(p) for p in pids))
""")
    count, sees_pytest, max_pid = r.stdout.split()
    assert sees_pytest == "False" and int(count) <= 4 and int(max_pid) < 100  # its own pid namespace
    assert str(os.getpid()) not in r.stdout
    await still_answers(session)


async def test_read_parent_environment(session: KernelSession, env_secret: str) -> None:
    r = await run(session, f"""
import os
print('in environ', any({env_secret!r} in v for v in os.environ.values()), {ENV_SECRET!r} in os.environ)
found = []
for p in os.listdir('/proc'):
    if p.isdigit():
        try:
            if {env_secret!r}.encode() in open(f'/proc/{{p}}/environ', 'rb').read():
                found.append(p)
        except OSError:
            pass
print('in /proc', found)
""")
    assert "in environ False False" in r.stdout and "in /proc []" in r.stdout
    assert env_secret not in r.stdout
    await still_answers(session)


async def test_fork_bomb(session: KernelSession) -> None:
    await still_answers(session)
    assert session.kernel is not None and session.kernel.pid is not None
    sandbox = psutil.Process(session.kernel.pid)  # bubblewrap; every process of the sandbox descends from it
    peak = 0
    stop = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            try:
                peak = max(peak, len(sandbox.children(recursive=True)))
            except psutil.NoSuchProcess:
                return
            await asyncio.sleep(0.05)

    sampler = asyncio.ensure_future(sample())
    try:
        r = await run(session, """
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
""", timeout=3)
    finally:
        stop.set()
        await sampler
    # Bounded by RLIMIT_NPROC inside the sandbox's own user namespace, and killed with the sandbox.
    assert r.timed_out and 10 < peak <= LIMITS.max_processes + 1  # + bubblewrap's own init process
    await still_answers(session)
    if not r.restarted:
        await session.reset()  # stray forks would keep using the sandbox's process budget


async def test_fork_count_is_limited(session: KernelSession) -> None:
    r = await run(session, """
import os, time
pids = []
try:
    for _ in range(10_000):
        pid = os.fork()
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        pids.append(pid)
except OSError as e:
    print('stopped after', len(pids), type(e).__name__)
for pid in pids:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
""")
    assert "stopped after" in r.stdout, r
    assert int(r.stdout.split()[2]) < LIMITS.max_processes
    await still_answers(session)


async def test_memory_bomb(session: KernelSession) -> None:
    r = await run(session, """
try:
    big = bytearray(64 * 1024**3)
except MemoryError:
    print('one-shot blocked')
chunks = []
try:
    while True:
        chunks.append(b'x' * (64 * 1024**2))
except MemoryError:
    print('grew to', len(chunks) * 64, 'MiB')
del chunks
""", timeout=30)
    assert "one-shot blocked" in r.stdout and "grew to" in r.stdout, r
    assert int(r.stdout.split("grew to")[1].split()[0]) <= LIMITS.address_space_bytes // MiB
    await still_answers(session)


async def test_two_gib_file(session: KernelSession) -> None:
    r = await run(session, """
import os
chunk = b'\\0' * (1024**2)
written = 0
try:
    with open('/workspace/big.bin', 'wb') as f:
        for _ in range(2048):
            f.write(chunk)
            written += len(chunk)
except OSError as e:
    print('stopped', type(e).__name__, e.errno)
print('size', os.path.getsize('/workspace/big.bin'))
os.remove('/workspace/big.bin')
""", timeout=30)
    assert "stopped OSError 27" in r.stdout, r  # EFBIG: RLIMIT_FSIZE
    assert int(r.stdout.split("size")[1].split()[0]) <= LIMITS.max_file_bytes
    await still_answers(session)


async def test_many_files_fill_disk(session: KernelSession) -> None:
    r = await run(session, """
import os, glob
n = 0
try:
    while n < 10_000:
        with open(f'/workspace/fill{n}.bin', 'wb') as f:
            f.write(b'\\1' * (10 * 1024**2))
        n += 1
except OSError as e:
    print('stopped', type(e).__name__, e.errno, 'after', n)
for p in glob.glob('/workspace/fill*'):
    os.remove(p)
n = 0
try:
    while n < 10_000:
        with open(f'/tmp/fill{n}.bin', 'wb') as f:
            f.write(b'\\1' * (10 * 1024**2))
        n += 1
except OSError as e:
    print('tmp stopped', e.errno, 'after', n)
for p in glob.glob('/tmp/fill*'):
    os.remove(p)
""", timeout=60)
    assert "stopped OSError 28 after" in r.stdout and "tmp stopped 28" in r.stdout, r  # ENOSPC
    assert int(r.stdout.split("after")[1].split()[0]) <= LIMITS.workdir_bytes // (10 * MiB)
    await still_answers(session)


async def test_one_huge_print(session: KernelSession) -> None:
    rss_before = psutil.Process().memory_info().rss
    r = await run(session, "s = 'x' * 300_000_000\nprint(s)\ndel s", timeout=30)
    assert r.truncated and r.dropped_chars > 299_000_000 and len(r.stdout) < 25_000
    assert psutil.Process().memory_info().rss - rss_before < 200 * MiB
    await still_answers(session)


async def test_oversized_message_sent_past_the_kernel_cap(session: KernelSession) -> None:
    # Code that bypasses the in-kernel write cap and publishes one 100 MB message itself: the client
    # refuses messages over 64 MiB, so this process never holds it.
    rss_before = psutil.Process().memory_info().rss
    r = await run(session, """
k = get_ipython().kernel
k.session.send(k.iopub_socket, 'stream', {'name': 'stdout', 'text': 'y' * 100_000_000}, parent=k.get_parent())
print('sent')
""", timeout=5)
    assert "y" * 1000 not in r.stdout
    assert psutil.Process().memory_info().rss - rss_before < 150 * MiB
    await still_answers(session)


async def test_print_flood(session: KernelSession) -> None:
    rss_before = psutil.Process().memory_info().rss
    r = await run(session, "while True:\n    print('flood ' * 200)", timeout=3)
    assert r.timed_out and r.truncated and r.dropped_chars > 0 and len(r.stdout) < 25_000
    assert psutil.Process().memory_info().rss - rss_before < 150 * MiB
    await still_answers(session)


async def test_while_true(session: KernelSession) -> None:
    await run(session, "survivor = 7")
    r = await run(session, "while True:\n    pass", timeout=1)
    assert r.timed_out and r.interrupted and r.error is not None and r.error.name == "KeyboardInterrupt"
    assert (await run(session, "survivor")).result == "7"
    await still_answers(session)


async def test_code_ignoring_sigint(session: KernelSession) -> None:
    r = await run(session, """
import signal, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
while True:
    time.sleep(0.01)
""", timeout=1)
    assert r.timed_out and r.restarted
    await still_answers(session)


async def test_os_exit(session: KernelSession) -> None:
    r = await run(session, "import os\nos._exit(1)")
    assert r.kernel_died and r.exit_code == 1
    await still_answers(session)


async def test_nested_user_namespace(session: KernelSession) -> None:
    r = await run(session, """
import ctypes, os, subprocess
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWUSER = 0x10000000
print('unshare', libc.unshare(CLONE_NEWUSER), os.strerror(ctypes.get_errno()))
for cmd in (['unshare', '--user', '--map-root-user', 'id'], ['bwrap', '--ro-bind', '/', '/', 'id']):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        print(cmd[0], 'rc', p.returncode)
    except OSError as e:
        print(cmd[0], 'error', type(e).__name__)
""")
    assert "unshare -1" in r.stdout, r
    assert "unshare rc 0" not in r.stdout and "bwrap rc 0" not in r.stdout, r.stdout
    await still_answers(session)

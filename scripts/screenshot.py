"""Screenshots of the board for the README: docs/board.png and docs/board-dark.png.

Runs the app the way `make run` does, but on a fresh SQLite database in a temporary
directory (migrate, seed_demo, collectstatic), serves it with gunicorn on a free
loopback port, signs in through the login page with headless Chromium and saves
1440x900 shots in the light and the dark colour scheme.

    .venv/bin/python scripts/screenshot.py [--user manager|rep] [--out docs]
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
VIEWPORT = {"width": 1440, "height": 900}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def manage(env: dict, *args: str) -> None:
    subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, check=True)


def wait_until_up(url: str, server: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"gunicorn exited with code {server.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:  # refused, reset or timed out (URLError is an OSError too)
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {timeout:.0f} s")


def shoot(base_url: str, username: str, password: str, out: Path) -> list[Path]:
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    saved = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        for scheme, name in (("light", "board.png"), ("dark", "board-dark.png")):
            context = browser.new_context(viewport=VIEWPORT, color_scheme=scheme)
            page = context.new_page()
            page.goto(f"{base_url}/accounts/login/")
            page.fill("#id_username", username)
            page.fill("#id_password", password)
            with page.expect_navigation():
                page.click("button[type=submit]")
            # "/" redirects to the first pipeline's board.
            page.wait_for_selector("#board .card")
            page.wait_for_load_state("networkidle")
            # No caret or hover state in the picture.
            page.mouse.move(0, VIEWPORT["height"] - 1)
            page.evaluate("document.activeElement && document.activeElement.blur()")
            path = out / name
            page.screenshot(path=str(path))
            saved.append(path)
            context.close()
        browser.close()
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--user", default="manager", choices=["manager", "rep", "rep2"])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    workdir = Path(tempfile.mkdtemp(prefix="crm-screenshot-"))
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "DJANGO_SETTINGS_MODULE"}
    }
    password = env.get("DEMO_PASSWORD") or "pipeline-demo"
    env |= {
        "DJANGO_SETTINGS_MODULE": "crm.settings",
        "SQLITE_PATH": str(workdir / "db.sqlite3"),
        "DJANGO_DEBUG": "1",
        "DJANGO_PLAIN_STATIC": "0",  # hashed, compressed files, as in production
        "DEMO_PASSWORD": password,
        "AXES_ENABLED": "0",
    }
    server = None
    try:
        manage(env, "migrate", "--no-input", "-v0")
        manage(env, "seed_demo")
        manage(env, "collectstatic", "--no-input", "-v0")
        port = free_port()
        gunicorn = str(Path(PYTHON).parent / "gunicorn")
        command = [gunicorn, "crm.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1"]
        command += ["--threads", "4", "--log-level", "warning"]
        server = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
        )
        base_url = f"http://127.0.0.1:{port}"
        wait_until_up(f"{base_url}/healthz", server)
        for path in shoot(base_url, args.user, password, args.out):
            print(f"Saved {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

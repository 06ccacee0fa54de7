"""A real HTTP receiver on 127.0.0.1 for webhook tests: records every request and
answers with the next status of a script (then 200)."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    def __init__(self):
        self.requests: list[dict] = []
        self.script: list[int] = []
        # While set, the next request is held (counted in `arrived`) until `release()`.
        self.hold = threading.Event()
        self.released = threading.Event()
        self.arrived = 0
        self.received = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.arrived += 1
                if receiver.hold.is_set():
                    receiver.hold.clear()
                    receiver.released.wait(timeout=30)
                    return  # the sender is gone; nothing to answer
                # Recorded before answering: once the sender has the answer, the test sees it.
                with receiver.received:
                    status = receiver.script.pop(0) if receiver.script else 200
                    receiver.requests.append(
                        {"headers": dict(self.headers), "body": body, "status": status}
                    )
                    receiver.received.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hook"

    def wait_for(self, count: int, timeout: float = 10) -> list[dict]:
        with self.received:
            self.received.wait_for(lambda: len(self.requests) >= count, timeout=timeout)
        return self.requests

    def release(self) -> None:
        self.released.set()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.release()
        self.server.shutdown()
        self.server.server_close()


def webhook_manager(**kwargs):
    """A sales manager who may manage webhooks, even after a transactional test's flush
    recreated the role groups without this app's permission."""
    from django.contrib.auth.models import Permission

    from tests import factories

    user = factories.manager(**kwargs)
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="integrations", codename="manage_webhooks")
    )
    return user

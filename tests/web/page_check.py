"""The page and API of `descent app` as a browser and a client see them, for the Rust integration test.

    python tests/web/page_check.py --url http://127.0.0.1:PORT --picture PATH [--picture PATH ...]
        --chromium /usr/bin/chromium [--screenshot FILE]

For each picture: the page in Debian's chromium (driven by Playwright, which downloads no browser
of its own) shows the model's details, takes the picture through its file input and shows a top
class; the same bytes POSTed raw to /predict give the API's top class. Then hostile uploads (one
byte over the limit, not a picture, a PNG claiming 100000 x 100000 pixels), /health after each,
the page's answer to a file that is not a picture, and 8 concurrent /predict requests.

Prints one JSON object on stdout:
    {"pages": [{"picture", "shown", "api", "probability"}], "oversized", "not_image", "huge",
     "page_error", "result_hidden_after_error", "concurrent", "concurrent_tops", "health_after",
     "problems"}
Statuses are numbers (null when no answer came); "health_after" is 200 when every /health check
answered 200, else the first other status; "problems" lists, in words, what went wrong (a
timeout, a JavaScript error on the page), so that a failing comparison on the Rust side can say why.

Exit status: 0 when it ran, whatever it found (the Rust test judges the values); 3 when it could
not run here (Playwright not installed, no chromium at --chromium): a one-line reason on stderr,
so that the caller can skip; 1 when the server did not answer /info at all.
"""

import argparse
import http.client
import json
import os
import select
import struct
import sys
import threading
import urllib.parse
import zlib
from concurrent.futures import ThreadPoolExecutor

REQUEST_TIMEOUT_S = 60
PAGE_TIMEOUT_MS = 30_000
CONCURRENT_REQUESTS = 8
NOT_A_PICTURE = b"this is not a picture" * 10


class Server:
    """Requests to the app on one host and port, each on its own connection, bounded in time."""

    def __init__(self, url):
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname, parts.port or 80

    def request(self, method, path, body=None, content_type="application/octet-stream"):
        """(status, parsed JSON or None). A server that answers before reading the whole body,
        as it should for an upload over its limit, gets its answer read rather than a broken pipe."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=REQUEST_TIMEOUT_S)
        try:
            connection.putrequest(method, path)
            connection.putheader("Accept", "application/json")
            if body is not None:
                connection.putheader("Content-Type", content_type)
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders()
            if body is not None:
                send_until_answered(connection.sock, body)
            response = connection.getresponse()
            payload = response.read()
            try:
                return response.status, json.loads(payload)
            except ValueError:
                return response.status, None
        finally:
            connection.close()

    def predict(self, picture_bytes):
        status, answer = self.request("POST", "/predict", picture_bytes)
        top = answer.get("top") if status == 200 and isinstance(answer, dict) else None
        return status, top, answer

    def health(self):
        try:
            return self.request("GET", "/health")[0]
        except OSError:
            return None


def send_until_answered(sock, body, chunk=64 * 1024):
    view = memoryview(body)
    for start in range(0, len(body), chunk):
        if select.select([sock], [], [], 0)[0]:
            return  # An early answer (413) or a close: read it instead of sending the rest.
        try:
            sock.sendall(view[start:start + chunk])
        except (BrokenPipeError, ConnectionResetError):
            return


def png_claiming(width, height):
    """A PNG signature, an IHDR chunk announcing width x height RGB pixels, and IEND: no pixels."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def hostile_upload(server, body, health_statuses, problems, what):
    """The status of a bad upload, which must come with a JSON {"error": sentence}."""
    try:
        status, answer = server.request("POST", "/predict", body)
    except OSError as error:
        problems.append(f"{what}: no answer ({error})")
        status, answer = None, None
    if status is not None and not (isinstance(answer, dict) and isinstance(answer.get("error"), str)):
        problems.append(f"{what}: status {status} without a JSON body holding \"error\": {answer!r}")
        status = None
    health_statuses.append(server.health())
    return status


class Browser:
    """Debian's chromium under Playwright; JavaScript errors on any page become problems."""

    def __init__(self, playwright, chromium, url, problems):
        self.browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        self.context = self.browser.new_context(viewport={"width": 1000, "height": 800})
        self.context.set_default_timeout(PAGE_TIMEOUT_MS)
        self.url, self.problems = url, problems

    def open(self):
        page = self.context.new_page()
        page.on("pageerror", lambda error: self.problems.append(f"JavaScript error on the page: {error}"))
        page.goto(self.url)
        page.wait_for_selector("#info[data-state=loaded]")
        return page

    def close(self):
        self.browser.close()


def check_pictures(browser, server, pictures, screenshot, problems, browser_error):
    rows = []
    for index, path in enumerate(pictures):
        row = {"picture": path, "shown": None, "api": None, "probability": None}
        page = None
        try:
            page = browser.open()
            page.set_input_files("input[type=file]", path)
            page.wait_for_selector("#result[data-state=done]", state="visible")
            row["shown"] = page.text_content("#top-class")
            if index == 0 and screenshot:
                page.screenshot(path=screenshot, full_page=True)
        except browser_error as error:
            problems.append(f"{path}: the page showed no result ({first_line(error)}){what_page_says(page)}")
        finally:
            if page is not None:
                page.close()
        try:
            with open(path, "rb") as file:
                status, top, answer = server.predict(file.read())
        except OSError as error:
            status, answer = None, str(error)
        if status == 200:
            row["api"], row["probability"] = top, answer["predictions"][0]["probability"]
        else:
            problems.append(f"{path}: /predict answered {status}: {answer!r}")
        rows.append(row)
    return rows


def check_page_error(browser, first_picture, problems, browser_error):
    """After a good result, a file that is not a picture: the server's sentence in #error, and
    #result hidden. Returns (the sentence, whether #result was hidden)."""
    page = None
    try:
        page = browser.open()
        page.set_input_files("input[type=file]", first_picture)
        page.wait_for_selector("#result[data-state=done]", state="visible")
        page.set_input_files(
            "input[type=file]",
            {"name": "not-a-picture.png", "mimeType": "image/png", "buffer": NOT_A_PICTURE},
        )
        page.wait_for_selector("#error", state="visible")
        return page.inner_text("#error"), not page.is_visible("#result")
    except browser_error as error:
        problems.append(f"not a picture, on the page: no error shown ({first_line(error)})")
        return None, None
    finally:
        if page is not None:
            page.close()


def what_page_says(page):
    try:
        if page is not None and page.is_visible("#error"):
            return f"; it says: {page.inner_text('#error')}"
    except Exception:  # The page may be gone with the failure being reported: say nothing more.
        pass
    return ""


def first_line(error):
    return (getattr(error, "message", None) or str(error)).splitlines()[0]


def check_concurrent(server, picture_bytes):
    start = threading.Barrier(CONCURRENT_REQUESTS)

    def one(_):
        start.wait(timeout=REQUEST_TIMEOUT_S)
        try:
            status, top, _answer = server.predict(picture_bytes)
            return status, top
        except OSError:
            return None, None

    with ThreadPoolExecutor(CONCURRENT_REQUESTS) as pool:
        answers = list(pool.map(one, range(CONCURRENT_REQUESTS)))
    return [status for status, _ in answers], [top for _, top in answers]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the app, e.g. http://127.0.0.1:8080")
    parser.add_argument("--picture", action="append", required=True, help="a picture to classify (repeatable)")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="the browser to drive [default: %(default)s]")
    parser.add_argument("--screenshot", help="save the page after the first result as this PNG file")
    args = parser.parse_args()
    for path in args.picture:
        if not os.path.isfile(path):
            parser.error(f"--picture {path}: no such file")

    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("playwright is not installed: pip install -r tests/web/requirements.txt", file=sys.stderr)
        sys.exit(3)
    if not os.access(args.chromium, os.X_OK):
        print(f"no browser at {args.chromium}: apt-get install chromium, or pass --chromium", file=sys.stderr)
        sys.exit(3)

    server = Server(args.url)
    try:
        status, info = server.request("GET", "/info")
        max_upload_bytes = info["max_upload_bytes"]
    except (OSError, TypeError, KeyError) as error:
        print(f"{args.url}/info gave no model details: {error}", file=sys.stderr)
        sys.exit(1)

    problems, health_statuses = [], []
    outcome = {}
    with sync_playwright() as playwright:
        try:
            browser = Browser(playwright, args.chromium, args.url, problems)
        except PlaywrightError as error:
            print(f"chromium at {args.chromium} did not start: {first_line(error)}", file=sys.stderr)
            sys.exit(3)
        try:
            outcome["pages"] = check_pictures(
                browser, server, args.picture, args.screenshot, problems, PlaywrightError
            )
            outcome["page_error"], outcome["result_hidden_after_error"] = check_page_error(
                browser, args.picture[0], problems, PlaywrightError
            )
        finally:
            browser.close()

    outcome["oversized"] = hostile_upload(
        server, b"\0" * (max_upload_bytes + 1), health_statuses, problems, "one byte over the limit"
    )
    outcome["not_image"] = hostile_upload(server, NOT_A_PICTURE, health_statuses, problems, "not a picture")
    outcome["huge"] = hostile_upload(
        server, png_claiming(100_000, 100_000), health_statuses, problems, "a PNG claiming 100000 x 100000"
    )
    with open(args.picture[0], "rb") as file:
        outcome["concurrent"], outcome["concurrent_tops"] = check_concurrent(server, file.read())
    health_statuses.append(server.health())
    outcome["health_after"] = next((status for status in health_statuses if status != 200), 200)
    outcome["problems"] = problems
    for problem in problems:
        print(problem, file=sys.stderr)
    print(json.dumps(outcome))


if __name__ == "__main__":
    main()

"""The dashboard's WSGI application: a small router over :mod:`pulpo_dashboard.views`.

Written by hand (a dozen routes need no framework): ``GET`` pages only read the queue; the two
actions are ``POST`` forms, checked here for their origin and token before their view runs.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl

from pulpo_core.errors import AdapterError
from pulpo_dashboard.security import HEADERS, Origins, token_matches
from pulpo_dashboard.views import Page, Views

log = logging.getLogger("pulpo.dashboard")

#: The most bytes of a form a POST may carry.
MAX_FORM = 64 * 1024
STATE_PATH = re.compile(r"/jobs/([a-z]+)")

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class Dashboard:
    """``Dashboard(views, origins, token)`` is the WSGI callable waitress serves."""

    def __init__(self, views: Views, origins: Origins, token: str) -> None:
        self.views = views
        self.origins = origins
        self.token = token
        self.stylesheet = (resources.files("pulpo_dashboard") / "static" / "dashboard.css"
                           ).read_text(encoding="utf-8")

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            page = self.answer(environ)
        except AdapterError as error:
            page = self.views.message(503, "The queue is not answering",
                                      f"The queue could not be read: {error}")
        except Exception:
            log.exception("the dashboard failed to answer %s %s",
                          environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"))
            page = self.views.message(500, "Unexpected error",
                                      "The dashboard failed to answer; its log says why.")
        body = page.body.encode("utf-8")
        status = HTTPStatus(page.status)
        headers = [("Content-Type", page.content_type), ("Content-Length", str(len(body))),
                   *HEADERS, *page.headers]
        start_response(f"{status.value} {status.phrase}", headers)
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]

    def answer(self, environ: Mapping[str, Any]) -> Page:
        if not self.origins.host_allowed(environ):
            return self.views.message(
                403, "Refused", f"This dashboard answers only to http://{self.origins.first()}/, "
                                f"not to the host {environ.get('HTTP_HOST', '')!r}.")
        method = str(environ.get("REQUEST_METHOD", "GET"))
        path = str(environ.get("PATH_INFO") or "/")
        query = dict(parse_qsl(str(environ.get("QUERY_STRING", "")), keep_blank_values=True))
        if path in ("/kick", "/delete"):
            if method != "POST":
                return _not_allowed("POST")
            refusal, form = self._check_post(environ)
            if refusal is not None:
                return refusal
            return self.views.kick(form) if path == "/kick" else self.views.delete(form)
        if method not in ("GET", "HEAD"):
            return _not_allowed("GET, HEAD")
        if path == "/":
            return self.views.overview(query)
        if path == "/job":
            return self.views.job(query)
        if path == "/static/dashboard.css":
            return Page(200, self.stylesheet, content_type="text/css; charset=utf-8")
        matched = STATE_PATH.fullmatch(path)
        if matched:
            return self.views.jobs(matched.group(1), query)
        return self.views.message(404, "Not found", f"There is no page {path!r} here.")

    def _check_post(self, environ: Mapping[str, Any]) -> tuple[Page | None, dict[str, str]]:
        """A refusal (origin, size, token), else ``None`` and the form."""
        same, origin = self.origins.same_origin(environ)
        if not same or environ.get("HTTP_SEC_FETCH_SITE", "same-origin") not in (
                "same-origin", "none"):
            return self.views.message(
                403, "Refused", f"This request did not come from the dashboard's own pages "
                                f"(its origin is {origin!r}), so it was refused."), {}
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_FORM:
            return self.views.message(413, "Too large",
                                      f"A form may carry at most {MAX_FORM} bytes."), {}
        data = environ["wsgi.input"].read(length) if length else b""
        form = dict(parse_qsl(data.decode("utf-8", errors="replace"), keep_blank_values=True))
        if not token_matches(form.get("token"), self.token):
            return self.views.message(
                403, "Refused", "This action needs the dashboard's token, the one "
                                "`pulpo dashboard` printed as it started (or was given with "
                                "--token), and this form's token was missing or wrong."), {}
        return None, form


def _not_allowed(allowed: str) -> Page:
    return Page(405, f"Use {allowed} here.\n", (("Allow", allowed),), "text/plain; charset=utf-8")

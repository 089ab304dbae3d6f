"""A small WSGI service on the Python standard library.

It opens an in-memory SQLite catalogue, renders JSON, and prints
"ready: listening on HOST:PORT" once the socket accepts connections.
"""

import datetime
import email.utils
import json
import logging
import os
import sqlite3
import sys
import urllib.parse
from http.cookies import SimpleCookie
from wsgiref.simple_server import WSGIRequestHandler, make_server

import catalogue

log = logging.getLogger("bench")


class QuietHandler(WSGIRequestHandler):
    def log_message(self, fmt, *args):
        log.debug(fmt, *args)


def application(db):
    def app(environ, start_response):
        path = environ.get("PATH_INFO", "/")
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        cookie = SimpleCookie(environ.get("HTTP_COOKIE", ""))
        if path == "/healthz":
            body = b"ok\n"
            ctype = "text/plain"
        elif path == "/items":
            limit = int(query.get("limit", ["10"])[0])
            body = json.dumps(catalogue.items(db, limit)).encode()
            ctype = "application/json"
        else:
            visits = int(cookie["visits"].value) + 1 if "visits" in cookie else 1
            body = json.dumps({"service": "python", "visits": visits,
                               "time": datetime.datetime.now(datetime.timezone.utc).isoformat()}).encode()
            ctype = "application/json"
        start_response("200 OK", [("Content-Type", ctype),
                                  ("Content-Length", str(len(body))),
                                  ("Date", email.utils.formatdate(usegmt=True))])
        return [body]
    return app


def main():
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), stream=sys.stdout,
                        format="%(levelname)s %(name)s: %(message)s")
    db = sqlite3.connect(":memory:", check_same_thread=False)
    catalogue.load(db)
    host = os.environ.get("HOST", "0.0.0.0")
    port = int(os.environ.get("PORT", "8000"))
    httpd = make_server(host, port, application(db), handler_class=QuietHandler)
    log.info("catalogue has %d items", catalogue.count(db))
    print(f"ready: listening on {host}:{port}", flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    main()

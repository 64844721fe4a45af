"""Headless Debian Chromium for the browser tests and the console benchmark (Playwright's own browser download
cannot work here): the binary and the flags that keep it off the network."""

from __future__ import annotations

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

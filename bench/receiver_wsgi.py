"""The receiver's WSGI app on its own, for serving it under another server (gunicorn) in bench.receiver."""

from __future__ import annotations

from autosync.services.channels import ChannelBook
from autosync.settings import get_settings
from autosync.webhooks import Hooks

_settings = get_settings()
app = Hooks(ChannelBook(_settings.database_url).start(wait=5), _settings)

"""The pluggy marker plugin authors decorate their hook implementations with."""

from __future__ import annotations

import pluggy

PROJECT_NAME = "pulpo"

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

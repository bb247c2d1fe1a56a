"""The pages' templates: the bulletin's Jinja2 environment (autoescaped, same number filters) over `templates/`."""

from __future__ import annotations

from typing import Any

from services.bulletin.render import environment


def render(template: str, **context: Any) -> str:
    """The page `template` (a file of `services/pages/templates/`) filled with `context`."""
    return environment("services.pages").get_template(template).render(**context)

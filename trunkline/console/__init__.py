"""The web console served at ``/console``: static HTML, CSS and JavaScript modules.

The console is a client of the JSON API like any other: the page keeps the
API token in the tab's ``sessionStorage`` and sends it in ``X-API-Key``, so it
sees exactly what the token's organisation (or identity) may see. This
package only serves the files (``site.py``); it imports nothing of the API.
"""

from trunkline.console.site import add_routes

__all__ = ["add_routes"]

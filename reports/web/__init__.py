"""The archive (`run.py web`): every report and file a run wrote, its findings, and the alerts,
as pages and a JSON API, each reader seeing only what was made for them.

Modules: `tokens` (signed links, API tokens, sessions), `access` (who sees what), `record`
(outputs written to the store as a run writes them), `queries` (what pages and API show),
`pages`, `api` and `openapi`, `files` (serving an output), `silences`, `prune` (retention), and
`app` (the ASGI app). Only `app`, `pages`, `api` and `files` import Starlette, so a run that
records its outputs or signs a link loads none of it.
"""

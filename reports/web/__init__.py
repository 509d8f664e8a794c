"""The archive (`run.py web`): every report and file a run wrote, its findings, and the alerts,
as pages and a JSON API, each reader seeing only what was made for them.

Modules: `auth` and `access` (sessions, and who sees what), `queries` (what pages and API show),
`pages`, `api` and `openapi`, `files` (serving an output), `silences`, `commands` (the CLI's
archive commands) and `app` (the ASGI app). What a run itself writes for the archive (its files
recorded, signed links, retention) is in `reports/archive/`; only `app`, `pages`, `api` and
`files` import Starlette.
"""
